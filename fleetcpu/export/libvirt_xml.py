"""``--format libvirt``: the pool's CPU as a libvirt domain ``<cpu>`` element. Pure.

``mode='custom' match='exact' check='full'`` and ``fallback='forbid'``: the
guest gets exactly this model and these features or does not start, and
libvirt itself compares what QEMU built with the definition (``check='full'``)
instead of trusting the model name, which QEMU resolves per machine type.
``vendor_id`` carries the pool's CPUID vendor, as ``vendor=`` does in the
``-cpu`` strings. ``<maxphysaddr mode='emulate'>`` pins phys-bits to the
smallest member's, when recorded. How the model and features are chosen, and
what cannot be said in ``<cpu>`` (KVM paravirtual features), is
``fleetcpu.libvirt.spell``'s docstring; all of it is repeated as XML comments
inside the element, with the cpu_map used, so the element can be pasted into
a domain as one block.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from ..baseline.quotable import refuse_names
from ..baseline.types import Baseline
from ..libvirt.cpumap import CpuMap
from ..libvirt.spell import PV_DEFAULT, LibvirtCpu, spell
from .provenance import commentary, origin
from .rendered import Rendered

__all__ = ["attr", "comment", "gaps", "pv_notes", "pv_split", "render_libvirt", "spelled"]


def attr(value: str) -> str:
    """A single-quoted XML attribute value (the quoting libvirt itself writes)."""
    return "'" + escape(value, {"'": "&apos;", '"': "&quot;"}) + "'"


def comment(text: str) -> str:
    """An XML comment; ``--`` may not occur inside one, so it is broken up."""
    while "--" in text:
        text = text.replace("--", "- -")
    return f"<!-- {text.rstrip('-')} -->"


def pv_split(cpu: LibvirtCpu) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """The pool's KVM PV features as libvirt gives them: (what the guest gets with no knob,
    the knobs that add what the pool wants, the knobs that remove what it lacks, what the
    guest lacks for want of a knob, what it gets although the pool lacks it)."""
    wanted = {f for f, on in cpu.pv if on}
    gets = sorted(wanted & PV_DEFAULT)
    add = [f"{cpu.knob(f, True)} ({f} on)" for f in sorted(wanted - PV_DEFAULT) if cpu.knob(f, True)]
    unwanted = PV_DEFAULT - wanted
    remove = [f"{cpu.knob(f, False)} ({f} off)" for f in sorted(unwanted) if cpu.knob(f, False)]
    lacks = sorted(f for f in wanted - PV_DEFAULT if not cpu.knob(f, True))
    extra = sorted(f for f in unwanted if not cpu.knob(f, False))
    return gets, add, remove, lacks, extra


def pv_notes(cpu: LibvirtCpu) -> list[str]:
    """Sentences on the KVM paravirtual features: not <cpu> features in libvirt."""
    if not cpu.pv:
        return []
    gets, add, remove, lacks, extra = pv_split(cpu)
    notes = [
        "KVM paravirtual features are not <cpu> features in libvirt (cpu_map has no "
        "names for them) and are left out here; the pool wants: " + ", ".join(f for f, on in cpu.pv if on)
    ]
    if gets:
        notes.append(
            "the guest gets (QEMU's KVM defaults for the named model libvirt starts, "
            "if the host kernel offers them): " + ", ".join(gets)
        )
    if add:
        notes.append("set them in the domain: " + "; ".join(add))
    if remove:
        notes.append("turn them off in the domain (the pool lacks them): " + "; ".join(remove))
    if lacks:
        notes.append("the guest lacks (libvirt has no knob that turns them on): " + ", ".join(lacks))
    if extra:
        notes.append(
            "the guest gets although the pool lacks them (libvirt cannot turn them off): " + ", ".join(extra)
        )
    return notes


def spelled(cpu: LibvirtCpu) -> list[str]:
    """Every name of ``cpu`` a libvirt-spelled format writes (the cpu_map's spellings included)."""
    return [cpu.model, *cpu.require, *cpu.disable, *cpu.unnamed, *cpu.unremovable, *(f for f, _on in cpu.pv)]


def gaps(cpu: LibvirtCpu) -> list[str]:
    """What this cpu_map cannot say: also printed on stderr, since the guest differs."""
    out = []
    if cpu.unnamed:
        out.append(
            "left out, this cpu_map cannot name them (the guest will lack them): " + " ".join(cpu.unnamed)
        )
    extra = pv_split(cpu)[4]
    if extra:
        out.append(
            "KVM paravirtual features the guest gets although the pool lacks them "
            "(libvirt cannot turn them off): " + " ".join(extra)
        )
    if cpu.unremovable:
        out.append(
            "QEMU's model enables these and this cpu_map cannot name them to disable "
            "(check='full' cannot see them either): " + " ".join(cpu.unremovable)
        )
    return out


def render_libvirt(b: Baseline, cpu_map: CpuMap) -> Rendered:
    cpu = spell(b, cpu_map)
    refuse_names("--format libvirt", f"cpu_map {cpu.cpu_map}", spelled(cpu), cpu.vendor_id)
    notes = [
        *origin(b),
        f"libvirt cpu_map: {cpu.cpu_map}",
        f"model {cpu.model}: {cpu.why}",
        *gaps(cpu),
        *pv_notes(cpu),
    ]
    if cpu.vendor_id is None:
        notes.append("no CPUID vendor recorded: vendor_id left out")
    lines = ["<cpu mode='custom' match='exact' check='full'>"]
    lines += [f"  {comment(n)}" for n in notes]
    vendor = f" vendor_id={attr(cpu.vendor_id)}" if cpu.vendor_id and len(cpu.vendor_id) == 12 else ""
    lines.append(f"  <model fallback='forbid'{vendor}>{escape(cpu.model)}</model>")
    if cpu.phys_bits is not None:
        lines.append(f"  <maxphysaddr mode='emulate' bits='{cpu.phys_bits}'/>")
    lines += [f"  <feature policy='require' name={attr(f)}/>" for f in cpu.require]
    lines += [f"  <feature policy='disable' name={attr(f)}/>" for f in cpu.disable]
    lines.append("</cpu>")
    return Rendered("\n".join(lines) + "\n", commentary(b, gaps(cpu)))
