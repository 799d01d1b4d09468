"""``--format nova``: the ``[libvirt]`` lines of ``nova.conf`` for the pool's CPU. Pure.

Nova hands ``cpu_models`` and ``cpu_model_extra_flags`` to libvirt as a
``<cpu mode='custom'>``, so the model and flags are exactly those of
``--format libvirt`` (same cpu_map, same choice): libvirt feature spellings,
``+flag`` to require, ``-flag`` to disable, lowercase (Nova lowercases flags
itself; they are written so to be obviously what Nova will use).
``cpu_models`` holds one model: the pool's CPU is one CPU. Nova's own
``cpu_mode = custom`` uses ``match='exact'``; what it cannot express (the
CPUID vendor, phys-bits, KVM paravirtual features) is said in comments, with
the image properties that cover phys-bits (``hw_maxphysaddr_mode`` and
``hw_maxphysaddr_bits``, Nova 2023.1+: the flavor extra specs of the same
name have no validator, so the API refuses them from microversion 2.86 on),
what the guest gets and lacks of the KVM paravirtual features (Nova writes
no ``<features>``/``<clock>`` knob for them, so only QEMU's defaults for a
named model apply), and the machine type the CPU is valid for (``hw_machine_type``)
is given as a commented suggestion: pinning it changes every new instance.
"""

from __future__ import annotations

from ..baseline.quotable import refuse_names
from ..baseline.types import Baseline
from ..libvirt.cpumap import CpuMap
from ..libvirt.spell import LibvirtCpu, spell
from .libvirt_xml import gaps, pv_split, spelled
from .provenance import commentary, origin
from .rendered import Rendered

__all__ = ["flags", "pv_notes", "render_nova"]


def flags(require: tuple[str, ...], disable: tuple[str, ...]) -> list[str]:
    return [f"+{f.lower()}" for f in require] + [f"-{f.lower()}" for f in disable]


def pv_notes(cpu: LibvirtCpu) -> list[str]:
    """What a Nova guest gets of the pool's KVM paravirtual features: Nova sets no knob."""
    if not cpu.pv:
        return []
    gets, add, _remove, lacks, extra = pv_split(cpu)
    lacks = sorted({*lacks, *(k.rsplit(" (", 1)[1].split()[0] for k in add)})
    notes = [
        "KVM paravirtual features: Nova writes no <features> or <clock> knob for them, so "
        "the guest gets QEMU's KVM defaults for the named model: " + ", ".join(gets)
    ]
    if lacks:
        notes.append("the guest lacks (no Nova option turns them on): " + ", ".join(lacks))
    extra = sorted({*extra, *(k.rsplit(" (", 1)[1].split()[0] for k in _remove)})
    if extra:
        notes.append(
            "the guest gets although the pool lacks them (no Nova option turns them off): " + ", ".join(extra)
        )
    return notes


def render_nova(b: Baseline, cpu_map: CpuMap) -> Rendered:
    cpu = spell(b, cpu_map)
    refuse_names("--format nova", f"cpu_map {cpu.cpu_map}", spelled(cpu), cpu.vendor_id)
    notes = [
        *origin(b),
        f"libvirt cpu_map: {cpu.cpu_map}",
        f"model {cpu.model}: {cpu.why}",
        *gaps(cpu),
        *pv_notes(cpu),
        "Nova cannot set the CPUID vendor: under KVM QEMU gives the guest the host's, "
        f"which is the pool's ({b.vendor or 'unknown'}) on every member",
    ]
    if b.scalars.phys_bits is not None:
        notes.append(
            "phys-bits: set the image properties hw_maxphysaddr_mode=emulate and "
            f"hw_maxphysaddr_bits={b.scalars.phys_bits} (Nova 2023.1+; the flavor "
            "extra specs hw:maxphysaddr_* are refused from API microversion 2.86)"
        )
    lines = [f"# {n}" for n in notes]
    lines += [
        "[libvirt]",
        f"# the CPU is valid on {b.machine_type} only; to pin it for new instances:",
        f"# hw_machine_type = x86_64={b.machine_type}",
        "cpu_mode = custom",
        f"cpu_models = {cpu.model}",
        "cpu_model_extra_flags = " + ", ".join(flags(cpu.require, cpu.disable)),
    ]
    return Rendered("\n".join(lines) + "\n", commentary(b, gaps(cpu)))
