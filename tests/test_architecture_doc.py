"""docs/architecture.md matches the tree: every module it names exists, every module is named.

The map is what the next engineer reads first; a renamed or added module
that the map does not show would send them to the wrong room.
"""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import REPO

DOC = REPO / "docs" / "architecture.md"
PACKAGE = REPO / "fleetcpu"


def rooms() -> dict[str, set[str]]:
    """Package -> the module files "The rooms" lists for it ("" is fleetcpu/ itself)."""
    text = DOC.read_text().split("## The rooms", 1)[1].split("\n\nEach package", 1)[0]
    top, _, packages = text.partition("and these packages:")
    out = {"": set(re.findall(r"`([a-z_]+\.py)`", top))}
    for item in re.split(r"\n- ", packages)[1:]:
        name = re.match(r"`([a-z_]+)/`", item)
        assert name, item
        out[name.group(1)] = {"__init__.py", *re.findall(r"`([a-z_]+\.py)`", item)}
    return out


def tree() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(PACKAGE)
        out.setdefault(str(rel.parent) if rel.parent != Path() else "", set()).add(rel.name)
    return out


def test_the_rooms_are_the_tree() -> None:
    assert rooms() == tree()


def test_every_path_the_page_names_exists() -> None:
    named = set(re.findall(r"`((?:fleetcpu/)?[a-z_]+/[a-z_./]+\.(?:py|json|md|toml))`", DOC.read_text()))
    missing = []
    for path in named:
        candidates = [REPO / path, PACKAGE / path, REPO / "docs" / Path(path).name]
        if not any(c.exists() for c in candidates):
            missing.append(path)
    assert not missing, f"docs/architecture.md names what is not there: {sorted(missing)}"
