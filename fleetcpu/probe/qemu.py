"""Start and stop the host's QEMU; the only module that spawns a process.

Every QEMU the probe starts is paused (``-S``), unconfigured (``-nodefaults
-no-user-config``), tiny (64 MiB, one vCPU), without core dumps, in a private
working directory, with QMP on an inherited socketpair (no socket file to
leak), and dies with the probe (``PR_SET_PDEATHSIG``), so a probe killed by
SSH teardown or SIGKILL leaves nothing running on a production host.

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from typing import List, Optional, Tuple

from ..errors import NotQemuError, QemuMissingError
from .records import Attempt

#: Where distributions install the x86 system emulator; RHEL's is /usr/libexec/qemu-kvm.
DEFAULT_BINARIES = ("qemu-system-x86_64", "/usr/libexec/qemu-kvm")
STDERR_TAIL = 4096
_VERSION_RE = re.compile(r"QEMU emulator version (\d+\.\d+(?:\.\d+)?)")
_PR_SET_PDEATHSIG = 1


def find_binary(explicit: Optional[str]) -> str:
    """The QEMU to run: ``--qemu-binary`` (a path or a name on PATH), else the usual places."""
    candidates = (explicit,) if explicit else DEFAULT_BINARIES
    for cand in candidates:
        assert cand is not None
        path = cand if os.sep in cand else shutil.which(cand)
        if path and os.path.exists(path):
            return os.path.abspath(path)
    if explicit:
        raise QemuMissingError("QEMU binary not found: %s" % explicit)
    raise QemuMissingError(
        "no QEMU found (looked for %s); install qemu-system-x86 or pass --qemu-binary"
        % ", ".join(DEFAULT_BINARIES)
    )


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    return data[-limit:].decode("utf-8", errors="replace")


async def check_version(binary: str, timeout: float) -> Tuple[str, Attempt]:
    """Run ``QEMU -version``: proves the binary is QEMU before any guest is configured.

    A launch that dies at once cannot tell "not QEMU" from "QEMU refused the
    machine"; the banner can.
    """
    argv = (binary, "-version")
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_child_setup,
        )
    except FileNotFoundError as exc:
        raise QemuMissingError("QEMU binary not found: %s" % binary) from exc
    except OSError as exc:
        raise NotQemuError("%s is not QEMU: cannot execute it (%s)" % (binary, exc.strerror)) from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise NotQemuError("%s is not QEMU: '-version' did not answer in %.0fs" % (binary, timeout)) from exc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    attempt = Attempt(
        machine_type="",
        accel="",
        cpu="",
        argv=argv,
        outcome="ok" if proc.returncode == 0 else "died",
        exit_status=proc.returncode,
        stderr_tail=tail(err),
        duration_s=round(time.monotonic() - started, 4),
    )
    m = _VERSION_RE.search(out.decode("utf-8", errors="replace"))
    if proc.returncode != 0 or m is None:
        first = (out or err).decode("utf-8", errors="replace").strip().splitlines()
        raise NotQemuError(
            "%s is not QEMU: '-version' printed %r (exit %s)"
            % (binary, first[0][:120] if first else "", proc.returncode)
        )
    return m.group(1), attempt


def launch_argv(binary: str, machine: str, accel: str, cpu: str, qmp_fd: int) -> List[str]:
    return [
        binary,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
        "-m",
        "64",
        "-smp",
        "1",
        "-machine",
        machine,
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-chardev",
        "socket,id=qmp,fd=%d" % qmp_fd,
        "-mon",
        "chardev=qmp,mode=control",
    ]


class QemuInstance:
    """One paused QEMU with its QMP socket; ``stop()`` is idempotent and always safe."""

    def __init__(self, binary: str, machine: str, accel: str, cpu: str, workdir: str) -> None:
        self.binary = binary
        self.machine = machine
        self.accel = accel
        self.cpu = cpu
        self.workdir = workdir
        self.argv: Tuple[str, ...] = ()
        self.qmp_socket: Optional[socket.socket] = None
        self._proc: Optional[asyncio.subprocess.Process] = None
        self._stderr = bytearray()
        self._reader: Optional[asyncio.Task[None]] = None
        self._started = 0.0

    async def start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.argv = tuple(
                launch_argv(self.binary, self.machine, self.accel, self.cpu, theirs.fileno())
            )
            self._started = time.monotonic()
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                cwd=self.workdir,
                preexec_fn=_child_setup,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.qmp_socket = ours
        self._reader = asyncio.ensure_future(self._read_stderr())
        return ours

    async def _read_stderr(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        while True:
            chunk = await self._proc.stderr.read(65536)
            if not chunk:
                return
            self._stderr += chunk
            if len(self._stderr) > 4 * STDERR_TAIL:
                del self._stderr[: -STDERR_TAIL]

    @property
    def returncode(self) -> Optional[int]:
        return self._proc.returncode if self._proc is not None else None

    async def wait_exit(self, timeout: float) -> Optional[int]:
        """Give QEMU ``timeout`` seconds to exit on its own; None if it is still running."""
        if self._proc is None:
            return None
        try:
            return await asyncio.wait_for(self._proc.wait(), timeout)
        except asyncio.TimeoutError:
            return None

    async def stop(self) -> None:
        """Kill QEMU if it still runs and reap it, so no process or fd outlives the attempt."""
        proc = self._proc
        try:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if self._reader is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(self._reader, 1.0)
        finally:
            if self._reader is not None and not self._reader.done():
                self._reader.cancel()
            if self.qmp_socket is not None:
                self.qmp_socket.close()

    def stderr_tail(self) -> str:
        return tail(bytes(self._stderr))

    def attempt(self, outcome: str) -> Attempt:
        return Attempt(
            machine_type=self.machine,
            accel=self.accel,
            cpu=self.cpu,
            argv=self.argv,
            outcome=outcome,
            exit_status=self.returncode,
            stderr_tail=self.stderr_tail(),
            duration_s=round(time.monotonic() - self._started, 4),
        )
