"""Every process-level speed trick of the probe, and ``FLEETCPU_PLAIN=1``, the switch that turns them off.

Why one module: each trick below buys a measured figure, and each surprises a
reader who meets it inside domain code (a process that ends without its
interpreter's teardown, a garbage collector that is off, a pidfd where
asyncio would start a thread). Here they are named, with what they buy and
the benchmark that shows it; the probe's domain code only calls them. With
``FLEETCPU_PLAIN=1`` in the environment every trick steps aside for the
ordinary way (``plain()``), which is how to tell whether a bug is the
trick's: the suite runs a subset in that mode (``pytest -m plain``,
``scripts/test.sh``). The orchestrator's tricks are in ``fleetcpu.speed``,
behind the same switch.

Python 3.9, stdlib only: this module ships to hosts, and is imported before
QEMU is started (it imports nothing the interpreter has not already).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, Callable, NoReturn, Optional

if TYPE_CHECKING:
    import asyncio
    import subprocess

__all__ = ["PLAIN_ENV", "ExitWatch", "PausedGc", "exit_process", "plain"]

#: The switch: set to anything but "" or "0", every trick (here and in ``fleetcpu.speed``) is off.
PLAIN_ENV = "FLEETCPU_PLAIN"


def plain() -> bool:
    """True when ``FLEETCPU_PLAIN`` asks for the ordinary way everywhere."""
    return os.environ.get(PLAIN_ENV, "") not in ("", "0")


def exit_process(code: int) -> NoReturn:
    """End the probe once its output is flushed, without the interpreter's teardown.

    Buys: tearing down asyncio, typing and the records module by module
    costs more CPU than anything the probe does after QEMU quits (commit
    d9e2272). Measured again with only this trick off: ~50 ms of CPU per
    probe, 275 -> 329 ms (``benchmarks/probe_bench.py --quick --accel tcg``,
    CPU column, median of three runs, loaded 2-core machine). The bundle's
    bootstrap ends the probe the same way on a host. Plain: ``sys.exit``.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # nobody reads our output any more
        code = code or 1
    if plain():
        sys.exit(code)
    os._exit(code)


class PausedGc:
    """``with PausedGc():`` the cyclic garbage collector is off, as it was afterwards.

    Buys: a probe lives for a fraction of a second and allocates a bounded
    amount; the collector's passes over the freshly imported modules cost
    more than the few cycles asyncio leaves are worth (commit d9e2272).
    Measured again with only this trick off, it is inside the noise: 265 vs
    275 ms of CPU (``benchmarks/probe_bench.py --quick --accel tcg``, median
    of three runs, loaded machine), so it is a candidate for removal once
    measured on a quiet one. A class, not ``contextlib``: it runs
    before QEMU is started, and contextlib is not imported yet. Plain: the
    collector runs.
    """

    def __enter__(self) -> None:
        self._was = gc.isenabled()
        if not plain():
            gc.disable()

    def __exit__(self, *_exc: object) -> None:
        if self._was:
            gc.enable()


class ExitWatch:
    """Call ``on_exit(returncode)`` on ``loop`` once ``proc`` has exited (and reap it).

    Buys: a pidfd (Linux 5.3+) wakes the loop itself when QEMU exits. A
    waiter thread, as asyncio's ``ThreadedChildWatcher`` uses, must first
    be scheduled, take the GIL and then wake the loop, which on a busy host
    costs a time slice per QEMU, several times per probe (``-version``,
    each attempt, ``quit``) (commit 2a4cf69, which gives no figure).
    Measured with only this trick off: CPU unchanged (268 vs 275 ms), wall
    469 vs 410 ms, inside this loaded machine's noise
    (``benchmarks/probe_bench.py --quick --accel tcg``, median of three
    runs); ``benchmarks/host_bench.py`` on a busy host is where it shows.
    Plain, or without pidfds: one waiter thread per process, as asyncio's
    own child watcher does.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes], on_exit: Callable[[int], None]
    ) -> None:
        self._loop = loop
        self._proc = proc
        self._on_exit = on_exit
        self._pidfd: Optional[int] = None
        if not plain():
            try:  # unreaped (the caller polled it), so the pid cannot have been reused
                self._pidfd = os.pidfd_open(proc.pid)
            except (AttributeError, OSError):  # Linux < 5.3
                self._pidfd = None
        if self._pidfd is not None:
            loop.add_reader(self._pidfd, self._pidfd_readable)
        else:
            import threading  # only now: the probe imports this module before QEMU is started

            threading.Thread(target=self._wait, name="fleetcpu-wait-%d" % proc.pid, daemon=True).start()

    def _pidfd_readable(self) -> None:
        returncode = self._proc.poll()
        if returncode is not None:
            self.close()
            self._on_exit(returncode)

    def _wait(self) -> None:
        import contextlib

        returncode = self._proc.wait()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._on_exit, returncode)

    def close(self) -> None:
        """Stop watching (idempotent); a waiter thread, if any, ends with its process."""
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
