"""The CLI edge itself: what every command shares (lean imports, error mapping, pipes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import PYTHON, REPO, run_cli

GOLDEN = REPO / "tests" / "golden" / "probe-kvm-q35.json"


def _imported_after(*argv: str) -> set[str]:
    code = (
        "import os, sys, runpy\n"
        "def no_teardown_skip(status):\n"  # entry() ends with os._exit: return here instead
        "    raise SystemExit(status)\n"
        "os._exit = no_teardown_skip\n"
        f"sys.argv = ['fleetcpu', *{list(argv)!r}]\n"
        "try:\n"
        "    runpy.run_module('fleetcpu', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    res = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, check=False, timeout=120
    )
    return set(res.stdout.split()[-400:])


def test_commands_never_load_pandas(tmp_path: Path) -> None:
    """pyarrow would import pandas on first use (~55 MiB, ~0.2 s) and numpy at start-up
    (~60 ms); the CLI needs neither."""
    store = tmp_path / "store"
    res = run_cli("import", "--store", str(store), "--pool", "p", "--host", "h", str(GOLDEN))
    assert res.returncode == 0, res.stderr
    for argv in (
        ("hosts", "--store", str(store)),
        ("baseline", "--store", str(store), "--pool", "p", "--max-age", "36500d"),
    ):
        mods = _imported_after(*argv)
        assert "pyarrow" in mods, "the command did not even read the store"
        assert "pandas" not in mods and "numpy" not in mods, argv


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert run_cli("import", "--store", str(store), "--host", "h", str(GOLDEN)).returncode == 0
    proc = subprocess.Popen(
        [PYTHON, "-m", "fleetcpu", "hosts", "--store", str(store), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    proc.stdout.close()  # the reader goes away, like `| head -c 1`
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "error" not in err


def test_exit_skips_teardown_but_keeps_output_and_status(tmp_path: Path) -> None:
    """entry() ends with os._exit: stdout must be flushed and the status kept, piped or not."""
    store = tmp_path / "store"
    assert run_cli("import", "--store", str(store), "--host", "h", str(GOLDEN)).returncode == 0
    res = run_cli("hosts", "--store", str(store), "--format", "json")
    assert res.returncode == 0 and json.loads(res.stdout)[0]["host"] == "h"
    res = run_cli("baseline", "--store", str(store), "--pool", "nope")
    assert res.returncode == 20 and res.stderr.startswith("error: unknown pool")


def test_unknown_command_is_usage_error() -> None:
    res = run_cli("frobnicate")
    assert res.returncode == 2
