"""Every module says what it offers (``__all__``), and other packages take only that.

A package's surface is what its modules list in ``__all__``; a name without
an underscore that a module defines is public, so it is listed (as httpx's
``test_exported_members`` holds its package to). Across a package boundary an
import may name only what the target lists, never an underscored name: the
next engineer can then change anything unlisted knowing which package alone
uses it. Read from the source, so the rule holds for lazy (function-level)
imports too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

PACKAGE = REPO / "fleetcpu"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def declared_all(module: ast.Module) -> list[str] | None:
    for node in module.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "__all__"
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(v) for v in value]
    return None


def defined_public(module: ast.Module) -> set[str]:
    """Top-level names the module itself defines (not imports), without a leading underscore."""
    names: set[str] = set()
    for node in module.body:
        targets: list[ast.expr] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return {n for n in names if not n.startswith("_")}


def imported_by(path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) for every ``from M import name`` in the file, relative ones resolved."""
    here = dotted(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[str, str, int]] = []
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            out.extend((target, alias.name, node.lineno) for alias in node.names)
    return out


def top_package(module: str) -> str:
    """``fleetcpu.store.reader`` -> ``fleetcpu.store``; top-level modules are their own package."""
    parts = module.split(".")
    return ".".join(parts[:2])


def module_path(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@pytest.mark.parametrize("path", MODULES, ids=dotted)
def test_all_is_exactly_the_public_names(path: Path) -> None:
    module = tree(path)
    listed = declared_all(module)
    assert listed is not None, f"{dotted(path)} has no __all__"
    public = defined_public(module)
    unlisted = public - set(listed)
    assert not unlisted, (
        f"{dotted(path)} does not list {sorted(unlisted)} in __all__ "
        "(list a public name, or give an internal one a leading underscore)"
    )
    # What it lists beyond its own names it must import: a deliberate re-export
    # (a package's face, or a module whose job is to hand over another's names).
    imported = {
        a.asname or a.name.split(".")[0]
        for n in ast.walk(module)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    defined = public | {n.id for n in ast.walk(module) if isinstance(n, ast.Name)}
    stray = set(listed) - public - imported - defined
    assert not stray, f"{dotted(path)} lists names it neither defines nor imports: {sorted(stray)}"


def test_other_packages_take_only_what_a_module_lists() -> None:
    wrong = []
    for path in [*MODULES, *sorted((REPO / "benchmarks").glob("*.py"))]:
        source = dotted(path)
        for target, name, line in imported_by(path):
            if not target.startswith("fleetcpu") or top_package(target) == top_package(source):
                continue
            if name == "__version__":
                continue
            if name.startswith("_"):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {target}.{name} is private")
                continue
            if module_path(f"{target}.{name}") is not None:
                continue  # a module of the package, whose own __all__ is checked above
            owner = module_path(target)
            listed = declared_all(tree(owner)) if owner else None
            if listed is None or name not in listed:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {target} does not list {name}")
    assert not wrong, "\n".join(wrong)
