"""Baseline members straight from the captures, asked the way the probe asks, without processes.

Property tests need hundreds of pools of real CPUs; running the probe
through a stand-in process for each would take minutes. So this module
puts the *stand-in's own* answering code (``replay_qemu.Replay``) in process
and asks it what ``fleetcpu.probe.run._ask`` asks, in the same order, then
decodes the replies with the probe's decoders: the ``MachineProbe`` it
returns is what the real probe would record through the stand-in
(``tests/test_baseline_replay.py`` holds the two against each other for
every capture). Named models' features therefore come from the one
cpu_map rule (``cpumap.model_features``, ``replay_qemu.MODEL_RULE``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from functools import cache
from typing import Any

from fleetcpu.baseline import Member, member_from_probe
from fleetcpu.probe import qmp_decode
from fleetcpu.probe.document import (
    CpuFacts,
    CpuModel,
    Expansion,
    FeatureWord,
    HostFacts,
    MachineProbe,
    VcpuProps,
)
from fleetcpu.vocabulary import NOT_POOL_MODELS

from . import capture as capmod
from . import replay_qemu
from .hosts import BINARY_NAME, KVM_MODULES, HostCapture, catalogue

#: What every property-test member claims as collection time (any fixed time will do).
COLLECTED_AT = datetime(2026, 1, 1, tzinfo=UTC)


class _Asker:
    """The stand-in's answers for one capture and accelerator, as the probe would get them."""

    def __init__(self, cap: HostCapture, accel: str) -> None:
        self.replay = replay_qemu.Replay(cap.path, BINARY_NAME, replay_qemu.Log(None))
        self.replay.accel = accel
        self.cpu = "host" if accel == "kvm" else "max"
        self.replay.cpu = replay_qemu.CpuArg.parse(self.cpu)
        self.replay.paused = True

    def ask(self, execute: str, args: dict[str, Any]) -> Any | None:
        """The reply's ``return``, or None where the stand-in answers with a QMP error."""
        try:
            value, _how, _source = self.replay.answer(execute, args)
        except replay_qemu.QmpError:
            return None
        return value

    def expansion(self, kind: str, model: str, vocabulary: tuple[str, ...] | None = None) -> Expansion | None:
        reply = self.ask("query-cpu-model-expansion", {"type": kind, "model": {"name": model}})
        return None if reply is None else qmp_decode.decode_expansion(reply, vocabulary)


def _words(asker: _Asker, path: str, prop: str) -> tuple[FeatureWord, ...]:
    reply = asker.ask("qom-get", {"path": path, "property": prop})
    return () if reply is None else qmp_decode.decode_feature_words(reply, prop)


@cache
def machine_probe(name: str, accel: str = "kvm") -> MachineProbe:
    """What the probe records for the catalogue host ``name`` on its q35, under ``accel``."""
    cap = next(c for c in catalogue() if c.name == name)
    asker = _Asker(cap, accel)
    machines = qmp_decode.decode_machines(asker.ask("query-machines", {}) or [])
    target = qmp_decode.resolve_machine(machines, "q35") or "q35"
    defs = asker.ask("query-cpu-definitions", {})
    models: tuple[CpuModel, ...] = () if defs is None else qmp_decode.decode_cpu_definitions(defs)
    static = asker.expansion("static", asker.cpu)
    full = asker.expansion("full", asker.cpu, tuple(static.features) if static else None)
    with_features = []
    for model in models:
        if model.usable and model.alias_of is None and model.name not in NOT_POOL_MODELS:
            exp = asker.expansion("static", model.name)
            if exp is not None:
                model = dataclasses.replace(model, features=exp.enabled())  # noqa: PLW2901
        with_features.append(model)
    path = asker.replay.vcpu_paths()[0]
    values = {}
    for prop in qmp_decode.VCPU_PROPS:
        reply = asker.ask("qom-get", {"path": path, "property": prop})
        if reply is not None:
            values[prop] = reply
    return MachineProbe(
        requested="q35",
        machine_type=target,
        accel=accel,
        cpu=asker.cpu,
        models=tuple(with_features),
        static_expansion=static,
        full_expansion=full,
        vcpu=qmp_decode.decode_vcpu(values) if values else VcpuProps(),
        feature_words=_words(asker, path, "feature-words"),
        filtered_features=_words(asker, path, "filtered-features"),
    )


def facts(name: str, *, microcode: str = "0x1", nested: bool = False) -> HostFacts:
    """The synthetic facts ``make_replay_host`` would write for this capture."""
    cap = next(c for c in catalogue() if c.name == name)
    ident = capmod.identity(cap.load())
    return HostFacts(
        hostname=name,
        cpu=CpuFacts(
            vendor=ident.vendor,
            family=ident.family,
            model=ident.model,
            stepping=ident.stepping,
            model_name=ident.model_name,
            microcode=microcode,
        ),
        kvm_module=KVM_MODULES.get(ident.vendor, "kvm_intel"),
        kvm_nested="true" if nested else "false",
        dev_kvm="ok",
        synthetic=cap.label,
    )


def qemu_version(name: str) -> str:
    cap = next(c for c in catalogue() if c.name == name)
    replay = replay_qemu.Replay(cap.path, BINARY_NAME, replay_qemu.Log(None))
    (major, minor, micro), _ = replay.version()
    return f"{major}.{minor}.{micro}"


def accels(name: str) -> tuple[str, ...]:
    """The accelerators a capture holds: cputestdata is KVM only; conversations have both."""
    cap = next(c for c in catalogue() if c.name == name)
    return ("kvm",) if cap.kind == "cputest" else ("kvm", "tcg")


def member(
    name: str, accel: str = "kvm", *, host: str | None = None, microcode: str = "0x1", nested: bool = False
) -> Member:
    """A baseline ``Member`` for catalogue host ``name`` (``host`` renames it, for big pools)."""
    return member_from_probe(
        host or name,
        accel,
        qemu_version(name),
        COLLECTED_AT,
        facts(name, microcode=microcode, nested=nested),
        machine_probe(name, accel),
    )
