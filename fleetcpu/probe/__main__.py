"""``python3 -m fleetcpu.probe``: the probe as shipped to hosts, stdlib argparse only.

Same flags and output as ``fleetcpu probe``: one JSON document on stdout,
the exit code from the table in ``fleetcpu.errors``. ``verify ARGS`` runs
``fleetcpu.probe.enforce`` instead (the host half of ``fleetcpu verify``).

This module imports nothing heavy: ``main`` starts QEMU (``qemu_early``) before
it imports asyncio, qemu.qmp and the rest of the probe, so that those
imports overlap QEMU's own start-up. A probe lives for a fraction of a
second and allocates a bounded amount, so the cyclic garbage collector is
off while it runs (its passes over the freshly imported modules cost more
than the few cycles asyncio leaves are worth), and the process ends with
``os._exit`` once its output is flushed, as the bundle's bootstrap ends it
on a host: tearing down asyncio, typing and the records module by module
would cost more CPU than anything the probe does after QEMU quits.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from .launch_plan import ACCELS, DEFAULT_TIMEOUT, ProbeOptions

if TYPE_CHECKING:
    import argparse

    from .document import ProbeDocument
    from .qemu_early import Early

__all__ = ["build_parser", "emit", "main", "options_from_args", "parse_plain", "probe_with_signals"]

_VALUED_FLAGS = ("--qemu-binary", "--accel", "--timeout", "--host-root", "--indent")


def build_parser() -> argparse.ArgumentParser:
    import argparse

    p = argparse.ArgumentParser(
        prog="python3 -m fleetcpu.probe",
        description="Probe this host's QEMU/KVM CPU capabilities; print one JSON document.",
    )
    p.add_argument(
        "--machine-type",
        action="append",
        default=[],
        metavar="T",
        help="machine type or alias to probe (repeatable; default: the q35 alias)",
    )
    p.add_argument("--qemu-binary", metavar="PATH", help="QEMU to run (default: qemu-system-x86_64)")
    p.add_argument(
        "--accel",
        choices=ACCELS,
        default="auto",
        help="auto tries KVM then falls back to TCG (default: auto)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="deadline for the whole probe in seconds (default: %(default)s)",
    )
    p.add_argument(
        "--host-root",
        default="/",
        metavar="DIR",
        help="read host facts under DIR (a container's view of the host)",
    )
    p.add_argument("--indent", type=int, default=None, help=argparse.SUPPRESS)
    return p


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


def parse_plain(argv: List[str]) -> Optional[Tuple[ProbeOptions, Optional[int]]]:
    """``--flag value`` pairs, as collect and scripts pass them, without argparse.

    Importing argparse and building the parser would hold back ``QEMU
    -version`` by some 4 ms. Anything else (help, a bad value, ``--flag=value``,
    abbreviations, a value starting with ``-``) returns None and goes to
    argparse, which accepts or rejects it as it always did.
    """
    if len(argv) % 2:
        return None
    machine_types: List[str] = []
    single: Dict[str, str] = {}
    for i in range(0, len(argv), 2):
        flag, value = argv[i], argv[i + 1]
        if value.startswith("-"):
            return None
        if flag == "--machine-type":
            machine_types.append(value)
        elif flag in _VALUED_FLAGS:
            single[flag] = value
        else:
            return None
    accel = single.get("--accel", "auto")
    if accel not in ACCELS:
        return None
    try:
        timeout = float(single.get("--timeout", DEFAULT_TIMEOUT))
        indent = int(single["--indent"]) if "--indent" in single else None
    except ValueError:
        return None
    opts = ProbeOptions(
        machine_types=tuple(machine_types),
        qemu_binary=single.get("--qemu-binary"),
        accel=accel,
        timeout=timeout,
        host_root=single.get("--host-root", "/"),
    )
    return opts, indent


def options_from_args(args: argparse.Namespace) -> ProbeOptions:
    return ProbeOptions(
        machine_types=tuple(args.machine_type),
        qemu_binary=args.qemu_binary,
        accel=args.accel,
        timeout=args.timeout,
        host_root=args.host_root,
    )


def emit(doc: ProbeDocument, indent: Optional[int]) -> int:
    """Print the document, then say the error on stderr in one line; return the exit code."""
    sys.stdout.write(doc.to_json(indent=indent) + "\n")
    sys.stdout.flush()
    if not doc.ok:
        sys.stderr.write("error: %s\n" % doc.error)
    return doc.exit_code


def main(argv: Optional[List[str]] = None) -> int:
    from .quiet import install

    install()  # no third-party warning on a host's stderr either
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:
        # ``fleetcpu verify``'s host half, shipped in the same bundle and started by
        # the same bootstrap, which always enters here.
        from .enforce import main as verify_main

        return verify_main(argv[1:])
    plain = parse_plain(argv)
    if plain is not None:
        opts, indent = plain
    else:
        args = build_parser().parse_args(argv)
        opts, indent = options_from_args(args), args.indent
    if opts.timeout <= 0:
        sys.stderr.write("error: --timeout must be positive\n")
        return 2
    gc.disable()
    try:
        from .qemu_early import begin

        early = begin(opts)  # QEMU is starting: now import the rest while it boots
        import asyncio

        return emit(asyncio.run(probe_with_signals(opts, early)), indent)
    finally:
        gc.enable()


def _exit(code: int) -> None:
    """Flush and leave without interpreter teardown (see the module's docstring)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # nobody reads our output any more
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
