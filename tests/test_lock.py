"""The lock files are what pyproject.toml asks for, and a stale lock is refused in one line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .conftest import PYTHON, REPO

LOCKS = ("requirements.txt", "requirements-dev.txt")


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, str(root / "scripts" / "lockcheck.py"), "check", *LOCKS],
        capture_output=True,
        text=True,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", *LOCKS):
        shutil.copy(REPO / name, root / name)
    shutil.copy(REPO / "scripts" / "lockcheck.py", root / "scripts" / "lockcheck.py")
    return root


def test_committed_lock_matches_pyproject() -> None:
    res = _check(REPO)
    assert res.returncode == 0, res.stderr


def test_changed_dependency_is_refused_in_one_line(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    py = root / "pyproject.toml"
    py.write_text(py.read_text().replace('"click>=8.1"', '"click>=8.2"'))
    res = _check(root)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "run scripts/lock.sh" in res.stderr


def test_tool_settings_do_not_stale_the_lock(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    py = root / "pyproject.toml"
    py.write_text(py.read_text().replace("line-length = 110", "line-length = 111"))
    assert _check(root).returncode == 0


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M))


def test_every_pin_is_exact_and_hashed() -> None:
    """pip's --require-hashes needs both; a bare name would let a fresh machine float."""
    for name in LOCKS:
        text = (REPO / name).read_text()
        reqs = [r for r in re.split(r"\n(?=\S)", text) if r.strip() and not r.startswith("#")]
        assert reqs
        for req in reqs:
            assert re.match(r"^[A-Za-z0-9._-]+==\S+", req), req
            assert "--hash=sha256:" in req, req
    dev = (REPO / "requirements-dev.txt").read_text()
    run = (REPO / "requirements.txt").read_text()
    # The run lock is a subset of the dev lock, at the same versions, and both hold the build backend.
    assert _pins(run).items() <= _pins(dev).items()
    assert "setuptools" in _pins(run)


def test_the_lock_tool_is_pinned_with_hashes() -> None:
    text = (REPO / "scripts" / "uv-requirements.txt").read_text()
    assert re.search(r"^uv==\d+\.\d+\.\d+ \\$", text, re.M)
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 1


def test_the_venv_holds_its_dependencies_bytecode() -> None:
    """setup.sh installs compiled, as pip does (``uv pip sync --compile-bytecode``).

    Without it, where ``PYTHONDONTWRITEBYTECODE`` is set, every fleetcpu command
    compiled asyncssh, pyarrow and click afresh: 1.05 s instead of 0.53 s of CPU
    to import them, measured with ``/usr/bin/time`` on this machine.
    """
    import importlib.util
    import sys

    missing = []
    for package in ("asyncssh", "pyarrow", "click", "cryptography"):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None
        for source in Path(spec.origin).parent.rglob("*.py"):
            if not Path(importlib.util.cache_from_source(str(source))).is_file():
                missing.append(str(source))
    assert missing == [], f"{len(missing)} module(s) without bytecode, e.g. {missing[:3]} ({sys.prefix})"
