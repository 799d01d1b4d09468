"""A pool baseline spelt in libvirt's terms: one cpu_map model plus require/disable. Pure.

libvirt starts QEMU with ``-cpu <model>,+f,-g`` for a ``<cpu mode='custom'>``
and, with ``check='full'``, compares what QEMU built with *its own* idea of
the model (the cpu_map definition) plus the listed features; it refuses to
start on any difference. So the XML must say exactly the pool's result in
cpu_map terms, and every difference between cpu_map's model and QEMU's model
must be listed explicitly.

The model, in order of preference:

1. the pool's named model (``Baseline.model``) when this cpu_map knows it;
2. its unversioned name: ``X-vN`` -> ``X`` (libvirt <= 10 has no versions),
   the features that differ listed explicitly;
3. the *closest* model this cpu_map knows: fewest explicit changes to reach
   the result (nesting features the result lacks not counted: they are
   disabled whatever the model), preferring models the pool's QEMUs judged
   usable (their QEMU view is recorded, see below), then the pool's vendor
   (or a vendorless generic model), then the name. Used when the pool has no common model
   (``base``) or the cpu_map is older than the pool's QEMUs.

The features: the element defines the CPU completely in libvirt's names,
so that whatever QEMU's model holds the guest gets exactly the result. QEMU's
definition of the model is often unknown (probes record the features of
usable models only) and differs from cpu_map's (QEMU 7.2's Skylake-Server
has ``pku`` and lacks ``mpx``; its EPYC has ``topoext``), and Nova and
KubeVirt write no ``check``, so libvirt would start such a guest with the
extra feature. With R the result in libvirt names, K the libvirt names of
every feature some member's QEMU knows (``Baseline.vocabulary``; every
cpu_map feature when none was recorded), F the cpu_map model's features and
X its ``removed='yes'`` ones:

* ``require`` = R: every result feature, whether the model has it or not;
* ``disable`` = (K + F + X - R) + QEMU's recorded ``disable`` of the model:
  every feature a member's QEMU could put into the model that the result
  lacks. Names no member's QEMU knows are left out: ``-cpu X,name=off``
  with a name QEMU does not know refuses to start, and a QEMU that does
  not know a feature cannot give it.

What libvirt cannot say is never dropped silently: a result feature this
cpu_map cannot name is listed in ``unnamed`` (the guest will lack it), and a
feature QEMU's model enables that libvirt cannot disable in ``unremovable``
(the guest may get it). KVM paravirtual features are never cpu_map features:
libvirt drives them through domain XML outside ``<cpu>``, listed in
``pv_knobs`` where a knob exists (``<clock><timer name='kvmclock'/>``,
``<features><pvspinlock/>``, ``<apic eoi=/>``, ``<kvm><poll-control/>`` ...);
the rest follow QEMU's KVM defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..baseline.choose import split_version
from ..baseline.types import Baseline, ModelVerdict
from ..probe.features import KVM_PV, is_nested
from .cpumap import CpuMap, LibvirtModel

__all__ = [
    "CLOSEST",
    "PV_DEFAULT",
    "PV_KNOBS",
    "SAME",
    "UNVERSIONED",
    "LibvirtCpu",
    "qemu_view",
    "spell",
    "spell_as",
    "usable_models",
]

#: KVM paravirtual feature -> the libvirt domain XML that switches it, as a format string
#: taking "on"/"off" ("yes"/"no" for the timer). Features without an entry have no knob that
#: works: ``<kvm><pv-ipi state='on'/>`` changes nothing (libvirt only ever emits
#: ``kvm-pv-ipi=off``). Measured on CPUID 0x40000001 of a guest libvirt 9.0 started on QEMU
#: 7.2 (tests/test_export_consumers.py holds every entry to that).
PV_KNOBS: dict[str, str] = {
    "kvmclock": "<clock><timer name='kvmclock' present='{yes}'/></clock>",
    "kvm-pv-eoi": "<features><apic eoi='{on}'/></features>",
    "kvm-pv-unhalt": "<features><pvspinlock state='{on}'/></features>",
    "kvm-poll-control": "<features><kvm><poll-control state='{on}'/></kvm></features>",
    "kvm-hint-dedicated": "<features><kvm><hint-dedicated state='{on}'/></kvm></features>",
}
#: What a guest gets with no knob at all: QEMU's KVM defaults for a named model, which is
#: what libvirt starts (CPUID 0x40000001 EAX 0x100007b, measured as above; the host kernel
#: must offer them). kvm-pv-tlb-flush, kvm-pv-sched-yield, kvm-asyncpf-int and kvm-pv-ipi
#: are off on named models, and libvirt cannot turn them on.
PV_DEFAULT = frozenset(
    {"kvmclock", "kvm-nopiodelay", "kvm-asyncpf", "kvm-steal-time", "kvm-pv-eoi", "kvmclock-stable-bit"}
)

#: How the model was found (``LibvirtCpu.how``).
SAME, UNVERSIONED, CLOSEST = "same", "unversioned", "closest"


@dataclass(frozen=True)
class LibvirtCpu:
    """The pool's CPU as libvirt takes it; every list sorted, names in libvirt's spelling."""

    cpu_map: str
    model: str
    #: same | unversioned | closest
    how: str
    #: One sentence on why this model (for the XML comment).
    why: str
    vendor_id: str | None
    require: tuple[str, ...]
    disable: tuple[str, ...]
    phys_bits: int | None
    #: Result features (QEMU names, not KVM PV) this cpu_map cannot name: the guest lacks them.
    unnamed: tuple[str, ...] = ()
    #: QEMU-model features outside the result libvirt cannot name to disable.
    unremovable: tuple[str, ...] = ()
    #: (KVM PV feature, on) for every PV feature the result has or QEMU's model would add.
    pv: tuple[tuple[str, bool], ...] = ()

    def knob(self, feature: str, on: bool) -> str | None:
        """The domain XML that turns ``feature`` on/off, None where libvirt has none."""
        template = PV_KNOBS.get(feature)
        if template is None:
            return None
        return template.format(on="on" if on else "off", yes="yes" if on else "no")


def _verdicts(b: Baseline) -> dict[str, ModelVerdict]:
    return {v.model: v for v in b.models}


def qemu_view(b: Baseline, name: str) -> ModelVerdict | None:
    """The pool's QEMU verdict for what ``-cpu name`` means on the pool's machine type.

    A candidate by that name is its own view; an unversioned alias is
    followed to the versioned model it stands for (the verdict's ``alias``
    block says which); anything else is unknown (None).
    """
    verdicts = _verdicts(b)
    v = verdicts.get(name)
    if v is None:
        return None
    if v.candidate:
        return v
    if len(v.blocks) == 1 and v.blocks[0].reason == "alias":
        detail = v.blocks[0].detail
        prefix = "alias of "
        if detail.startswith(prefix):
            target = verdicts.get(detail[len(prefix) :].split(":", 1)[0])
            if target is not None and target.candidate:
                return target
    return None


@dataclass(frozen=True)
class _Choice:
    model: LibvirtModel
    how: str
    why: str
    view: ModelVerdict | None


def _names(cpu_map: CpuMap, qemu: Iterable[str]) -> tuple[set[str], set[str]]:
    """(libvirt names, QEMU names cpu_map cannot name) of the non-PV features."""
    named, unnamed = set(), set()
    for f in qemu:
        if f in KVM_PV:
            continue
        lv = cpu_map.libvirt_name(f)
        if lv is None:
            unnamed.add(f)
        else:
            named.add(lv)
    return named, unnamed


def _cost(model: LibvirtModel, result: set[str]) -> int:
    """Explicit changes to reach ``result``; nesting features the result lacks count as none.

    Newer cpu_maps list ~70 ``vmx-*`` in every Intel model: a pool without
    nesting disables them all anyway, whichever model, so counting them would
    rank an unrelated model without them (KnightsMill) above the right one.
    """
    extra = {f for f in model.features - result if not is_nested(f)}
    return len(result - model.features) + len(extra)


def _choose(b: Baseline, cpu_map: CpuMap, result: set[str]) -> _Choice:
    if b.model != "base":
        found = cpu_map.model(b.model)
        if found is not None:
            return _Choice(
                found, SAME, f"the pool's model {b.model}, known to this cpu_map", qemu_view(b, b.model)
            )
        base, version = split_version(b.model)
        found = cpu_map.model(base)
        if version and found is not None:
            return _Choice(
                found,
                UNVERSIONED,
                f"the pool's model is {b.model}; this cpu_map has no {b.model}, "
                f"so {base} plus explicit features",
                qemu_view(b, base),
            )
    # Closest: models whose QEMU view the pool recorded first, then any model cpu_map knows.
    options = []
    for lm in cpu_map.models.values():
        view = qemu_view(b, lm.name)
        vendor_off = int(lm.vendor is not None and lm.vendor != b.vendor)
        key = (int(view is None), _cost(lm, result), vendor_off, lm.name)
        options.append((key, _Choice(lm, CLOSEST, "", view)))
    key, choice = min(options, key=lambda kv: kv[0])
    why = (
        f"the pool's model {b.model} is unknown to this cpu_map; {choice.model.name} is the "
        f"closest model it knows ({key[1]} explicit changes, nesting features aside)"
    )
    return _Choice(choice.model, CLOSEST, why, choice.view)


def _qemu_sentence(choice: _Choice, machine_type: str) -> str:
    if choice.view is not None:
        return (
            f"QEMU's {choice.model.name} on {machine_type} is {choice.view.model} as the "
            "pool's probes recorded it; every feature is explicit"
        )
    return (
        f"the probes did not record what QEMU's {choice.model.name} holds on {machine_type}; "
        "every feature the members' QEMUs know is explicit, so its content cannot matter"
    )


def spell(b: Baseline, cpu_map: CpuMap) -> LibvirtCpu:
    """The baseline as a libvirt model plus explicit features (see the module docstring)."""
    result, unnamed = _names(cpu_map, b.features)
    return _build(b, cpu_map, _choose(b, cpu_map, result), result, unnamed)


def usable_models(b: Baseline, cpu_map: CpuMap) -> list[tuple[int, str]]:
    """(explicit changes, name) of every cpu_map model the pool's probes judged usable on
    every member (its QEMU view recorded), cheapest first: the models a consumer that
    schedules by model usability (KubeVirt's node labels) can take."""
    result = _names(cpu_map, b.features)[0]
    return sorted(
        (_cost(lm, result), lm.name) for lm in cpu_map.models.values() if qemu_view(b, lm.name) is not None
    )


def spell_as(b: Baseline, cpu_map: CpuMap, model: str, why: str) -> LibvirtCpu:
    """The baseline spelt with the given cpu_map model (a consumer's narrower choice): the
    same complete definition, so the model's content cannot widen the guest either."""
    lm = cpu_map.model(model)
    if lm is None:
        raise ValueError(f"cpu_map {cpu_map.path} has no model {model!r}")
    result, unnamed = _names(cpu_map, b.features)
    return _build(b, cpu_map, _Choice(lm, CLOSEST, why, qemu_view(b, model)), result, unnamed)


def _build(b: Baseline, cpu_map: CpuMap, choice: _Choice, result: set[str], unnamed: set[str]) -> LibvirtCpu:
    lm = choice.model
    known = _names(cpu_map, b.vocabulary)[0] if b.vocabulary else set(cpu_map.features)
    require = set(result)
    disable = (known | lm.features | lm.removed) - result
    unremovable: set[str] = set()
    pv = {f: True for f in b.features if f in KVM_PV}
    if choice.view is not None:
        off, cannot = _names(cpu_map, choice.view.disable)
        disable |= off
        unremovable |= cannot
        pv.update({f: False for f in choice.view.disable if f in KVM_PV})
    return LibvirtCpu(
        cpu_map=cpu_map.path,
        model=lm.name,
        how=choice.how,
        why=f"{choice.why}; {_qemu_sentence(choice, b.machine_type)}",
        vendor_id=b.vendor,
        require=tuple(sorted(require)),
        disable=tuple(sorted(disable - require)),
        phys_bits=b.scalars.phys_bits,
        unnamed=tuple(sorted(unnamed)),
        unremovable=tuple(sorted(unremovable)),
        pv=tuple(sorted(pv.items())),
    )
