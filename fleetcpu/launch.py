"""The process entry of ``fleetcpu`` and ``python -m fleetcpu``: signals first, then the CLI.

Why a module of its own, imported before anything else: a scheduler may
stop fleetcpu at any instant, including the ~0.3 s in which Python imports
click and the CLI. A SIGINT there used to be a KeyboardInterrupt traceback
or click's ``Aborted!`` (exit 1), and a SIGTERM killed the process with
whatever it had started. So the first thing the process does is hold both
signals while the CLI is imported (``_defer``), then make both a
KeyboardInterrupt (Python's ``default_int_handler``), which every layer
already handles: a signal before a run exists exits 130 with ``error:
interrupted`` and leaves nothing; once a run writer exists it records the run as interrupted (the
fan-out then takes SIGTERM over itself, ``fleet.fanout.term_cancels_run``).
Importing this module does nothing; ``main`` does it. It imports nothing
but ``signal`` and ``sys`` (not even ``typing``): what runs before
its handler exists is only CPython's own start-up (importing ``site``, a few
tens of ms; a SIGINT there is the interpreter's fatal error, before any
fleetcpu code) and ``runpy`` finding this module.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["INTERRUPTED", "main"]

#: ``InterruptedByUserError.exit_code``, without importing the error tree yet.
INTERRUPTED = 130


#: Signals that arrived while the CLI was being imported (``_defer``).
_pending: list[int] = []


def _defer(signum: int, _frame: object) -> None:
    """During the import only: note the signal, raise nothing.

    Why not raise KeyboardInterrupt there too: a Python-level handler runs
    wherever the interpreter is, and during an import that includes
    importlib's weakref callbacks, where an exception is only printed
    ("Exception ignored in ...", a traceback) and then lost: the command
    went on and ended as if never signalled. The import takes ~0.3 s; the
    signal is acted on as soon as it ends.
    """
    _pending.append(signum)


def _interrupted() -> None:
    """Exit 130 before any run exists: nothing was written."""
    from .speed import exit_process  # already imported with the CLI

    sys.stderr.write("error: interrupted\n")
    exit_process(INTERRUPTED)


def main() -> None:
    signal.signal(signal.SIGINT, _defer)
    signal.signal(signal.SIGTERM, _defer)
    from .cli import entry

    try:
        # From here both are a KeyboardInterrupt (SIGINT keeps Python's own handler,
        # which asyncio.run takes over and turns into a clean cancellation).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    except KeyboardInterrupt:
        _interrupted()
    if _pending:  # it came during the import
        _interrupted()
    entry()
    raise AssertionError("entry() ends the process")  # pragma: no cover
