"""The speed seams (``fleetcpu.speed``, ``fleetcpu.probe.speed``) and their one switch.

Each trick is checked both ways: on by default, and off, the ordinary way,
under ``FLEETCPU_PLAIN=1``. ``pytest -m plain`` with the switch set runs the
subset of the suite marked ``plain`` in that mode (``scripts/test.sh``).
"""

from __future__ import annotations

import asyncio
import ctypes.util
import gc
import os
import subprocess
import threading
from pathlib import Path

import pytest

from fleetcpu import speed
from fleetcpu.fleet.bootstrap import remote_command
from fleetcpu.probe import speed as probe_speed

from .conftest import PYTHON, REPO

pytestmark = pytest.mark.plain


@pytest.fixture(params=[False, True], ids=["tricks", "plain"])
def plain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param:
        monkeypatch.setenv("FLEETCPU_PLAIN", "1")
    else:
        monkeypatch.delenv("FLEETCPU_PLAIN", raising=False)
    return bool(request.param)


def test_the_switch_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("", False), ("0", False), ("1", True), ("yes", True)):
        monkeypatch.setenv("FLEETCPU_PLAIN", value)
        assert speed.plain() is probe_speed.plain() is expected
    monkeypatch.delenv("FLEETCPU_PLAIN")
    assert not speed.plain()


def test_the_collector_is_paused_unless_plain(plain: bool) -> None:
    assert gc.isenabled()
    with speed.paused_gc():
        assert gc.isenabled() is plain
    with probe_speed.PausedGc():
        assert gc.isenabled() is plain
    assert gc.isenabled()


def test_find_library_is_cached_unless_plain(plain: bool) -> None:
    standard = ctypes.util.find_library
    with speed.quick_find_library():
        assert (ctypes.util.find_library is standard) is plain
    assert ctypes.util.find_library is standard


def test_pandas_is_blocked_unless_plain(plain: bool) -> None:
    """In a fresh interpreter: this one may hold pandas already."""
    code = (
        "from fleetcpu import speed\n"
        "speed.block_data_libraries()\n"
        "try:\n"
        "    import numpy\n"
        "except ModuleNotFoundError:\n"
        "    print('blocked')\n"
        "else:\n"
        "    print('imported')\n"
    )
    res = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert res.stdout.strip() == ("imported" if plain else "blocked")


@pytest.mark.parametrize("status", [0, 3])
def test_the_process_ends_without_teardown_unless_plain(plain: bool, status: int) -> None:
    """An atexit handler runs only with the interpreter's teardown: that is what os._exit skips."""
    for module in ("fleetcpu.speed", "fleetcpu.probe.speed"):
        code = (
            "import atexit, importlib\n"
            "atexit.register(lambda: print('teardown'))\n"
            "print('out', end='')\n"  # unflushed: exit_process flushes it
            f"importlib.import_module({module!r}).exit_process({status})\n"
        )
        res = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
        assert res.returncode == status, res.stderr
        assert res.stdout == ("outteardown\n" if plain else "out"), module


def test_qemu_exits_are_watched_by_a_pidfd_unless_plain(plain: bool) -> None:
    async def watch() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        # Alive while the threads are counted: a waiter thread of a child that had already
        # exited could be gone again by then (the whole plain-mode suite caught that once).
        proc = subprocess.Popen(["/bin/sh", "-c", "sleep 0.5; exit 7"])
        exited: asyncio.Future[int] = loop.create_future()
        before = threading.active_count()
        watcher = probe_speed.ExitWatch(loop, proc, exited.set_result)
        threaded = threading.active_count() > before
        try:
            return await asyncio.wait_for(exited, 30), threaded
        finally:
            watcher.close()

    code, threaded = asyncio.run(watch())
    assert code == 7
    assert threaded is (plain or not hasattr(os, "pidfd_open"))


def test_the_host_gets_the_switch(plain: bool) -> None:
    command = remote_command("python3", ["--accel", "tcg"])
    assert command.startswith(
        "exec env FLEETCPU_PLAIN=1 python3 -E -s -c " if plain else "exec python3 -E -s -c "
    )


def test_the_cli_entry_ends_the_same_either_way(plain: bool, tmp_path: Path) -> None:
    """The real console entry: output and status survive os._exit, and sys.exit."""
    env = {**os.environ, "FLEETCPU_STORE": str(tmp_path / "store")}
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu", "hosts"], capture_output=True, text=True, cwd=REPO, env=env, check=False
    )
    assert (res.returncode, res.stdout) == (21, "")
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1


def test_the_plain_host_imports_the_bundle_the_ordinary_way(tmp_path: Path) -> None:
    """FLEETCPU_PLAIN=1 on the host: the bundle unpacked into the private TMPDIR, found on sys.path."""
    from fleetcpu.fleet import bootstrap_host
    from fleetcpu.fleet.bundle import build_bundle, bundle_sources

    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(build_bundle([(name, path.read_bytes()) for name, path in bundle_sources()]).data)
    private = tmp_path / "private"
    private.mkdir()
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(bootstrap_host.__file__).parent)!r})\n"
        "import bootstrap_host\n"
        f"bootstrap_host._install(open({str(bundle)!r}, 'rb').read())\n"
        "import fleetcpu.probe.__main__ as probe, qemu.qmp as qmp\n"
        "print(probe.__spec__.origin)\n"
        "print(qmp.__spec__.origin)\n"
    )
    for plain in (False, True):
        env = {"PATH": os.environ["PATH"], "TMPDIR": str(private)}
        if plain:
            env["FLEETCPU_PLAIN"] = "1"
        res = subprocess.run(
            ["/usr/bin/python3", "-E", "-s", "-c", code],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        where = res.stdout.split()
        if plain:
            assert where == [
                str(private / "bundle" / "fleetcpu" / "probe" / "__main__.py"),
                str(private / "bundle" / "qemu" / "qmp" / "__init__.py"),
            ]
        else:
            assert all(w.startswith(bootstrap_host.ORIGIN) for w in where), where
