"""Fixtures shared by the suite: the real QEMU, accelerators, and the orphan guard.

Tests run the real ``qemu-system-x86_64`` (Debian's, installed by the test
command). KVM tests are parametrised with a TCG twin so the suite proves the
same behaviour on machines without ``/dev/kvm``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("FLEETCPU_REALDATA", REPO.parent / "shared" / "realdata")).resolve()
PYTHON = sys.executable


def pytest_configure(config: pytest.Config) -> None:
    """Without the real-host captures half the suite would fail obscurely: stop with one line."""
    if not (REALDATA / "libvirt" / "cpu_map").is_dir():
        raise pytest.UsageError(
            f"real CPU captures not found at {REALDATA}: the checkout must sit beside "
            "shared/ (../shared/realdata), or set FLEETCPU_REALDATA"
        )


def qemu_pids() -> set[int]:
    """Every live process that is a QEMU or one of our fake QEMUs (named qemu-system-*)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"qemu-system" in cmd and ") Z " not in stat:
            out.add(int(entry.name))
    return out


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def ours(pids: set[int]) -> set[int]:
    """The QEMUs this test process started (descendants) or orphaned (re-parented to init).

    Other test runs on the same machine have their own live QEMUs; those are
    neither our descendants nor orphans, so they never fail our tests.
    """
    me = os.getpid()
    out = set()
    for pid in pids:
        cur, hops = pid, 0
        while cur > 1 and hops < 64:
            cur, hops = _ppid(cur), hops + 1
            if cur == me:
                out.add(pid)
                break
        if _ppid(pid) == 1:
            out.add(pid)
    return out


@pytest.fixture(autouse=True)
def no_orphan_qemu() -> Iterator[None]:
    """Fail any test after which a QEMU it started is still running."""
    before = qemu_pids()
    yield
    deadline = time.monotonic() + 3.0
    left = ours(qemu_pids() - before)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = ours(qemu_pids() - before)
    if left:
        cmds = []
        for pid in left:
            try:
                cmds.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
                os.kill(pid, 9)
            except OSError:
                pass
        pytest.fail(f"QEMU processes left running: {cmds}")


@pytest.fixture(scope="session")
def qemu_bin() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        pytest.fail("qemu-system-x86_64 missing: run the README's test command, it installs it")
    return path


def kvm_usable() -> bool:
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


@pytest.fixture(params=["kvm", "tcg"])
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


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``fleetcpu`` CLI in a subprocess."""
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
