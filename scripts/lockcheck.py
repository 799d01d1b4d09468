"""The fingerprint of what pyproject.toml asks for, which the lock files carry.

Why a fingerprint and not a re-resolve: telling "the lock was made from this
pyproject.toml" must work offline and give the same answer every day, while a
resolve asks the registry and moves with every release. Only the tables that
change what gets installed count (requires-python, the dependencies, the
extras, the build requirements), so editing a tool's settings in
pyproject.toml does not stale the lock.

    python3 scripts/lockcheck.py fingerprint      print it
    python3 scripts/lockcheck.py check FILE...    exit 1, with a one-line hint, if a file's differs
    python3 scripts/lockcheck.py build-requires   print [build-system].requires, one a line
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "# pyproject-fingerprint: "


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def fingerprint() -> str:
    data = _pyproject()
    project = data.get("project", {})
    assert isinstance(project, dict)
    asked = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": data.get("build-system", {}),
    }
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]


def main(argv: list[str]) -> int:
    if argv[:1] == ["fingerprint"]:
        print(fingerprint())
        return 0
    if argv[:1] == ["build-requires"]:
        build = _pyproject().get("build-system", {})
        assert isinstance(build, dict)
        print("\n".join(build.get("requires", [])))
        return 0
    if argv[:1] == ["check"] and len(argv) > 1:
        want = fingerprint()
        for name in argv[1:]:
            path = ROOT / name
            found = (
                next(
                    (ln[len(MARK) :].strip() for ln in path.read_text().splitlines() if ln.startswith(MARK)),
                    None,
                )
                if path.exists()
                else None
            )
            if found != want:
                print(
                    f"{name} was not made from this pyproject.toml (fingerprint {found} != {want}): "
                    "run scripts/lock.sh and commit the lock files",
                    file=sys.stderr,
                )
                return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
