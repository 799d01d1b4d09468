"""``python3 -m fleetcpu.probe``: the probe as shipped to hosts, stdlib only.

Same flags (``flags.FLAGS``) and output as ``fleetcpu probe``: one JSON document on stdout,
the exit code from the table in ``fleetcpu.errors``. ``verify ARGS`` runs
``fleetcpu.probe.enforce`` instead (the host half of ``fleetcpu verify``).

This module imports nothing heavy: ``main`` starts QEMU (``qemu_early``) before
it imports asyncio, qemu.qmp and the rest of the probe, so that those
imports overlap QEMU's own start-up. The cyclic garbage collector is paused
while it runs and the process ends without the interpreter's teardown: both
are ``speed``'s tricks, with their figures (``FLEETCPU_PLAIN=1`` turns them off).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, List, Mapping, Optional

from .flags import build_parser, options, parse_plain
from .speed import PausedGc, exit_process

if TYPE_CHECKING:
    from .document import ProbeDocument
    from .launch_plan import ProbeOptions
    from .qemu_early import Early

__all__ = ["emit", "main", "probe_with_signals", "run"]


async def probe_with_signals(opts: ProbeOptions, early: Optional[Early] = None) -> ProbeDocument:
    import asyncio
    import signal

    from .run import run_probe

    # SSH teardown sends SIGHUP, schedulers send SIGTERM: both must stop QEMU
    # and remove the work directory, exactly like Ctrl-C.
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    if early is not None and early.signals:  # one came before the loop could act on it
        task.cancel()
    return await run_probe(opts, early)


def emit(doc: ProbeDocument, indent: Optional[int]) -> int:
    """Print the document, then say the error on stderr in one line; return the exit code."""
    sys.stdout.write(doc.to_json(indent=indent) + "\n")
    sys.stdout.flush()
    if not doc.ok:
        sys.stderr.write("error: %s\n" % doc.error)
    return doc.exit_code


def run(values: Mapping[str, Any], head_start: bool = True) -> int:
    """Probe with the parsed flags (``flags.FLAGS``' dests), print the document; its exit code.

    ``head_start``: start the first QEMU before importing asyncio and the rest
    (``qemu_early``), with the collector paused, as on a host. ``fleetcpu
    probe`` (through ``fleetcpu.probe.probe_and_print``) runs without it:
    its process has imported everything already, and its documents stay as
    they were (QEMU's QMP descriptor number is in each attempt's argv).
    """
    opts, indent = options(values)
    if opts.timeout <= 0:
        sys.stderr.write("error: --timeout must be positive\n")
        return 2
    if not head_start:
        import asyncio

        return emit(asyncio.run(probe_with_signals(opts)), indent)
    with PausedGc():
        from .qemu_early import begin

        early = begin(opts)  # QEMU is starting: now import the rest while it boots
        import asyncio

        return emit(asyncio.run(probe_with_signals(opts, early)), indent)


def main(argv: Optional[List[str]] = None) -> int:
    from .quiet import install

    install()  # no third-party warning on a host's stderr either
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:
        # ``fleetcpu verify``'s host half, shipped in the same bundle and started by
        # the same bootstrap, which always enters here.
        from .enforce import main as verify_main

        return verify_main(argv[1:])
    values = parse_plain(argv)
    if values is None:
        values = vars(build_parser().parse_args(argv))
    return run(values)


if __name__ == "__main__":
    exit_process(main())
