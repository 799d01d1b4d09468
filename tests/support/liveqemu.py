"""A paused real QEMU for tests that check what a -cpu string really gives a guest.

One helper for every such test (the baseline self-test, the exports): QMP on
an inherited socketpair, the vCPU read back with qom-get, QEMU killed and
reaped whatever happens.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from fleetcpu.probe.qemu_process import launch_argv

from .replay.hosts import QmpConnection


def argv(binary: str, machine: str, accel: str, cpu_args: list[str], fd: int) -> list[str]:
    """The probe's own launch line, with ``-cpu X`` replaced by any CPU arguments
    (``["-cpu", "base,enforce", "-readconfig", FILE]``)."""
    line = launch_argv(binary, machine, accel, "CPU", fd)
    at = line.index("-cpu")
    return [*line[:at], *cpu_args, *line[at + 2 :]]


@contextmanager
def paused(binary: str, machine: str, accel: str, cpu_args: list[str]) -> Iterator[QmpConnection]:
    """A paused real QEMU with QMP on a socketpair; killed and reaped whatever happens."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen(
            argv(binary, machine, accel, cpu_args, theirs.fileno()),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        theirs.close()
    conn = QmpConnection(ours, timeout=30)
    try:
        try:
            conn.read()
        except EOFError:
            proc.wait(timeout=30)
            assert proc.stderr is not None
            raise AssertionError(f"QEMU refused {cpu_args}: {proc.stderr.read().decode()}") from None
        assert "return" in conn.command("qmp_capabilities")
        yield conn
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
        conn.close()
