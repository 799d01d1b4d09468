"""Every process-level speed trick of the orchestrator, behind the probe's switch ``FLEETCPU_PLAIN=1``.

Why one module: each trick below buys a measured figure, and each surprises
a reader who meets it inside domain code (a CLI that ends without its
interpreter's teardown, ``import pandas`` failing on purpose, a collector
that is off, ``ctypes.util.find_library`` answering from a cache). Here
they are named, with what they buy and the benchmark that shows it; the
commands, the baseline's selection and the asyncssh import only call them.
With ``FLEETCPU_PLAIN=1`` every trick steps aside for the ordinary way
(``fleetcpu.probe.speed.plain``, the one switch, which also turns off the
probe's tricks and the bootstrap's zip reader on hosts it reaches).

Any layer may call this module; it imports only the standard library and
``fleetcpu.probe.speed``, and at import only what every command imports
anyway (the CLI imports it first thing): ``ctypes`` and ``subprocess`` wait
for ``quick_find_library``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.abc
import os
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

from .probe.speed import PLAIN_ENV, plain

__all__ = [
    "PLAIN_ENV",
    "allow_data_libraries",
    "block_data_libraries",
    "cached_finder",
    "exit_process",
    "paused_gc",
    "plain",
    "quick_find_library",
]


# --------------------------------------------------------------------------- ending the process
def exit_process(status: int) -> NoReturn:
    """End the CLI without the interpreter's teardown, once the standard streams are flushed.

    Buys: tearing down pyarrow alone (its thread pools and allocator) costs
    ~0.1 s of every command's wall time (0.22 vs 0.11 s for a bare ``import
    pyarrow``), 10% of ``baseline`` on 10,000 hosts and of a 16-host
    ``collect`` (commit b59f4b2; ``benchmarks/fleet_bench.py``, ``cli *``
    rows, and ``benchmarks/collect_bench.py``). Nothing is lost: every
    command has committed what it writes (the store fsyncs its commit)
    before it returns, and asyncio.run has joined its threads. Measured
    again with only this trick off (``fleet_bench.py --quick --reuse``, two
    interleaved rounds, loaded 2-core machine): inside the noise, 10,000-host
    ``baseline`` 1.38-1.43 s CPU against 1.46-1.55 s with it on. Plain:
    ``sys.exit``, with the full teardown.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that left, a closed stream
            stream.flush()
    if plain():
        sys.exit(status)
    os._exit(status)


# --------------------------------------------------------------------------- no pandas, no numpy
class _NoDataLibraries(importlib.abc.MetaPathFinder):
    """``import pandas`` and ``import numpy`` fail, as if they were not installed."""

    BLOCKED = ("pandas", "numpy")

    def find_spec(self, fullname: str, _path: object = None, _target: object = None) -> None:
        if fullname.partition(".")[0] in self.BLOCKED:
            raise ModuleNotFoundError("fleetcpu's CLI does not load pandas or numpy", name=fullname)


def block_data_libraries() -> None:
    """Make pandas and numpy unimportable in this process (unless already imported).

    Buys: no command needs pandas but ``report`` (which lifts this block),
    yet pyarrow imports it on first use when it is installed, which cost
    every command ~55 MiB and ~0.2 s (collect: 163 -> 128 MiB peak;
    baseline 0.46 -> 0.28 s; commit 15f82c4). numpy likewise: pyarrow
    imports it at start-up when present (~60 ms of every command, ~6% of
    baseline on 10,000 hosts; commit b382083), but has not needed it since
    pyarrow 16. pyarrow treats a missing pandas as a normal, supported
    setup. ``benchmarks/fleet_bench.py`` (``cli *`` rows, peak RSS) and
    ``benchmarks/collect_bench.py`` (RSS column) show it. Measured again
    with only this block off (``fleet_bench.py --quick --reuse``, two
    interleaved rounds, loaded machine): start-up 64 -> 75 MiB peak and
    +10-140 ms CPU; 10,000-host ``baseline`` 210-215 -> 251-257 MiB;
    ``status`` 1.23 -> 1.76-1.87 s CPU. Plain: nothing is blocked.
    """
    if plain() or "pandas" in sys.modules:
        return
    if not any(isinstance(f, _NoDataLibraries) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoDataLibraries())


def allow_data_libraries() -> None:
    """Lift ``block_data_libraries`` (``fleetcpu report`` is built on pandas)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _NoDataLibraries)]


# --------------------------------------------------------------------------- the cyclic collector
@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector paused, as it was before afterwards.

    Buys: selecting 10,000 members builds some 50,000 records (index
    states, facts, snapshots, members) and hundreds of thousands of values.
    None is in a cycle, yet every 700 allocations the collector scans the
    young objects and now and then every object the process holds: 0.07 to
    0.1 s of CPU of a 10,000-host ``baseline`` or ``blockers`` that frees
    nothing (commit 3062731; ``benchmarks/fleet_bench.py``, ``select`` and
    ``cli baseline`` rows). Plain reference counting still frees everything
    dropped on the way. Measured again with only this trick off
    (``fleet_bench.py --quick --reuse``, two rounds, loaded machine): inside
    the noise there (10,000-host ``baseline`` 1.32-1.56 s CPU against
    1.46-1.55 s). Plain: the collector runs.
    """
    was = gc.isenabled()
    if not plain():
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# --------------------------------------------------------------------------- find_library
#: ldconfig's ABI tag of this process's libraries, as ``ctypes.util`` spells it.
_ABI = {
    "x86_64-64": "libc6,x86-64",
    "ppc64-64": "libc6,64bit",
    "sparc64-64": "libc6,64bit",
    "s390x-64": "libc6,64bit",
    "ia64-64": "libc6,IA-64",
    "arm-32": "libc6(,hard-float)?",
}


def _abi_tag() -> str:
    import struct

    machine = os.uname().machine
    if machine.startswith("arm"):
        machine = "arm"
    return _ABI.get(f"{machine}-{struct.calcsize('l') * 8}", "libc6")


def _ldconfig_listing() -> bytes:
    import subprocess

    try:
        return subprocess.run(
            ["/sbin/ldconfig", "-p"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"LC_ALL": "C", "LANG": "C"},
            check=False,
        ).stdout
    except OSError:
        return b""


def cached_finder(
    standard: Callable[[str], str | None], listing: Callable[[], bytes] = _ldconfig_listing
) -> Callable[[str], str | None]:
    """``find_library`` answering from one ldconfig listing; ``standard`` only with LD_LIBRARY_PATH."""
    import re

    listed = functools.cache(listing)
    abi = _abi_tag()

    def find_library(name: str) -> str | None:
        pattern = os.fsencode(rf"\s+(lib{re.escape(name)}\.[^\s]+)\s+\({abi}")
        found = re.search(pattern, listed())
        if found:
            return os.fsdecode(found.group(1))
        return standard(name) if os.environ.get("LD_LIBRARY_PATH") else None

    return find_library


@contextlib.contextmanager
def quick_find_library() -> Iterator[None]:
    """For the duration of the block, ``ctypes.util.find_library`` answers from one ``ldconfig -p``.

    Buys: at import, asyncssh looks for optional C libraries (liboqs,
    nettle) with ``find_library``, which on Linux runs ``/sbin/ldconfig -p``
    for every name tried and, for every name it does not find there,
    ``gcc`` (with ``collect2`` and ``ld``) and ``ld`` again: eleven
    processes and ~25 ms before the first connection of every ``collect``
    or ``verify`` (commit f1d1946, strace of a 16-host collect;
    ``benchmarks/collect_bench.py``, ``startup`` row; tests/test_sshlib.py
    counts the processes). The listing is read once and matched with the
    standard library's own pattern; a name missing from it is looked for
    the standard way only when ``LD_LIBRARY_PATH`` is set (the case the
    compiler and linker fallbacks exist for), so what is found is what the
    standard search finds: the libraries in the dynamic linker's cache.
    Plain: the standard ``find_library``.
    """
    if plain():
        yield
        return
    import ctypes.util

    standard = ctypes.util.find_library
    ctypes.util.find_library = cached_finder(standard)  # type: ignore[assignment]
    try:
        yield
    finally:
        ctypes.util.find_library = standard
