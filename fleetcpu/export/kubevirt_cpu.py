"""``--format kubevirt``: a ``spec.domain.cpu`` YAML snippet for a VirtualMachineInstance. Pure.

KubeVirt hands ``model`` and ``features`` to libvirt unchanged, so both are
``--format libvirt``'s (same cpu_map, same choice, libvirt spellings), each
feature with ``policy: require`` or ``policy: disable``. In a VirtualMachine
the block goes under ``spec.template.spec.domain.cpu``. KubeVirt schedules a
custom model only onto nodes labelled ``cpu-model.node.kubevirt.io/<model>``,
which virt-handler sets where libvirt reports the model usable.

The YAML is written by hand, deterministically: two-space indentation,
block sequences, every model and feature name double-quoted (a model named
``486`` would otherwise be read as an integer). Names never contain a quote
or backslash; anything else would be refused rather than escaped wrongly.
"""

from __future__ import annotations

from ..baseline.quotable import refuse_names
from ..baseline.types import Baseline
from ..libvirt.cpumap import CpuMap
from ..libvirt.spell import LibvirtCpu, spell
from .libvirt_xml import gaps, pv_split, spelled
from .provenance import commentary, origin
from .rendered import Rendered

__all__ = ["KUBEVIRT_PV_FIELDS", "pv_notes", "quoted", "render_kubevirt"]


def quoted(value: str) -> str:
    """A YAML double-quoted scalar for the plain names we emit."""
    if any(c in value for c in '"\\\n') or not value.isprintable():
        raise ValueError(f"refusing to quote {value!r} for YAML")
    return f'"{value}"'


#: KVM PV feature -> the KubeVirt VirtualMachineInstance field that switches it (kubevirt.io/v1).
KUBEVIRT_PV_FIELDS = {
    "kvm-pv-eoi": "spec.domain.features.apic.endOfInterrupt: {on}",
    "kvm-pv-unhalt": "spec.domain.features.pvspinlock.enabled: {on}",
    "kvmclock": "spec.domain.clock.timer.kvm.present: {on}",
}


def pv_notes(cpu: LibvirtCpu) -> list[str]:
    """What a KubeVirt guest gets of the pool's KVM PV features, with KubeVirt's real fields."""
    if not cpu.pv:
        return []
    gets, _add, _remove, _lacks, _extra = pv_split(cpu)
    wanted = {f for f, on in cpu.pv if on}
    defaults = {f for f, _ in cpu.pv} | set(gets)
    fields = [KUBEVIRT_PV_FIELDS[f].format(on="true") + f" ({f} on)"
              for f in sorted(wanted - set(gets)) if f in KUBEVIRT_PV_FIELDS]
    fields += [KUBEVIRT_PV_FIELDS[f].format(on="false") + f" ({f} off)"
               for f in sorted(defaults - wanted) if f in KUBEVIRT_PV_FIELDS and f in gets]
    nofield = sorted(f for f in wanted - set(gets) if f not in KUBEVIRT_PV_FIELDS)
    notes = ["KVM paravirtual features: with no field set the guest gets QEMU's KVM defaults for "
             "the named model: " + ", ".join(gets)]
    if fields:
        notes.append("set in the VirtualMachineInstance: " + "; ".join(fields))
    if nofield:
        notes.append("the guest lacks (KubeVirt has no field for them): " + ", ".join(nofield))
    return notes


def render_kubevirt(b: Baseline, cpu_map: CpuMap) -> Rendered:
    cpu = spell(b, cpu_map)
    refuse_names("--format kubevirt", f"cpu_map {cpu.cpu_map}", spelled(cpu), cpu.vendor_id)
    notes = [*origin(b), f"libvirt cpu_map: {cpu.cpu_map}", f"model {cpu.model}: {cpu.why}",
             *gaps(cpu), *pv_notes(cpu),
             "KubeVirt cannot set the CPUID vendor or phys-bits: under KVM QEMU gives the "
             f"guest the host's vendor, which is the pool's ({b.vendor or 'unknown'})",
             "in a VirtualMachine this goes under spec.template.spec.domain.cpu"]
    lines = [f"# {n}" for n in notes]
    lines += ["spec:", "  domain:", "    cpu:", f"      model: {quoted(cpu.model)}"]
    policies = [(f, "require") for f in cpu.require] + [(f, "disable") for f in cpu.disable]
    if policies:
        lines.append("      features:")
        for name, policy in policies:
            lines += [f"      - name: {quoted(name)}", f"        policy: {policy}"]
    return Rendered("\n".join(lines) + "\n", commentary(b, gaps(cpu)))
