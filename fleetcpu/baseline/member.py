"""One host's probe of one machine type -> the ``Member`` the core computes on. Pure.

What a host *offers* is read from the host CPU's expansion, not from
``feature-words``: the expansion names MSR-based features (``vmx-*``,
``arch-capabilities`` bits) that feature-words cannot show, and the probe
asks it for the exact CPU that started (``host,arch-capabilities=off`` when
plain ``host`` aborted), so a feature the fallback had to switch off is never
offered. The static expansion is preferred because it is what ``-cpu base``
plus features reproduces; a capture without one (libvirt's cputestdata) falls
back to the full expansion, whose features the probe already canonicalised.
"""

from __future__ import annotations

from datetime import datetime

from ..probe.document import Expansion, HostFacts, MachineProbe, Scalar
from ..probe.features import OS_CONTROLLED
from .types import Member, Scalars

__all__ = ["member_from_probe", "offered", "offered_from", "probe_vendor", "scalars", "vendor", "vocabulary"]


def offered(probe: MachineProbe) -> frozenset[str]:
    """Features a guest on this host can have: the host CPU's enabled features minus OS bits.

    ``osxsave``/``ospke`` mirror the guest OS's CR4, not the CPU: a baseline
    that "requires" them is meaningless, so they are never offered.
    """
    return offered_from(probe.static_expansion, probe.full_expansion)


def offered_from(static: Expansion | None, full: Expansion | None) -> frozenset[str]:
    """``offered`` for expansions read back from anywhere (the store's history, a notebook)."""
    exp = static if static is not None else full
    if exp is None:
        return frozenset()
    return frozenset(name for name, on in exp.features.items() if on) - OS_CONTROLLED


def vocabulary(probe: MachineProbe) -> frozenset[str]:
    """Every feature name this QEMU knows (enabled or not), from both host expansions."""
    names: set[str] = set()
    for exp in (probe.static_expansion, probe.full_expansion):
        if exp is not None:
            names.update(exp.features)
    return frozenset(names)


def _prop_int(props: dict[str, Scalar], key: str) -> int | None:
    value = props.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _props(probe: MachineProbe) -> dict[str, Scalar]:
    """Expansion properties, the full expansion's winning (it describes the realized CPU)."""
    out: dict[str, Scalar] = {}
    for exp in (probe.static_expansion, probe.full_expansion):
        if exp is not None:
            out.update(exp.props)
    return out


def scalars(probe: MachineProbe) -> Scalars:
    """The vCPU's own values first (``qom-get`` on the realized CPU), else the expansion's.

    ``phys-bits`` in an expansion is the pre-realize 0, never a vCPU's value,
    so a 0 there counts as unknown. ``min-level`` is not ``level``: QEMU may
    raise the level above it, so it is never used as a stand-in.
    """
    props = _props(probe)
    v = probe.vcpu

    def pick(own: int | None, key: str) -> int | None:
        if own is not None:
            return own
        value = _prop_int(props, key)
        return None if value is None or (key == "phys-bits" and value == 0) else value

    return Scalars(
        family=pick(v.family, "family"),
        model=pick(v.model, "model"),
        stepping=pick(v.stepping, "stepping"),
        level=pick(v.level, "level"),
        xlevel=pick(v.xlevel, "xlevel"),
        phys_bits=pick(v.phys_bits, "phys-bits"),
    )


def probe_vendor(probe: MachineProbe) -> str | None:
    """The CPUID vendor the probe itself names: the vCPU's, else the expansion's (None: neither)."""
    if probe.vcpu.vendor:
        return probe.vcpu.vendor
    value = _props(probe).get("vendor")
    if isinstance(value, str) and value:
        return value
    return None


def vendor(probe: MachineProbe, facts: HostFacts) -> str | None:
    """The CPUID vendor a guest sees: the probe's (``probe_vendor``), else /proc/cpuinfo's."""
    return probe_vendor(probe) or facts.cpu.vendor


def member_from_probe(
    host: str,
    accel: str,
    qemu_version: str | None,
    collected_at: datetime,
    facts: HostFacts,
    probe: MachineProbe,
) -> Member:
    """Reduce one stored (or live) ``MachineProbe`` of a host to a ``Member``."""
    return Member(
        host=host,
        accel=accel,
        qemu_version=qemu_version,
        collected_at=collected_at,
        vendor=vendor(probe, facts),
        microcode=facts.cpu.microcode,
        kvm_nested=facts.kvm_nested,
        models=probe.models,
        offered=offered(probe),
        vocabulary=vocabulary(probe),
        scalars=scalars(probe),
        feature_words=probe.feature_words,
    )
