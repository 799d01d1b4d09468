"""The host's QEMU under asyncio: its output drained, its exit awaited, killed on every path.

Processes are started by ``qemu_spawn`` (plain ``subprocess``, so the entry point
can start them before asyncio is even imported) and watched here: pipes by
the loop's reader callbacks, the exit by ``speed.ExitWatch`` (a pidfd the
loop polls too, or one waiter thread per process).

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from typing import List, Optional, Tuple

from ..errors import NotQemuError
from ..vocabulary import Outcome
from .document import Attempt
from .qemu_spawn import (
    DEFAULT_BINARIES,
    STDERR_TAIL,
    Launch,
    Output,
    VersionRun,
    find_binary,
    launch_argv,
    tail,
)
from .speed import ExitWatch

__all__ = [
    "DEFAULT_BINARIES",
    "STDERR_TAIL",
    "QemuInstance",
    "check_version",
    "find_binary",
    "launch_argv",
    "tail",
]


def _settle(fut: asyncio.Future[int], returncode: int) -> None:
    if not fut.done():
        fut.set_result(returncode)


class _Watch:
    """A started process seen from the loop: its pipes read as data comes, its exit as a future."""

    def __init__(self, proc: subprocess.Popen[bytes], outputs: List[Output]) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.proc = proc
        self.exited: asyncio.Future[int] = loop.create_future()
        self._pipes: List[Tuple[Output, asyncio.Future[None]]] = []
        for out in outputs:
            ended: asyncio.Future[None] = loop.create_future()
            self._pipes.append((out, ended))
            if out.drain():
                ended.set_result(None)
            else:
                loop.add_reader(out.fd, self._readable, out, ended)
        self._exit: Optional[ExitWatch] = None
        returncode = proc.poll()
        if returncode is not None:
            self.exited.set_result(returncode)
            return
        self._exit = ExitWatch(loop, proc, lambda code: _settle(self.exited, code))

    def _readable(self, out: Output, ended: asyncio.Future[None]) -> None:
        if out.drain():
            self._loop.remove_reader(out.fd)
            if not ended.done():
                ended.set_result(None)

    async def wait(self, timeout: float) -> Optional[int]:
        """The exit status within ``timeout`` seconds, else None (the process keeps running)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except asyncio.TimeoutError:
            return None

    async def finished(self) -> None:
        """Exited, and every pipe read to its end."""
        await asyncio.shield(asyncio.gather(self.exited, *(e for _, e in self._pipes)))

    async def kill(self) -> None:
        """Kill the process unless it already exited, and reap it."""
        if not self.exited.done():
            with contextlib.suppress(OSError):
                self.proc.kill()
        await asyncio.shield(self.exited)

    async def drained(self, timeout: float) -> None:
        """Every pipe at EOF, or ``timeout`` passed (a child of the child may hold one open)."""
        with contextlib.suppress(asyncio.TimeoutError):
            ended = asyncio.gather(*(e for _, e in self._pipes))
            await asyncio.wait_for(asyncio.shield(ended), timeout)

    def close(self) -> None:
        if self._exit is not None:
            self._exit.close()
        for out, ended in self._pipes:
            if not ended.done():
                self._loop.remove_reader(out.fd)
                ended.cancel()
            out.drain()
            out.close()


async def check_version(
    binary: str,
    timeout: float,
    run: Optional[VersionRun] = None,
    record: Optional[List[Attempt]] = None,
) -> Tuple[str, Attempt]:
    """Run ``QEMU -version`` (or take over ``run``, already started): its version, and the attempt.

    The banner proves the binary is QEMU. ``record`` gets the attempt even
    when the banner proves it is not (then NotQemuError is raised).
    """
    run = run if run is not None else VersionRun(binary)
    if run.finished():  # taken over after it ended: nothing to wait for
        run.close()
    else:
        watch = _Watch(run.proc, [run.stdout, run.stderr])
        try:
            await asyncio.wait_for(watch.finished(), timeout)
        except asyncio.TimeoutError as exc:
            raise NotQemuError(
                "%s is not QEMU: '-version' did not answer in %.0fs" % (binary, timeout)
            ) from exc
        finally:
            await watch.kill()
            watch.close()
    attempt = Attempt(
        machine_type="",
        accel="",
        cpu="",
        argv=run.argv,
        outcome=Outcome.OK if run.proc.returncode == 0 else Outcome.DIED,
        exit_status=run.proc.returncode,
        stderr_tail=tail(bytes(run.stderr.data)),
        duration_s=round((run.ended or time.monotonic()) - run.started, 4),
    )
    if record is not None:
        record.append(attempt)
    return run.version(), attempt


class QemuInstance:
    """One paused QEMU with its QMP socket; ``stop()`` is idempotent and always safe.

    ``launch`` is a guest already started (by ``qemu_early``) with these very
    arguments; ``start()`` then takes it over instead of starting another.
    """

    def __init__(
        self, binary: str, machine: str, accel: str, cpu: str, workdir: str, launch: Optional[Launch] = None
    ) -> None:
        self.binary = binary
        self.machine = machine
        self.accel = accel
        self.cpu = cpu
        self.workdir = workdir
        self.argv: Tuple[str, ...] = ()
        self.qmp_socket: Optional[socket.socket] = None
        self._launch = launch
        self._watch: Optional[_Watch] = None

    async def start(self) -> socket.socket:
        launch = self._launch
        if launch is None:
            launch = Launch(self.binary, self.machine, self.accel, self.cpu)
            launch.spawn(self.workdir)
        self._launch = launch
        self.argv = launch.argv
        self.qmp_socket = launch.sock
        assert launch.proc is not None
        assert launch.stderr is not None
        self._watch = _Watch(launch.proc, [launch.stderr])
        return launch.sock

    @property
    def returncode(self) -> Optional[int]:
        if self._launch is None or self._launch.proc is None:
            return None
        return self._launch.proc.returncode

    async def wait_exit(self, timeout: float) -> Optional[int]:
        """Give QEMU ``timeout`` seconds to exit on its own; None if it is still running."""
        if self._watch is None:
            return None
        return await self._watch.wait(timeout)

    async def stop(self) -> None:
        """Kill QEMU if it still runs and reap it, so no process or fd outlives the attempt."""
        watch = self._watch
        try:
            if watch is not None:
                await watch.kill()
                await watch.drained(1.0)
        finally:
            if watch is not None:
                watch.close()
            if self.qmp_socket is not None:
                self.qmp_socket.close()

    def stderr_tail(self) -> str:
        if self._launch is None or self._launch.stderr is None:
            return ""
        return tail(bytes(self._launch.stderr.data))

    def attempt(self, outcome: str) -> Attempt:
        """The launch as evidence; only after ``start()``, which always made one."""
        assert self._launch is not None
        return self._launch.attempt(outcome)
