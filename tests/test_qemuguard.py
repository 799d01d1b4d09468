"""The orphan guard stops the QEMUs this session leaked and never touches any other.

Each QEMU here is real, paused and detached with ``-daemonize``, so that, like
a libvirt guest, it is no descendant of this process: only the guard's
positive marks (the session token in its environment, or the suite's guest
name prefix) can make it ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import kill_leaked
from .support import qemuguard


def _alive(pid: int) -> bool:
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


@pytest.fixture
def detached(qemu_bin: str, tmp_path: Path) -> Iterator[object]:
    started: list[int] = []

    def start(name: str, *, token: bool) -> int:
        env = {k: v for k, v in os.environ.items() if k != qemuguard.ENV}
        if token:
            env[qemuguard.ENV] = qemuguard.TOKEN
        pidfile = tmp_path / f"{len(started)}.pid"
        subprocess.run(
            [
                qemu_bin,
                "-nodefaults",
                "-display",
                "none",
                "-S",
                "-m",
                "16",
                "-machine",
                "none",
                "-accel",
                "tcg",
                "-name",
                name,
                "-daemonize",
                "-pidfile",
                str(pidfile),
            ],
            env=env,
            check=True,
            timeout=30,
            capture_output=True,
        )
        pid = int(pidfile.read_text())
        started.append(pid)
        return pid

    yield start
    for pid in started:  # every QEMU this test started, by its own pid
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_qemu_the_suite_did_not_start_survives(detached) -> None:  # type: ignore[no-untyped-def]
    # As libvirtd starts a guest: another environment, its own session, parent gone.
    foreign = [
        detached("guest=prod-db-01,debug-threads=on", token=False),
        detached("fleetcpu-test-not-this-session-x", token=False),
    ]
    before = qemuguard.qemu_pids() - set(foreign)  # they appeared "during the test"
    assert kill_leaked(before, grace=0.2) == []
    assert all(_alive(p) for p in foreign)


def test_a_qemu_the_suite_leaked_is_caught(detached) -> None:  # type: ignore[no-untyped-def]
    by_env = detached("leaked-by-a-probe", token=True)
    by_name = detached(f"guest={qemuguard.GUEST_PREFIX}libvirt-guest,debug-threads=on", token=False)
    bystander = detached("guest=prod-web-02", token=False)
    before = qemuguard.qemu_pids() - {by_env, by_name, bystander}
    leaked = kill_leaked(before, grace=0.2)
    assert sorted("leaked-by-a-probe" in c for c in leaked) == [False, True]
    assert any(qemuguard.GUEST_PREFIX in c for c in leaked)
    deadline = time.monotonic() + 5
    while (_alive(by_env) or _alive(by_name)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(by_env) and not _alive(by_name)
    assert _alive(bystander)
