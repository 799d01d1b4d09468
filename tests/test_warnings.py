"""Operators see no third-party warning, and nothing else is hidden (docs/warnings.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from fleetcpu.probe import quiet

from .conftest import PYTHON, REPO, run_cli


def _documented() -> list[tuple[str, str]]:
    rows = []
    for line in (REPO / "docs" / "warnings.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0] != "category":
            rows.append((cells[0].strip("`"), cells[1].strip("`").replace("\\|", "|")))
    return rows


def test_documented_list_is_exactly_the_code() -> None:
    assert _documented() == [(e.category, e.module) for e in quiet.SILENCED]
    assert all(e.cause for e in quiet.SILENCED)


#: Emits the same category from a listed module and from one that is not, after installing.
_PROBE = """
import warnings
from fleetcpu.probe import quiet
quiet.install()
quiet.install()
from cryptography.utils import CryptographyDeprecationWarning as W
for module in ("asyncssh.crypto.dsa", "asyncssh", "asyncsshx", "fleetcpu.fleet.ssh", "othermod"):
    warnings.warn_explicit("from " + module, W, module.replace(".", "/") + ".py", 1, module=module)
warnings.warn_explicit("a user warning", UserWarning, "asyncssh/x.py", 1, module="asyncssh.x")
print(sum(f[0] == "ignore" and f[3] is not None for f in warnings.filters))
"""


def test_listed_warnings_are_silenced_and_others_still_show() -> None:
    res = subprocess.run(
        [PYTHON, "-W", "default", "-c", _PROBE], capture_output=True, text=True, cwd=REPO, check=True
    )
    shown = re.findall(r"Warning: (.+)", res.stderr)
    # The listed category from asyncssh is gone; from anywhere else, and any other
    # category from asyncssh, it shows.
    assert shown == ["from asyncsshx", "from fleetcpu.fleet.ssh", "from othermod", "a user warning"]
    assert res.stdout.strip() == str(len(quiet.SILENCED))  # installing twice added nothing


def test_collect_prints_no_warning_line(tmp_path: Path) -> None:
    """The README's run command: a local collect imports asyncssh and prints only its summary."""
    res = run_cli(
        "collect",
        str(REPO / "inventories" / "local.txt"),
        "--store",
        str(tmp_path / "s"),
        env={"PYTHONWARNINGS": "default"},
    )
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr and "warn" not in res.stderr.lower()
    assert res.stderr.count("\n") <= 1, res.stderr


def test_probe_installs_the_list_without_importing_cryptography() -> None:
    """The probe's entry (what hosts run) installs the same filters, and needs no cryptography."""
    check = (
        "import sys, warnings, fleetcpu.probe.__main__ as m\n"
        "try:\n    m.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(getattr(f[2], 'target', '') for f in warnings.filters if f[0] == 'ignore'"
        " and hasattr(f[2], 'target')), 'cryptography' in sys.modules)\n"
    )
    res = subprocess.run([PYTHON, "-c", check], capture_output=True, text=True, cwd=REPO, check=True)
    want = sorted(e.category for e in quiet.SILENCED)
    assert res.stdout.strip().splitlines()[-1] == f"{want} False"
