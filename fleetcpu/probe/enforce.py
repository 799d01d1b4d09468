"""``python3 -m fleetcpu.probe verify``: start one CPU model with ``enforce`` and report what the guest sees.

The host half of ``fleetcpu verify``. The orchestrator computed a pool's
CPU from stored probes; this proves it on the host: QEMU is started paused
with ``-cpu <CPU>,enforce`` on the pool's machine type and accelerator, so a
feature the host cannot give makes QEMU refuse to start (naming the
feature), never a silent drop. When it starts, the realized vCPU's
``feature-words``, ``filtered-features`` and scalars are read, and QEMU is
stopped. One JSON document (``fleetcpu.verify/1``) goes to stdout.

Why the host only reports and never judges: whether a host passes depends
on the other hosts (all must present the same CPU), which only the
orchestrator sees. Why a refusal is not a failure of this command: "QEMU
would not start this CPU here" is exactly the answer asked for, so the
document is ``ok`` with ``started: false``, QEMU's exit status, its stderr
and the features it named; ``failed`` documents are for when no answer was
reached (no QEMU, not QEMU, QMP trouble, timeout, interrupted).

Same cleanup guarantees as the probe, by the same code: QEMU is launched by
``qemu.QemuInstance`` (paused, ``-nodefaults``, QMP on an inherited
socketpair, no core dumps, ``PR_SET_PDEATHSIG``) in a private directory
removed on every path; SIGTERM/SIGHUP/SIGINT stop QEMU and print an
``interrupted`` document.

Python 3.9, stdlib + qemu.qmp only: this module ships to hosts in the bundle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..errors import (
    ProbeTimeoutError,
    QmpProtocolError,
)
from ..vocabulary import Accel, now_rfc3339
from .enforce_document import QemuBrief, VerifyDocument, missing_features
from .envelope import build
from .qemu_process import QemuInstance, check_version, find_binary
from .qmp_decode import resolve_machine
from .qmp_session import Session
from .run import failure_of, within

__all__ = [
    "ACCELS",
    "DEFAULT_TIMEOUT",
    "ENFORCE",
    "VerifyOptions",
    "build_parser",
    "main",
    "run_verify",
]

DEFAULT_TIMEOUT = 60.0
#: ``--accel``'s choices: verify starts a CPU under one accelerator, never "auto".
ACCELS = Accel.values()
#: What verify appends to the CPU: a feature the host lacks must stop QEMU, not vanish.
ENFORCE = ",enforce"


@dataclass(frozen=True)
class VerifyOptions:
    cpu: str
    machine_type: str
    accel: str
    qemu_binary: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT


class _State:
    """What is known so far; all of it goes into the document, failed or not."""

    def __init__(self) -> None:
        self.qemu: Optional[QemuBrief] = None
        #: VerifyDocument fields learnt so far, by name.
        self.fields: Dict[str, Any] = {}


def _failed_query(session: Session, prop: str) -> bool:
    return any(f.query == "qom-get " + prop for f in session.failures)


async def _read_vcpu(session: Session, state: _State, opts: VerifyOptions) -> None:
    """Every query of a started guest; partial answers are kept, their failures listed."""
    _, package = await session.version()
    if state.qemu is not None:
        state.qemu = QemuBrief(state.qemu.binary, state.qemu.version, package)
    machines = await session.machines()
    _, enabled = await session.kvm()
    path = await session.vcpu_path()
    fields = state.fields
    fields["machine_type"] = resolve_machine(machines, opts.machine_type) or opts.machine_type
    fields["accel_used"] = None if enabled is None else (Accel.KVM if enabled else Accel.TCG)
    if path is not None:
        words = await session.feature_words(path, "feature-words")
        filtered = await session.feature_words(path, "filtered-features")
        fields["feature_words"] = None if _failed_query(session, "feature-words") else words
        fields["filtered_features"] = None if _failed_query(session, "filtered-features") else filtered
        fields["vcpu"] = await session.vcpu(path)


async def _launch(opts: VerifyOptions, state: _State, binary: str, workdir: str, deadline: float) -> None:
    inst = QemuInstance(binary, opts.machine_type, opts.accel, opts.cpu + ENFORCE, workdir)
    session = Session("fleetcpu-verify")
    fields = state.fields
    try:
        sock = await inst.start()
        fields["argv"] = inst.argv
        try:
            await within(session.open(sock), deadline)
        except asyncio.TimeoutError:
            raise
        except Exception as exc:  # QEMU closed the monitor: did it refuse to start?
            if await inst.wait_exit(2.0) is None:
                raise QmpProtocolError(
                    "no QMP greeting from %s (-cpu %s%s): %s"
                    % (binary, opts.cpu, ENFORCE, str(exc) or type(exc).__name__)
                ) from exc
            fields["started"] = False
            return
        fields["started"] = True
        try:
            await within(_read_vcpu(session, state, opts), deadline)
        except asyncio.TimeoutError:
            raise
        except Exception as exc:  # an essential query failed, or QEMU died under us
            raise QmpProtocolError(
                "QMP failure with %s (-cpu %s%s): %s"
                % (binary, opts.cpu, ENFORCE, str(exc) or type(exc).__name__)
            ) from exc
        await within(session.close(), deadline)
        await inst.wait_exit(2.0)
    finally:
        fields["errors"] = tuple(session.failures)
        with contextlib.suppress(Exception):
            await session.qmp.disconnect()
        await inst.stop()
        fields["exit_status"] = inst.returncode if fields.get("started") is False else None
        fields["stderr_tail"] = inst.stderr_tail()
        if fields.get("started") is False:
            fields["missing"] = missing_features(inst.stderr_tail())


async def _verify(opts: VerifyOptions, state: _State, deadline: float) -> None:
    binary = find_binary(opts.qemu_binary)
    remaining = max(0.1, deadline - asyncio.get_running_loop().time())
    try:
        version, _ = await check_version(binary, min(10.0, remaining))
    except asyncio.TimeoutError as exc:
        raise ProbeTimeoutError("verify timed out running %s -version" % binary) from exc
    state.qemu = QemuBrief(binary, version)
    workdir = tempfile.mkdtemp(prefix="fleetcpu-verify-")
    try:
        await _launch(opts, state, binary, workdir, deadline)
    except asyncio.TimeoutError as exc:
        raise ProbeTimeoutError(
            "verify timed out after %.1fs (QEMU %s did not answer)" % (opts.timeout, binary)
        ) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def run_verify(opts: VerifyOptions) -> VerifyDocument:
    """Verify ``opts.cpu`` on this host; always returns a document, never raises for host trouble."""
    started = time.monotonic()
    when = now_rfc3339()
    state = _State()
    deadline = asyncio.get_running_loop().time() + opts.timeout
    error = await failure_of(_verify(opts, state, deadline), "verify")
    fields: Dict[str, Any] = {
        "cpu": opts.cpu,
        "requested_machine_type": opts.machine_type,
        "accel": opts.accel,
        "qemu": state.qemu,
        **state.fields,
    }
    return build(VerifyDocument, started, when, fields, error)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m fleetcpu.probe verify",
        description="Start QEMU paused with -cpu CPU,enforce; print one JSON document "
        "(fleetcpu.verify/1) saying whether it started and what the vCPU shows.",
    )
    p.add_argument("--cpu", required=True, help="the -cpu string to verify (without enforce)")
    p.add_argument("--machine-type", required=True, metavar="T")
    p.add_argument("--accel", choices=ACCELS, required=True)
    p.add_argument("--qemu-binary", metavar="PATH", help="QEMU to run (default: qemu-system-x86_64)")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="deadline for the whole verification in seconds (default: %(default)s)",
    )
    p.add_argument("--indent", type=int, default=None, help=argparse.SUPPRESS)
    return p


async def _main(opts: VerifyOptions) -> VerifyDocument:
    # As the probe: SSH teardown (SIGHUP), the supervisor (SIGTERM) and Ctrl-C stop QEMU first.
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    return await run_verify(opts)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.timeout <= 0:
        sys.stderr.write("error: --timeout must be positive\n")
        return 2
    if not args.cpu or any(c.isspace() for c in args.cpu):
        sys.stderr.write("error: --cpu must be one -cpu string without spaces\n")
        return 2
    opts = VerifyOptions(
        cpu=args.cpu,
        machine_type=args.machine_type,
        accel=args.accel,
        qemu_binary=args.qemu_binary,
        timeout=args.timeout,
    )
    doc = asyncio.run(_main(opts))
    sys.stdout.write(doc.to_json(indent=args.indent) + "\n")
    sys.stdout.flush()
    if not doc.ok:
        sys.stderr.write("error: %s\n" % doc.error)
    return doc.exit_code


if __name__ == "__main__":
    sys.exit(main())
