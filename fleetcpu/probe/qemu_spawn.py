"""Starting the host's QEMU: the only module that spawns a process, and it needs no asyncio.

Every QEMU the probe starts is paused (``-S``), unconfigured (``-nodefaults
-no-user-config``), tiny (64 MiB, one vCPU), without core dumps, in a private
working directory, with QMP on an inherited socketpair (no socket file to
leak), and dies with the probe (``PR_SET_PDEATHSIG``), so a probe killed by
SSH teardown or SIGKILL leaves nothing running on a production host.

Why apart from ``qemu`` (which watches the processes under asyncio): the
shipped entry point starts the first guest from here
before it imports asyncio, qemu.qmp and the records, so those ~60 ms of
imports run while QEMU boots instead of before it (``qemu_early``).

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from ..errors import FleetcpuError, NotQemuError, QemuMissingError

if TYPE_CHECKING:  # no typing or socket import before the first QEMU is on its way
    import socket
    from typing import IO, Any, List, Optional, Sequence

    from .document import Attempt

__all__ = [
    "DEFAULT_BINARIES",
    "STDERR_TAIL",
    "Launch",
    "Output",
    "VersionRun",
    "find_binary",
    "launch_argv",
    "spawn",
    "spawn_error",
    "tail",
    "version_of",
]

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


_libc: Any = None


def _prctl() -> Any:
    """libc's prctl, looked up in the parent: dlopen after fork is slow and not fork-safe."""
    global _libc  # noqa: PLW0603
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    return _libc.prctl if _libc else None


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(Exception):
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(
    argv: Sequence[str], *, cwd: Optional[str] = None, pass_fds: Sequence[int] = (), stdout: bool = False
) -> subprocess.Popen[bytes]:
    """Start one QEMU process: no stdin, stderr (and ``stdout`` if asked) on pipes, no core."""
    _prctl()
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=tuple(pass_fds),
        cwd=cwd,
        # No core, PDEATHSIG: nothing but a syscall and a call into the libc
        # loaded before the fork runs in the child (waiter threads may exist).
        preexec_fn=_child_setup,  # noqa: PLW1509
    )


def tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    return data[-limit:].decode("utf-8", errors="replace")


class Output:
    """One pipe of a child, read without ever blocking: what arrived so far, and whether it ended.

    Read from here before the event loop exists and from the loop's reader
    callback after, into the same buffer.
    """

    def __init__(self, pipe: IO[bytes], limit: Optional[int] = None) -> None:
        self._pipe = pipe
        self.fd = pipe.fileno()
        os.set_blocking(self.fd, False)
        self.data = bytearray()
        self.eof = False
        self._limit = limit

    def drain(self) -> bool:
        """Read whatever is there; True once the writer closed its end."""
        while not self.eof:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.data += chunk
            if self._limit is not None and len(self.data) > 4 * self._limit:
                del self.data[: -self._limit]
        return self.eof

    def close(self) -> None:
        self._pipe.close()


def spawn_error(binary: str, exc: OSError) -> FleetcpuError:
    """Why ``binary`` could not even be started: missing, or not a program."""
    if isinstance(exc, FileNotFoundError):
        return QemuMissingError("QEMU binary not found: %s" % binary)
    return NotQemuError("%s is not QEMU: cannot execute it (%s)" % (binary, exc.strerror))


class VersionRun:
    """``QEMU -version``: tells "not QEMU" from "QEMU refused every launch".

    Run only when no launch of the chain came up to its QMP greeting: a
    guest that answers ``query-version`` has proved the binary is QEMU, and a
    separate ``-version`` process per probe would cost every host some 18 ms
    of CPU (a QEMU start: dynamic linking and exec) for a question that
    working hosts answer anyway. A launch that dies at once cannot tell the
    two apart; the banner can.
    """

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.argv = (binary, "-version")
        self.started = time.monotonic()
        #: When it was first seen finished (taken over later, it must not look slower).
        self.ended: Optional[float] = None
        try:
            self.proc = spawn(self.argv, stdout=True)
        except OSError as exc:
            raise spawn_error(binary, exc) from exc
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.stdout = Output(self.proc.stdout)
        self.stderr = Output(self.proc.stderr)

    def wait(self, timeout: float) -> bool:
        """Block until it finished or ``timeout`` passed; True if it finished.

        Waits on its pipes, not with ``Popen.wait(timeout)``, whose polling
        backs off to 50 ms sleeps: the end of ``-version`` is on the probe's
        critical path.
        """
        deadline = time.monotonic() + timeout
        while True:
            still_open = [o.fd for o in (self.stdout, self.stderr) if not o.drain()]
            left = deadline - time.monotonic()
            if not still_open or left <= 0:
                break
            select.select(still_open, [], [], left)
        if still_open:
            return False
        try:  # both pipes closed: QEMU is exiting, if not already gone
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return self.finished()

    def finished(self) -> bool:
        """Exited with both pipes at EOF; never blocks."""
        eof = self.stdout.drain() & self.stderr.drain()
        if eof and self.proc.poll() is not None:
            self.ended = self.ended or time.monotonic()
            return True
        return False

    def version(self) -> str:
        """The version of a finished run; NotQemuError unless it printed QEMU's banner."""
        return version_of(self.binary, self.proc.returncode, bytes(self.stdout.data), bytes(self.stderr.data))

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


def version_of(binary: str, returncode: Optional[int], out: bytes, err: bytes) -> str:
    """The version a finished ``QEMU -version`` printed; NotQemuError unless it is QEMU's banner."""
    m = _VERSION_RE.search(out.decode("utf-8", errors="replace"))
    if returncode != 0 or m is None:
        first = (out or err).decode("utf-8", errors="replace").strip().splitlines()
        raise NotQemuError(
            "%s is not QEMU: '-version' printed %r (exit %s)"
            % (binary, first[0][:120] if first else "", returncode)
        )
    return m.group(1)


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


class Launch:
    """One paused QEMU: its argv, its end of the QMP socketpair, its stderr, when it started.

    ``qemu.QemuInstance`` takes it over to talk to and reap it; a launch
    nobody took over is ended by ``discard``.
    """

    def __init__(self, binary: str, machine: str, accel: str, cpu: str) -> None:
        import socket

        self.machine = machine
        self.accel = accel
        self.cpu = cpu
        self._ours, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.argv = tuple(launch_argv(binary, machine, accel, cpu, self._theirs.fileno()))
        self.started = 0.0
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.stderr: Optional[Output] = None

    def spawn(self, workdir: str) -> socket.socket:
        """Start QEMU in ``workdir``; returns the probe's end of the QMP socket."""
        try:
            self.started = time.monotonic()
            self.proc = spawn(self.argv, cwd=workdir, pass_fds=(self._theirs.fileno(),))
        except OSError as exc:
            self._ours.close()
            raise spawn_error(self.argv[0], exc) from exc
        except BaseException:
            self._ours.close()
            raise
        finally:
            self._theirs.close()
        assert self.proc.stderr is not None
        self.stderr = Output(self.proc.stderr, STDERR_TAIL)
        return self._ours

    @property
    def sock(self) -> socket.socket:
        return self._ours

    def attempt(self, outcome: str) -> Attempt:
        """This launch as evidence: argv, outcome, exit status, stderr tail, time since spawn.

        The records are imported here, never before the first QEMU is spawned.
        """
        from .document import Attempt

        assert self.proc is not None
        assert self.stderr is not None
        return Attempt(
            machine_type=self.machine,
            accel=self.accel,
            cpu=self.cpu,
            argv=self.argv,
            outcome=outcome,
            exit_status=self.proc.returncode,
            stderr_tail=tail(bytes(self.stderr.data)),
            duration_s=round(time.monotonic() - self.started, 4),
        )

    def discard(self) -> None:
        """Kill and reap QEMU, keep its stderr, close every descriptor."""
        assert self.proc is not None
        assert self.stderr is not None
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()
        self.stderr.drain()  # what it wrote before it died is in the pipe
        self.stderr.close()
        self._ours.close()
