"""The CLI edge itself: what every command shares (lean imports, error mapping, pipes)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcpu import errors
from fleetcpu.cli import main

from .conftest import PYTHON, REPO, run_cli, tricks_only

#: The CLI edge in both modes: FLEETCPU_PLAIN=1 ends commands with sys.exit, not os._exit.
pytestmark = pytest.mark.plain

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


@tricks_only
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


def _error_classes() -> list[type[errors.FleetcpuError]]:
    found: list[type[errors.FleetcpuError]] = []
    todo: list[type[errors.FleetcpuError]] = [errors.FleetcpuError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


@pytest.fixture
def raising() -> Iterator[list[BaseException]]:
    """A command registered as every command is, mapping nothing itself: it raises what the test puts in."""
    to_raise: list[BaseException] = []

    @main.command("raise-for-test", hidden=True)
    def raise_for_test() -> None:
        raise to_raise[0]

    try:
        yield to_raise
    finally:
        main.commands.pop("raise-for-test")


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_the_group_maps_every_error_class(
    raising: list[BaseException], cls: type[errors.FleetcpuError]
) -> None:
    """No command can forget the mapping: the group applies it to whatever command it runs."""
    exc = cls.__new__(cls)
    errors.FleetcpuError.__init__(exc, f"{cls.__name__} happened")
    raising.append(exc)
    res = CliRunner().invoke(main, ["raise-for-test"], catch_exceptions=False)
    assert (res.exit_code, res.stderr, res.stdout) == (cls.exit_code, f"error: {cls.__name__} happened\n", "")


@pytest.mark.parametrize(
    ("exc", "code", "stderr"),
    [
        (KeyboardInterrupt(), 130, "error: interrupted\n"),
        (
            LookupError("a bug"),
            1,
            "error: internal error: LookupError: a bug (set FLEETCPU_DEBUG=1 for a traceback)\n",
        ),
    ],
    ids=["ctrl-c", "bug"],  # a closed pipe needs a real stdout: test_broken_pipe_is_quiet
)
def test_the_group_maps_interrupts_pipes_and_bugs(
    raising: list[BaseException], exc: BaseException, code: int, stderr: str
) -> None:
    raising.append(exc)
    res = CliRunner().invoke(main, ["raise-for-test"], catch_exceptions=False)
    assert (res.exit_code, res.stderr) == (code, stderr)


def test_every_command_errors_in_one_line(tmp_path: Path) -> None:
    """Every registered command, given a real bad input, ends in one ``error:`` line and its code."""
    not_a_store = tmp_path / "file"
    not_a_store.write_text("x")
    store = ["--store", str(not_a_store)]
    cases = {
        "import": (["import", *store, str(tmp_path / "missing.json")], 3),
        "hosts": (["hosts", *store], 21),
        "fsck": (["fsck", *store], 21),
        "baseline": (["baseline", *store, "--pool", "p"], 21),
        "blockers": (["blockers", *store, "--pool", "p"], 21),
        "check": (["check", *store, "--pool", "p", "h"], 21),
        "adopt": (["adopt", *store, "--pool", "p", "--yes"], 21),
        "status": (["status", *store], 21),
        "verify": (["verify", *store, "--pool", "p"], 21),
        "collect": (["collect", str(tmp_path / "missing.ini"), "--store", str(tmp_path / "s")], 3),
        "report": (["report", *store, "--pool", "p", "-o", str(not_a_store / "r.html")], 2),
        # the probe's errors are documents with their exit code (tests/test_probe_live.py)
        "probe": (["probe", "--host-root", str(tmp_path / "missing"), "--qemu-binary", "/bin/false"], None),
    }
    assert set(cases) == set(main.commands)
    for name, (argv, code) in cases.items():
        res = CliRunner().invoke(main, argv, catch_exceptions=False)
        lines = res.stderr.splitlines()
        assert lines and lines[-1].startswith("error: "), (name, res.stderr)
        assert "Traceback" not in res.stderr, name
        if code is not None:
            assert res.exit_code == code and len(lines) == 1, (name, res.exit_code, res.stderr)
        else:
            assert res.exit_code > 2, (name, res.exit_code)
