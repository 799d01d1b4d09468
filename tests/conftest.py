"""Fixtures shared by the suite: the real QEMU, accelerators, and the orphan guard.

Tests run the real ``qemu-system-x86_64`` (Debian's, installed by the test
command). KVM tests are parametrised with a TCG twin so the suite proves the
same behaviour on machines without ``/dev/kvm``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import qemuguard

REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("FLEETCPU_REALDATA", REPO.parent / "shared" / "realdata")).resolve()
PYTHON = sys.executable
#: ``FLEETCPU_PLAIN=1``: every speed trick is off (``fleetcpu.speed``);
#: ``pytest -m plain`` runs the subset marked for it.
PLAIN = os.environ.get("FLEETCPU_PLAIN", "") not in ("", "0")
#: For a test of a speed trick itself, which the switch turns off (its plain twin is in tests/test_speed.py).
tricks_only = pytest.mark.skipif(PLAIN, reason="tests a speed trick, which FLEETCPU_PLAIN=1 turns off")


#: The system's temp directory as the suite found it, and the private one the session uses.
SYSTEM_TMP = Path(tempfile.gettempdir())
_SESSION_TMP = pytest.StashKey[Path]()
_SYSTEM_BEFORE = pytest.StashKey[set[str]]()


def pytest_configure(config: pytest.Config) -> None:
    """Check the real-host captures are there, and give the session a private temp directory.

    Without the captures half the suite would fail obscurely: stop with one line.
    The temp directory: every temporary of the session (pytest's tmp_path, and
    TMPDIR for every process it starts) lives in one directory that the session
    removes at its end, and whatever a test left there, or in the system's temp
    directory under a ``fleetcpu`` name, fails the run (see pytest_sessionfinish).
    """
    if not (REALDATA / "libvirt" / "cpu_map").is_dir():
        raise pytest.UsageError(
            f"real CPU captures not found at {REALDATA}: the checkout must sit beside "
            "shared/ (../shared/realdata), or set FLEETCPU_REALDATA"
        )
    config.stash[_SYSTEM_BEFORE] = _fleetcpu_entries(SYSTEM_TMP)
    private = Path(tempfile.mkdtemp(prefix="fleetcpu-suite-", dir=SYSTEM_TMP))
    private.chmod(0o711)  # traversable by the unprivileged probe test's user, not listable
    config.stash[_SESSION_TMP] = private
    if config.option.basetemp is None:
        config.option.basetemp = str(private / "t")
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = str(private)


def _fleetcpu_entries(where: Path) -> set[str]:
    """Names a fleetcpu process or test would create there (other suites' private dirs aside)."""
    return {
        p.name
        for p in where.iterdir()
        if p.name.startswith(("fleetcpu", "pytest-of-")) and not p.name.startswith("fleetcpu-suite-")
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if it left anything behind, then remove the session's temp directory."""
    private = session.config.stash.get(_SESSION_TMP, None)
    if private is None or not private.exists():
        return
    left = sorted(p.name for p in private.iterdir() if p.name != "t")
    before = session.config.stash.get(_SYSTEM_BEFORE, set())
    left += sorted(str(SYSTEM_TMP / n) for n in _fleetcpu_entries(SYSTEM_TMP) - before)
    shutil.rmtree(private, ignore_errors=True)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"ERROR: the suite left temporary files behind: {left}", red=True)
        if exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def kill_leaked(before: set[int], *, grace: float = 3.0) -> list[str]:
    """Wait up to ``grace`` s for this session's QEMUs started since ``before`` to end; SIGKILL
    those still running and return their command lines. Never signals a QEMU that is not ours."""
    deadline = time.monotonic() + grace
    left = qemuguard.ours(qemuguard.qemu_pids() - before)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = qemuguard.ours(qemuguard.qemu_pids() - before)
    cmds = []
    for pid in left:
        cmds.append(qemuguard.describe(pid))
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return cmds


@pytest.fixture(autouse=True)
def no_orphan_qemu() -> Iterator[None]:
    """Fail any test after which a QEMU it started is still running (and stop that QEMU)."""
    before = qemuguard.qemu_pids()
    yield
    leaked = kill_leaked(before)
    if leaked:
        pytest.fail(f"QEMU processes left running: {leaked}")


@pytest.fixture(scope="session")
def qemu_bin() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        pytest.fail("qemu-system-x86_64 missing: run the README's test command, it installs it")
    return path


def kvm_usable() -> bool:
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


@pytest.fixture(params=[pytest.param("kvm", marks=pytest.mark.kvm), "tcg"])
def accel(request: pytest.FixtureRequest) -> str:
    """Run the test under KVM and again under TCG; KVM is skipped (not failed) without /dev/kvm."""
    if request.param == "kvm" and not kvm_usable():
        pytest.skip("no usable /dev/kvm here; the tcg twin of this test still runs")
    return str(request.param)


@pytest.fixture
def isolated_tmp(tmp_path: Path) -> Path:
    """A TMPDIR for subprocesses, so leftover files of a probe are visible and attributable."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    return d


def invoke(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``fleetcpu`` CLI in this process, through click's ``CliRunner``: the same commands,
    error edge and exit codes as ``run_cli``, without an interpreter's start per call.

    For what only the real console entry does (signals, pipes, ``os._exit``,
    the pandas block, operator warnings), use ``run_cli``. ``env`` is applied to
    this process for the call (and so to what it starts), ``TMPDIR`` included,
    which ``tempfile`` would otherwise have cached. ``timeout`` is accepted for
    the same signature and not enforced (pytest-timeout is).
    """
    from click.testing import CliRunner

    from fleetcpu.cli import main

    del timeout
    before = tempfile.tempdir
    if env and "TMPDIR" in env:
        tempfile.tempdir = env["TMPDIR"]
    try:
        res = CliRunner().invoke(
            main, list(args), env=env, input=input, prog_name="fleetcpu", catch_exceptions=False
        )
    finally:
        tempfile.tempdir = before
    return subprocess.CompletedProcess(["fleetcpu", *args], res.exit_code, res.stdout, res.stderr)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``fleetcpu`` console entry in a subprocess (``invoke`` runs it in-process)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [PYTHON, "-m", "fleetcpu", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO,
        input=input,
        check=False,
    )
