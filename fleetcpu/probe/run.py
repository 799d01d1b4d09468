"""One probe of one host: facts, then one paused QEMU per machine type.

The fallback chain (``launch_plan``) is walked here: a QEMU that dies at start is
followed by the next attempt, and why is written down. The accelerator
finally used is part of the data, because a TCG answer says what QEMU can
emulate, not what a KVM guest gets.

``run_probe`` never raises for host trouble: it returns a failed document
carrying the stage, the error and every QEMU attempt as evidence.

Python 3.9, stdlib + qemu.qmp only: this module ships to hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Awaitable, Dict, List, Optional, Set, Tuple, TypeVar

from ..errors import (
    FleetcpuError,
    HostRootError,
    InterruptedByUserError,
    ProbeTimeoutError,
    QemuDiedError,
    QmpProtocolError,
    UnknownMachineTypeError,
)
from ..vocabulary import MIXED, NOT_POOL_MODELS, Accel, Outcome, now_rfc3339
from .document import (
    Attempt,
    CpuModel,
    FeatureWord,
    HostFacts,
    MachineInfo,
    MachineProbe,
    ProbeDocument,
    QemuInfo,
    Scalar,
    VcpuProps,
)
from .envelope import build
from .facts import read_facts
from .launch_plan import ACCELS, DEFAULT_MACHINE, DEFAULT_TIMEOUT, WORKDIR_PREFIX, ProbeOptions, chain
from .qemu_early import Early
from .qemu_process import QemuInstance, check_version, find_binary
from .qemu_spawn import Launch
from .qmp_decode import resolve_machine
from .qmp_session import Session

__all__ = [
    "ACCELS",
    "DEFAULT_TIMEOUT",
    "ProbeOptions",
    "T",
    "failure_of",
    "parse_cpu_arg",
    "run_probe",
    "within",
]

T = TypeVar("T")

_UNKNOWN_MACHINE_MARKERS = ("unsupported machine type", "machine type not found")


class _State:
    """What the probe has learnt so far; it all goes into the document, failed or not.

    A plain class: a dataclass costs ~1 ms of code generation at every start.
    """

    def __init__(self, facts: HostFacts) -> None:
        self.facts = facts
        self.binary: Optional[str] = None
        self.version: Optional[str] = None
        self.package = ""
        self.machines: Tuple[MachineInfo, ...] = ()
        self.kvm: Tuple[Optional[bool], Optional[bool]] = (None, None)
        self.accel_reason: Optional[str] = None
        self.attempts: List[Attempt] = []
        self.results: List[MachineProbe] = []


class _Died(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def parse_cpu_arg(cpu: str) -> Tuple[str, Dict[str, Scalar]]:
    """``host,arch-capabilities=off`` -> ("host", {"arch-capabilities": False}).

    The expansion is asked for the very CPU that was launched, so a feature the
    fallback had to turn off is never reported as offered.
    """
    name, *rest = cpu.split(",")
    props: Dict[str, Scalar] = {}
    for item in rest:
        key, _, value = item.partition("=")
        lowered = value.lower()
        if lowered in ("on", "true", "yes", ""):
            props[key] = True
        elif lowered in ("off", "false", "no"):
            props[key] = False
        else:
            props[key] = value
    return name, props


_CAUSE_MARKERS = ("error", "failed", "unsupported", "could not", "cannot", "not found", "invalid")


def _first_line(text: str) -> str:
    """The line of QEMU's stderr that names the cause (an abort's assertion comes after it)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    causes = [ln for ln in lines if any(m in ln.lower() for m in _CAUSE_MARKERS)]
    return (causes[0] if causes else lines[0] if lines else "no output")[:300]


async def within(aw: Awaitable[T], deadline: float) -> T:
    """``aw`` bounded by the probe's (or verify's) one absolute deadline."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise asyncio.TimeoutError()
    return await asyncio.wait_for(aw, remaining)


def _wants_features(model: CpuModel) -> bool:
    """Usable, not an alias, a pool candidate: the models whose features are asked.

    A model unusable here can never be a pool's model, and an alias is
    resolved through its ``alias_of``; expanding all 130+ would double a
    probe's QMP time for nothing.
    """
    return model.usable and model.alias_of is None and model.name not in NOT_POOL_MODELS


async def _with_model_features(session: Session, models: Tuple[CpuModel, ...]) -> Tuple[CpuModel, ...]:
    """Each wanted model with its features (its static expansion, about 1 ms of QEMU's time)."""
    out = []
    for model in models:
        if _wants_features(model):
            exp = await session.expansion("static", model.name, {})
            if exp is not None:
                model = dataclasses.replace(model, features=exp.enabled())  # noqa: PLW2901
        out.append(model)
    return tuple(out)


async def _ask(
    session: Session, state: _State, requested: str, target: str, accel: str, cpu: str
) -> MachineProbe:
    """Every query of one launch, in the order that lets later ones reuse earlier answers.

    Each query is sent ahead as soon as what it needs is known (three waves:
    launch, models, vCPU), and read in this order.
    """
    name, props = parse_cpu_arg(cpu)
    session.expect_launch(state.version is None, name, props)
    if state.version is None:
        state.version, state.package = await session.version()
        state.machines = await session.machines()
    kvm = await session.kvm()
    if kvm != (None, None) and state.kvm == (None, None):
        state.kvm = kvm
    models = await session.cpu_definitions()
    session.expect_models(m.name for m in models if _wants_features(m))
    static = await session.expansion("static", name, props)
    vocab = tuple(static.features) if static is not None else None
    full = await session.expansion("full", name, props, vocab)
    models = await _with_model_features(session, models)
    path = await session.vcpu_path()
    words: Tuple[FeatureWord, ...] = ()
    filtered: Tuple[FeatureWord, ...] = ()
    vcpu = VcpuProps()
    if path is not None:
        session.expect_vcpu(path)
        words = await session.feature_words(path, "feature-words")
        filtered = await session.feature_words(path, "filtered-features")
        vcpu = await session.vcpu(path)
    return MachineProbe(
        requested=requested,
        machine_type=resolve_machine(state.machines, target) or target,
        accel=accel if kvm[1] is None else (Accel.KVM if kvm[1] else Accel.TCG),
        cpu=cpu,
        models=models,
        static_expansion=static,
        full_expansion=full,
        vcpu=vcpu,
        feature_words=words,
        filtered_features=filtered,
        errors=tuple(session.failures),
    )


async def _launch(
    state: _State,
    requested: str,
    target: str,
    accel: str,
    cpu: str,
    workdir: str,
    deadline: float,
    launch: Optional[Launch] = None,
) -> MachineProbe:
    """One QEMU for one machine type; classifies any failure as death, QMP trouble or timeout.

    ``launch``: that QEMU, already started by ``qemu_early``.
    """
    assert state.binary is not None
    inst = QemuInstance(state.binary, target, accel, cpu, workdir, launch)
    sock = await inst.start()  # a binary that cannot be executed raises here: no attempt to record
    session = Session()
    outcome = Outcome.OK
    try:
        await within(session.open(sock), deadline)
        probe = await within(_ask(session, state, requested, target, accel, cpu), deadline)
        await within(session.close(), deadline)
        await inst.wait_exit(2.0)
    except asyncio.TimeoutError:
        outcome = Outcome.TIMEOUT
        raise
    except asyncio.CancelledError:
        outcome = Outcome.INTERRUPTED
        raise
    except Exception as exc:  # any QMP-level failure: did QEMU die or misbehave?
        if await inst.wait_exit(1.0) is not None:
            outcome = Outcome.DIED
            raise _Died(inst.stderr_tail()) from exc
        outcome = Outcome.QMP_ERROR
        raise QmpProtocolError(
            "QMP failure with %s on %s (-cpu %s): %s"
            % (state.binary, target, cpu, str(exc) or type(exc).__name__)
        ) from exc
    finally:
        session.drop_expected()
        with contextlib.suppress(Exception):
            await session.qmp.disconnect()
        await inst.stop()
        state.attempts.append(inst.attempt(outcome))
    return probe


def _discarded(launch: Launch, outcome: str) -> Attempt:
    """The attempt of a pre-started QEMU the probe ended before taking it over."""
    launch.discard()
    return launch.attempt(outcome)


async def _probe(opts: ProbeOptions, state: _State, deadline: float, early: Optional[Early]) -> None:
    workdir = early.workdir if early is not None else None
    try:
        if not os.path.isdir(opts.host_root):  # every fact would read as null, "ok"
            raise HostRootError(
                "host root %s is not a directory: no host facts can be read "
                "under it (--host-root, inventory host_root)" % opts.host_root
            )
        state.binary = find_binary(opts.qemu_binary)
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
        await _machines(opts, state, deadline, early, workdir)
    finally:
        if early is not None and early.launch is not None:  # never taken over: still evidence
            leftover, early.launch = early.launch, None
            state.attempts.append(_discarded(leftover, Outcome.INTERRUPTED))
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


async def _prove_qemu(state: _State, deadline: float) -> None:
    """Every launch died before its QMP greeting: is the binary QEMU at all? Its banner says.

    Raises NotQemuError when it is not; the ``-version`` run is evidence either way.
    """
    assert state.binary is not None
    remaining = max(0.1, deadline - asyncio.get_running_loop().time())
    await check_version(state.binary, min(10.0, remaining), record=state.attempts)


async def _machines(
    opts: ProbeOptions, state: _State, deadline: float, early: Optional[Early], workdir: str
) -> None:
    """Each requested machine type once, walking the fallback chain until a QEMU stays up."""
    binary = state.binary
    assert binary is not None
    attempts, state.accel_reason = chain(opts.accel, state.facts.dev_kvm)
    try:
        step = 0
        done: Set[str] = set()
        for requested in opts.machine_types or (DEFAULT_MACHINE,):
            target = requested
            if state.machines:
                resolved = resolve_machine(state.machines, requested)
                if resolved is None:
                    raise UnknownMachineTypeError(
                        "unknown machine type %r for %s (QEMU %s)" % (requested, state.binary, state.version)
                    )
                if resolved in done:
                    continue
                target = resolved
            while True:
                accel, cpu = attempts[step]
                launch = early.take_launch(binary, target, accel, cpu) if early is not None else None
                try:
                    probe = await _launch(state, requested, target, accel, cpu, workdir, deadline, launch)
                    break
                except _Died as died:
                    if any(m in died.stderr.lower() for m in _UNKNOWN_MACHINE_MARKERS):
                        raise UnknownMachineTypeError(
                            "unknown machine type %r for %s: %s"
                            % (requested, state.binary, _first_line(died.stderr))
                        ) from None
                    step += 1
                    if step == len(attempts):
                        if state.version is None:  # no launch ever greeted
                            await _prove_qemu(state, deadline)
                        raise QemuDiedError(
                            "QEMU died at start (%s -machine %s -accel %s -cpu %s): %s"
                            % (state.binary, target, accel, cpu, _first_line(died.stderr))
                        ) from None
                    if attempts[step][0] != accel:
                        state.accel_reason = "KVM failed: " + _first_line(died.stderr)
            state.results.append(probe)
            done.add(probe.machine_type)
    except asyncio.TimeoutError as exc:
        raise ProbeTimeoutError(
            "probe timed out after %.1fs (QEMU %s did not answer)" % (opts.timeout, state.binary)
        ) from exc


def _document(state: _State, started: float, when: str, error: Optional[FleetcpuError]) -> ProbeDocument:
    qemu = None
    if state.binary is not None and state.version is not None:
        qemu = QemuInfo(
            binary=state.binary,
            version=state.version,
            package=state.package,
            kvm_present=state.kvm[0],
            kvm_enabled=state.kvm[1],
            machines=state.machines,
        )
    accels = sorted({r.accel for r in state.results})
    accel = accels[0] if len(accels) == 1 else (MIXED if accels else None)
    fields: Dict[str, Any] = {
        "host": state.facts,
        "accel": accel,
        "accel_reason": state.accel_reason if accel != Accel.KVM else None,
        "qemu": qemu,
        "machine_types": tuple(state.results),
        "attempts": tuple(state.attempts),
    }
    return build(ProbeDocument, started, when, fields, error, when_failed={"machine_types": ()})


async def failure_of(work: Awaitable[None], what: str) -> Optional[FleetcpuError]:
    """Run ``work``; the error that ended it, as data (a host's trouble is never a traceback).

    Shared by the probe and verify, whose documents always get printed.
    """
    logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)
    try:
        await work
    except FleetcpuError as exc:
        return exc
    except asyncio.CancelledError:
        return InterruptedByUserError("%s interrupted; QEMU stopped" % what)
    return None


async def run_probe(opts: ProbeOptions, early: Optional[Early] = None) -> ProbeDocument:
    """Probe this host; always returns a document (``status`` says whether it worked).

    ``early``: what the entry point started before the loop; the probe's
    clock and deadline then run from there.
    """
    started = early.started if early is not None else time.monotonic()
    when = early.when if early is not None else now_rfc3339()
    facts = early.facts if early is not None and early.facts is not None else None
    state = _State(facts=facts if facts is not None else read_facts(opts.host_root))
    deadline = asyncio.get_running_loop().time() + opts.timeout - (time.monotonic() - started)
    error = await failure_of(_probe(opts, state, deadline, early), "probe")
    return _document(state, started, when, error)
