"""How the orchestrator runs one command on one host, whatever carries it (ssh, local).

A ``Transport`` takes a host, the shell command line (``bootstrap.remote_command``)
and the bytes for its stdin, and returns a ``RemoteRun``: what came back
(stdout, the stderr tail, exit status or signal) and what went wrong on the way
once the command had started (deadline hit, stdin refused, connection lost).
A failure *before* the command starts (connect, host key, auth) is a
``HostFailure`` carrying its stage and whether a retry may help.

Why one driver (``drive``) for every transport: the rules that keep a host
clean are the same over ssh and locally, and the local transport exists so
tests exercise them without sshd. The rules:

* stdin stays open while we want the answer (the host side treats EOF as
  "stop", see ``bootstrap_host``);
* at the deadline, or on cancellation: close stdin and send SIGTERM (the probe
  stops QEMU, removes its directory and prints an "interrupted" document),
  wait a grace period, and only then close hard;
* stdout is kept up to a cap, stderr only as a tail, so one misbehaving host
  cannot exhaust the orchestrator's memory; and beyond its first
  ``STDOUT_FREE`` bytes a host's stdout draws on one budget shared by every
  host in flight (``STDOUT_BUDGET``), so many misbehaving hosts cannot either
  (32 hosts printing 100 MB each took the collector to 1.17 GiB when each
  could keep 32 MiB); a host that finds the budget spent is cut off as
  over-long output and its buffer is dropped at once;
* a cancelled host is cleaned up and the ``CancelledError`` goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from .inventory import HostSpec
from .remote_run import STDERR_TAIL, STDOUT_BUDGET, STDOUT_CAP, STDOUT_FREE, RemoteRun

__all__ = ["Channel", "Transport", "drive"]


class _Budget:
    """Bytes of stdout shared by the hosts in flight; one event loop, so no lock."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, n: int) -> bool:
        if n > self.left:
            return False
        self.left -= n
        return True

    def give(self, n: int) -> None:
        self.left += n


_SHARED = _Budget(STDOUT_BUDGET)


class Transport(Protocol):
    """Runs ``command`` on ``host`` with ``stdin`` written to it; the command gets ``timeout`` seconds."""

    name: str

    async def run(self, host: HostSpec, command: str, stdin: bytes, timeout: float) -> RemoteRun: ...

    async def aclose(self) -> None: ...


class Channel(Protocol):
    """The few operations ``drive`` needs from a running command (ssh process, local process)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close_stdin(self) -> None: ...

    async def read_stdout(self) -> bytes: ...

    async def read_stderr(self) -> bytes: ...

    async def wait(self) -> None: ...

    def exit(self) -> tuple[int | None, str | None]: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _wait_all(tasks: list[asyncio.Task[None]], timeout: float) -> bool:
    """True when every task finished within ``timeout``; never cancels them, never raises."""
    if not tasks:
        return True
    _, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
    return not pending


class _Exchange:
    """The four concurrent jobs of one command: feed stdin, read stdout, read stderr, await the exit."""

    def __init__(self, channel: Channel, stdin: bytes) -> None:
        self.channel = channel
        self.stdin = stdin
        self.out = bytearray()
        self.err = bytearray()
        self.overflow = False
        self.over_budget = False
        #: Bytes of ``_SHARED`` this host holds (given back by ``release``).
        self.drawn = 0
        self.upload_error: str | None = None
        self.lost: str | None = None

    def _lose(self, exc: BaseException) -> None:
        self.lost = self.lost or _describe(exc)

    async def feed(self) -> None:
        try:
            self.channel.write(self.stdin)
            await self.channel.drain()
        except (OSError, EOFError, ConnectionError) as exc:
            self.upload_error = _describe(exc)

    async def pump_out(self) -> None:
        try:
            while chunk := await self.channel.read_stdout():
                if self.overflow:
                    continue  # read and dropped: the answer is "too long" already
                if len(chunk) > STDOUT_CAP - len(self.out):
                    self._cut_off(over_budget=False)
                    continue
                need = len(self.out) + len(chunk) - STDOUT_FREE - self.drawn
                if need > 0:
                    if not _SHARED.take(need):
                        self._cut_off(over_budget=True)
                        continue
                    self.drawn += need
                self.out.extend(chunk)
        except (OSError, EOFError, ConnectionError) as exc:
            self._lose(exc)

    def _cut_off(self, *, over_budget: bool) -> None:
        """Over-long output is never a probe document: drop what is held, now."""
        self.overflow = True
        self.over_budget = over_budget
        self.out = bytearray()
        self.release()

    def release(self) -> None:
        _SHARED.give(self.drawn)
        self.drawn = 0

    async def pump_err(self) -> None:
        try:
            while chunk := await self.channel.read_stderr():
                self.err.extend(chunk)
                if len(self.err) > 2 * STDERR_TAIL:
                    del self.err[:-STDERR_TAIL]
        except (OSError, EOFError, ConnectionError) as exc:
            self._lose(exc)

    async def exited(self) -> None:
        try:
            await self.channel.wait()
        except (OSError, EOFError, ConnectionError) as exc:
            self._lose(exc)


async def drive(channel: Channel, stdin: bytes, timeout: float, grace: float) -> RemoteRun:
    """Feed ``stdin``, collect stdout/stderr and the exit, within ``timeout``; clean up on the way out."""
    started = time.monotonic()
    ex = _Exchange(channel, stdin)
    loop = asyncio.get_running_loop()
    feeder = loop.create_task(ex.feed())
    # The feeder is not waited for: a command that exits without reading
    # stdin (no python3) leaves it blocked; what counts is output and exit.
    watched = [loop.create_task(job()) for job in (ex.pump_out, ex.pump_err, ex.exited)]
    timed_out = killed = False
    try:
        if not await _wait_all(watched, timeout):
            timed_out = True
            killed = not await _stop(channel, watched, grace)
    except BaseException:
        # Cancelled (Ctrl-C, the host's deadline): let the host clean up, then go on cancelling.
        with contextlib.suppress(BaseException):
            await asyncio.shield(_stop(channel, watched, grace))
        raise
    finally:
        for task in (feeder, *watched):
            task.cancel()
        await asyncio.gather(feeder, *watched, return_exceptions=True)
        # The bytes go on to ``interpret`` and are dropped with it: a few ms, one host at a time.
        ex.release()
    status, signal = channel.exit()
    return RemoteRun(
        stdout=bytes(ex.out),
        stderr_tail=bytes(ex.err[-STDERR_TAIL:]),
        exit_status=status,
        exit_signal=signal,
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
        killed=killed,
        stdout_overflow=ex.overflow,
        over_budget=ex.over_budget,
        upload_error=ex.upload_error,
        lost=ex.lost,
    )


async def _stop(channel: Channel, tasks: list[asyncio.Task[None]], grace: float) -> bool:
    """SIGTERM and EOF, then up to ``grace`` seconds for the command to finish; else close hard.

    Both, because either may be lost: some sshd builds ignore signal requests,
    and EOF only reaches a command that still reads stdin.
    """
    with contextlib.suppress(Exception):
        channel.terminate()
    with contextlib.suppress(Exception):
        channel.close_stdin()
    if await _wait_all(tasks, grace):
        return True
    with contextlib.suppress(Exception):
        channel.kill()
    await _wait_all(tasks, 2.0)
    return False
