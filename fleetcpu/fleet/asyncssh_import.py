"""asyncssh, imported once for the package, without the process storm of its library probes.

Why this module: at import, asyncssh looks for optional C libraries (liboqs
for post-quantum key exchange, nettle for UMAC) with
``ctypes.util.find_library``. On Linux that runs ``/sbin/ldconfig -p`` for
every name tried and, for every name it does not find there, ``gcc`` (with
``collect2`` and ``ld``) and ``ld`` again: on an orchestrator without
liboqs that is eleven processes and ~25 ms before the first connection of
every ``fleetcpu collect`` or ``verify`` (strace of a 16-host collect). For
the duration of that import only, ``find_library`` answers from one
``ldconfig -p`` listing, read once, with the standard library's own
pattern; a name missing from it is looked for the standard way only when
``LD_LIBRARY_PATH`` is set (the case the compiler and linker fallbacks
exist for). What asyncssh finds is therefore what it found before: the
libraries in the dynamic linker's cache.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import functools
import os
import re
import struct
import subprocess
from collections.abc import Callable, Iterator

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
    machine = os.uname().machine
    if machine.startswith("arm"):
        machine = "arm"
    return _ABI.get(f"{machine}-{struct.calcsize('l') * 8}", "libc6")


def _ldconfig_listing() -> bytes:
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
    standard = ctypes.util.find_library
    ctypes.util.find_library = cached_finder(standard)  # type: ignore[assignment]
    try:
        yield
    finally:
        ctypes.util.find_library = standard


with quick_find_library():
    import asyncssh

__all__ = ["asyncssh", "cached_finder", "quick_find_library"]
