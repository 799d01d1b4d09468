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
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .. import __version__
from ..errors import (
    ProbeDocumentError,
    ProbeError,
    ProbeTimeoutError,
    QmpProtocolError,
)
from . import features
from .document import (
    REGISTERS,
    FeatureWord,
    JsonDocument,
    QueryFailure,
    VcpuProps,
    _from_dict,
    load_json,
)
from .qemu_process import QemuInstance, check_version, find_binary
from .qmp_decode import resolve_machine
from .qmp_session import Session
from .run import failure_of, now_rfc3339, within

SCHEMA = "fleetcpu.verify/1"
SCHEMA_MAJOR = "fleetcpu.verify/"
DEFAULT_TIMEOUT = 60.0
ACCELS = ("kvm", "tcg")
#: What verify appends to the CPU: a feature the host lacks must stop QEMU, not vanish.
ENFORCE = ",enforce"

# QEMU's warning for each feature it cannot give (target/i386/cpu.c,
# mark_unavailable_features): "<who> doesn't support requested feature:
# CPUID.07H:EBX.avx2 [bit 5]" or "MSR(10AH).taa-no [bit 8]"; a bit without a
# name has no ".<name>". ``who`` is "host" (KVM) or "TCG".
_MISSING_RE = re.compile(
    r"doesn't support requested feature: "
    r"(?:CPUID\.(?P<leaf>[0-9A-Fa-f]+)H:(?P<reg>[A-Za-z]+)|MSR\((?P<msr>[0-9A-Fa-f]+)H\))"
    r"(?:\.(?P<name>\S+))? \[bit (?P<bit>\d+)\]"
)


@dataclass(frozen=True)
class QemuBrief:
    """Which QEMU answered: enough to tell hosts apart in a report, unlike the probe's full list."""

    binary: str
    version: str
    package: str = ""


@dataclass(frozen=True)
class VerifyDocument(JsonDocument):
    """Everything one verify launch told us; ``status`` failed means no answer was reached."""

    status: str
    probe_version: str
    time: str
    duration_s: float
    #: The CPU as asked, without the ``,enforce`` verify appends.
    cpu: str
    #: The machine type as asked (versioned, or an alias such as q35).
    requested_machine_type: str
    accel: str
    qemu: Optional[QemuBrief] = None
    #: None: QEMU was never launched; False: it refused (see exit_status, stderr_tail, missing).
    started: Optional[bool] = None
    #: The versioned machine type the host's QEMU resolved the request to.
    machine_type: Optional[str] = None
    #: What query-kvm says the started guest really uses.
    accel_used: Optional[str] = None
    exit_status: Optional[int] = None
    stderr_tail: str = ""
    #: Canonical names of the features QEMU said it could not give, in its order.
    missing: Tuple[str, ...] = ()
    #: None: not read (did not start, or QEMU refused the qom-get; see errors).
    feature_words: Optional[Tuple[FeatureWord, ...]] = None
    filtered_features: Optional[Tuple[FeatureWord, ...]] = None
    vcpu: VcpuProps = field(default_factory=VcpuProps)
    errors: Tuple[QueryFailure, ...] = ()
    argv: Tuple[str, ...] = ()
    stage: Optional[str] = None
    error: Optional[str] = None
    error_code: Optional[str] = None
    exit_code: int = 0
    schema: str = SCHEMA

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def verify_from_json(text: str, source: str = "<verify>") -> VerifyDocument:
    """Validate a verify document; errors name the key at fault (``ProbeDocumentError``)."""
    value = load_json(text, source)
    if not isinstance(value, dict):
        raise ProbeDocumentError(source, "", "not a JSON object")
    schema = value.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_MAJOR):
        raise ProbeDocumentError(source, "schema", "not a fleetcpu verify document (%r)" % (schema,))
    if schema != SCHEMA:
        raise ProbeDocumentError(
            source, "schema", "unsupported version %r (this fleetcpu reads %r)" % (schema, SCHEMA)
        )
    doc = _from_dict(VerifyDocument, value, "", source)
    if doc.status not in ("ok", "failed"):
        raise ProbeDocumentError(source, "status", "must be 'ok' or 'failed'")
    if doc.status == "failed" and not doc.stage:
        raise ProbeDocumentError(source, "stage", "a failed document must say its stage")
    if doc.status == "ok" and doc.started is None:
        raise ProbeDocumentError(source, "started", "an ok document says whether QEMU started")
    for key in ("feature_words", "filtered_features"):
        for i, word in enumerate(getattr(doc, key) or ()):
            if word.register not in REGISTERS:
                raise ProbeDocumentError(source, "%s[%d].register" % (key, i),
                                         "must be one of %s" % ", ".join(REGISTERS))
    return doc


def missing_features(stderr: str) -> Tuple[str, ...]:
    """The features QEMU's enforce warnings name, canonical, each once, in QEMU's order.

    A bit QEMU prints without a name is named from its CPUID position (the
    subleaf is not in the message, 0 is assumed) so it is still reported.
    It reads the stderr tail the launch keeps (4 KiB, about 45 warnings):
    a host lacking more features than that is named by its last 45.
    """
    out: List[str] = []
    for m in _MISSING_RE.finditer(stderr):
        name = m.group("name")
        if name is None and m.group("leaf") is not None:
            found = features.names_for(int(m.group("leaf"), 16), 0, m.group("reg"),
                                       1 << int(m.group("bit")))
            name = found[0] if found else None
        if name is None:
            name = "msr-0x%s-bit%s" % (m.group("msr").lower(), m.group("bit"))
        canon = features.canonical(name)
        if canon not in out:
            out.append(canon)
    return tuple(out)


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
    fields["accel_used"] = None if enabled is None else ("kvm" if enabled else "tcg")
    if path is not None:
        words = await session.feature_words(path, "feature-words")
        filtered = await session.feature_words(path, "filtered-features")
        fields["feature_words"] = None if _failed_query(session, "feature-words") else words
        fields["filtered_features"] = (None if _failed_query(session, "filtered-features")
                                       else filtered)
        fields["vcpu"] = await session.vcpu(path)


async def _launch(opts: VerifyOptions, state: _State, binary: str, workdir: str,
                  deadline: float) -> None:
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
                raise QmpProtocolError("no QMP greeting from %s (-cpu %s%s): %s" % (
                    binary, opts.cpu, ENFORCE, str(exc) or type(exc).__name__)) from exc
            fields["started"] = False
            return
        fields["started"] = True
        try:
            await within(_read_vcpu(session, state, opts), deadline)
        except asyncio.TimeoutError:
            raise
        except Exception as exc:  # an essential query failed, or QEMU died under us
            raise QmpProtocolError("QMP failure with %s (-cpu %s%s): %s" % (
                binary, opts.cpu, ENFORCE, str(exc) or type(exc).__name__)) from exc
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
        raise ProbeTimeoutError("verify timed out after %.1fs (QEMU %s did not answer)"
                                % (opts.timeout, binary)) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def run_verify(opts: VerifyOptions) -> VerifyDocument:
    """Verify ``opts.cpu`` on this host; always returns a document, never raises for host trouble."""
    started = time.monotonic()
    when = now_rfc3339()
    state = _State()
    deadline = asyncio.get_running_loop().time() + opts.timeout
    error = await failure_of(_verify(opts, state, deadline), "verify")
    base: Dict[str, Any] = {
        "status": "ok",
        "probe_version": __version__,
        "time": when,
        "duration_s": round(time.monotonic() - started, 4),
        "cpu": opts.cpu,
        "requested_machine_type": opts.machine_type,
        "accel": opts.accel,
        "qemu": state.qemu,
    }
    base.update(state.fields)
    if error is not None:
        base.update(
            status="failed",
            stage=error.stage if isinstance(error, ProbeError) else error.code,
            error=error.message,
            error_code=error.code,
            exit_code=error.exit_code,
        )
    return VerifyDocument(**base)


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
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help="deadline for the whole verification in seconds (default: %(default)s)")
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
    opts = VerifyOptions(cpu=args.cpu, machine_type=args.machine_type, accel=args.accel,
                         qemu_binary=args.qemu_binary, timeout=args.timeout)
    doc = asyncio.run(_main(opts))
    sys.stdout.write(doc.to_json(indent=args.indent) + "\n")
    sys.stdout.flush()
    if not doc.ok:
        sys.stderr.write("error: %s\n" % doc.error)
    return doc.exit_code


if __name__ == "__main__":
    sys.exit(main())
