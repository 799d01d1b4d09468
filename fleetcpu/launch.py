"""The process entry of ``fleetcpu`` and ``python -m fleetcpu``: signals first, then the CLI.

Why a module of its own, imported before anything else: a scheduler may
stop fleetcpu at any instant, including the ~0.3 s in which Python imports
click and the CLI. A SIGINT there used to be a KeyboardInterrupt traceback
or click's ``Aborted!`` (exit 1), and a SIGTERM killed the process with
whatever it had started. So the first thing the process does is make both
signals a KeyboardInterrupt (Python's ``default_int_handler``), which every
layer already handles, and catches it around the import: before a
run exists the command exits 130 with ``error: interrupted`` and leaves
nothing; once a run writer exists it records the run as interrupted (the
fan-out then takes SIGTERM over itself, ``fleet.fanout.term_cancels_run``).
Importing this module does nothing; ``main`` does it. It imports nothing
but ``os``, ``signal`` and ``sys`` (not even ``typing``): what runs before
its handler exists is only CPython's own start-up (importing ``site``, a few
tens of ms; a SIGINT there is the interpreter's fatal error, before any
fleetcpu code) and ``runpy`` finding this module.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["INTERRUPTED", "main"]

#: ``InterruptedByUserError.exit_code``, without importing the error tree yet.
INTERRUPTED = 130


def main() -> None:
    # SIGINT keeps Python's own handler (asyncio.run takes over only from that one, and
    # turns Ctrl-C into a clean cancellation); SIGTERM gets the same.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from .cli import entry
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        os._exit(INTERRUPTED)
    entry()
    raise AssertionError("entry() ends the process")  # pragma: no cover
