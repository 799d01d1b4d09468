"""asyncssh, imported once for the package, without the process storm of its library probes.

Why this module: at import, asyncssh looks for optional C libraries with
``ctypes.util.find_library``, which on Linux starts eleven processes
(``fleetcpu.speed.quick_find_library`` says what it costs and how it is
avoided). Every fleetcpu module takes asyncssh from here, so that import
happens once, inside that block.
"""

from __future__ import annotations

from ..speed import quick_find_library

with quick_find_library():
    import asyncssh

__all__ = ["asyncssh"]
