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
from ..libvirt.spell import spell
from .libvirt_xml import gaps, pv_notes, spelled
from .provenance import commentary, origin
from .rendered import Rendered

__all__ = ["quoted", "render_kubevirt"]


def quoted(value: str) -> str:
    """A YAML double-quoted scalar for the plain names we emit."""
    if any(c in value for c in '"\\\n') or not value.isprintable():
        raise ValueError(f"refusing to quote {value!r} for YAML")
    return f'"{value}"'


def render_kubevirt(b: Baseline, cpu_map: CpuMap) -> Rendered:
    cpu = spell(b, cpu_map)
    refuse_names("--format kubevirt", f"cpu_map {cpu.cpu_map}", spelled(cpu), cpu.vendor_id)
    notes = [*origin(b), f"libvirt cpu_map: {cpu.cpu_map}", f"model {cpu.model}: {cpu.why}",
             *gaps(cpu), *pv_notes(cpu, "KubeVirt"),
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
