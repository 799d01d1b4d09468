"""``--format kubevirt``: a ``spec.domain.cpu`` YAML snippet for a VirtualMachineInstance. Pure.

KubeVirt hands ``model`` and ``features`` to libvirt unchanged, so both are
libvirt-spelt (same cpu_map, same complete definition as ``--format
libvirt``), each feature with ``policy: require`` or ``policy: disable``. In
a VirtualMachine the block goes under ``spec.template.spec.domain.cpu``.
KubeVirt's rules, read at v1.9.0 (tests/test_export_kubevirt.py restates them
with file and line):

* **Scheduling.** The VMI's pod requires the node label
  ``cpu-model.node.kubevirt.io/<model>`` and ``cpu-feature.node.kubevirt.io/
  <name>`` for every ``require``d feature (virt-controller
  ``nodeselectorrenderer.go``). virt-handler's node-labeller sets a model
  label where libvirt's ``domcapabilities`` reports the model usable, *minus
  the obsolete models* (``DefaultObsoleteCPUModels``, ``OBSOLETE_MODELS``
  here, unless the KubeVirt CR's ``spec.configuration.obsoleteCPUModels``
  replaces that map; a model listed there is obsolete whatever its value),
  and a feature label where libvirt's host-model requires the feature.
* So the model is libvirt's choice when KubeVirt labels it; otherwise the
  cheapest model libvirt knows that the pool's probes judged usable on every
  member and KubeVirt does not call obsolete (the features still define the
  CPU completely, so the model's content cannot matter). When none fits
  (this host's KVM: only pentium, pentium2, pentium3 and 486 are usable, all
  obsolete) the output says so and gives the override, the default map
  without that model.
* libvirt's host-model is the host's own CPUID as libvirt reads it, which
  can lack a feature KVM offers the guest (on this project's nested KVM,
  ``gfni``): a required feature then has no label on that node. fleetcpu's
  probes record what QEMU offers, not libvirt's host-model, so the output
  names the selectors to check rather than promise them.
* **KVM paravirtual features** (``KUBEVIRT_PV_FIELDS``): KubeVirt's converter
  writes ``<pvspinlock>`` from ``features.pvspinlock`` and the kvmclock timer
  from ``clock.timer.kvm``; ``features.apic.endOfInterrupt`` is in the API
  but never read (``<apic/>`` only), and ``features.kvm`` has only
  ``hidden``: libvirt's ``<apic eoi>``, ``<kvm><poll-control>`` and
  ``<kvm><hint-dedicated>`` have no KubeVirt field.

The YAML is written by hand, deterministically: two-space indentation,
block sequences, every model and feature name double-quoted (a model named
``486`` would otherwise be read as an integer). Names never contain a quote
or backslash; anything else would be refused rather than escaped wrongly.
"""

from __future__ import annotations

from ..baseline.quotable import refuse_names
from ..baseline.types import Baseline
from ..libvirt.cpumap import CpuMap
from ..libvirt.spell import PV_KNOBS, LibvirtCpu, spell, spell_as, usable_models
from .libvirt_xml import gaps, pv_split, spelled
from .provenance import commentary, origin
from .rendered import Rendered

__all__ = [
    "KUBEVIRT_PV_FIELDS",
    "OBSOLETE_MODELS",
    "choose",
    "override",
    "pv_notes",
    "quoted",
    "render_kubevirt",
]


def quoted(value: str) -> str:
    """A YAML double-quoted scalar for the plain names we emit."""
    if any(c in value for c in '"\\\n') or not value.isprintable():
        raise ValueError(f"refusing to quote {value!r} for YAML")
    return f'"{value}"'


#: KubeVirt v1.9.0's DefaultObsoleteCPUModels (pkg/virt-handler/node-labeller/util/util.go):
#: never labelled on any node unless the KubeVirt CR's obsoleteCPUModels replaces the map.
OBSOLETE_MODELS = frozenset(
    name + suffix
    for name in (
        "486",
        "pentium",
        "pentium2",
        "pentium3",
        "pentiumpro",
        "coreduo",
        "n270",
        "core2duo",
        "Conroe",
        "athlon",
        "phenom",
        "qemu64",
        "qemu32",
        "kvm64",
        "kvm32",
        "Opteron_G1",
        "Opteron_G2",
    )
    for suffix in ("", "-v1")
)

#: KVM PV feature -> the KubeVirt VirtualMachineInstance field that switches it (kubevirt.io/v1,
#: as its converter reads them at v1.9.0).
KUBEVIRT_PV_FIELDS = {
    "kvm-pv-unhalt": "spec.domain.features.pvspinlock.enabled: {on}",
    "kvmclock": "spec.domain.clock.timer.kvm.present: {on}",
}
#: libvirt's knobs (``PV_KNOBS``) that no KubeVirt field reaches, and why.
_NO_FIELD = {
    "kvm-pv-eoi": "features.apic.endOfInterrupt is in the API but never read by the converter "
    "(it writes <apic/> only)",
    "kvm-poll-control": "features.kvm has only hidden",
    "kvm-hint-dedicated": "features.kvm has only hidden",
}


def pv_notes(cpu: LibvirtCpu) -> list[str]:
    """What a KubeVirt guest gets of the pool's KVM PV features, with KubeVirt's real fields."""
    if not cpu.pv:
        return []
    gets, _add, _remove, _lacks, _extra = pv_split(cpu)
    wanted = {f for f, on in cpu.pv if on}
    defaults = {f for f, _ in cpu.pv} | set(gets)
    fields = [
        KUBEVIRT_PV_FIELDS[f].format(on="true") + f" ({f} on)"
        for f in sorted(wanted - set(gets))
        if f in KUBEVIRT_PV_FIELDS
    ]
    fields += [
        KUBEVIRT_PV_FIELDS[f].format(on="false") + f" ({f} off)"
        for f in sorted(defaults - wanted)
        if f in KUBEVIRT_PV_FIELDS and f in gets
    ]
    nofield = sorted(f for f in wanted - set(gets) if f not in KUBEVIRT_PV_FIELDS)
    notes = [
        "KVM paravirtual features: with no field set the guest gets QEMU's KVM defaults for "
        "the named model: " + ", ".join(gets)
    ]
    if fields:
        notes.append("set in the VirtualMachineInstance: " + "; ".join(fields))
    if nofield:
        notes.append("the guest lacks (KubeVirt has no field for them): " + ", ".join(nofield))
    notes.append(
        "no KubeVirt field for "
        + "; ".join(
            f"{PV_KNOBS[f].format(on='on', yes='yes')} ({f}: {why})" for f, why in sorted(_NO_FIELD.items())
        )
    )
    return notes


def choose(b: Baseline, cpu_map: CpuMap) -> tuple[LibvirtCpu, list[str]]:
    """The CPU with a model KubeVirt labels nodes with, and what to say about the choice."""
    cpu = spell(b, cpu_map)
    usable = usable_models(b, cpu_map)
    names = {name for _, name in usable}
    if cpu.model in names and cpu.model not in OBSOLETE_MODELS:
        return cpu, []
    fits = [(cost, name) for cost, name in usable if name not in OBSOLETE_MODELS]
    if fits:
        cost, name = fits[0]
        reason = (
            "is in KubeVirt's DefaultObsoleteCPUModels"
            if cpu.model in OBSOLETE_MODELS
            else "was not judged usable on every member by the pool's probes"
        )
        why = (
            f"libvirt's choice {cpu.model} {reason}, so no node would be labelled "
            f"cpu-model.node.kubevirt.io/{cpu.model}; {name} is the closest model this "
            f"cpu_map knows that is usable on every member and not obsolete ({cost} "
            "explicit changes)"
        )
        return spell_as(b, cpu_map, name, why), []
    if usable:  # only obsolete models fit: libvirt's if usable, else the cheapest; the override
        cost, name = usable[0]
        if cpu.model not in names:
            cpu = spell_as(
                b,
                cpu_map,
                name,
                f"{name} is the closest model this cpu_map knows that is usable on "
                f"every member ({cost} explicit changes)",
            )
        return cpu, [
            f"{cpu.model} is in KubeVirt's DefaultObsoleteCPUModels (v1.9.0), and no model this "
            "cpu_map knows that is not obsolete is usable on every member: the node-labeller "
            f"publishes no cpu-model.node.kubevirt.io/{cpu.model}, so the VM is never "
            "scheduled unless the KubeVirt CR replaces the obsolete list with one without it "
            "(a model listed there is obsolete whatever its value):",
            *override(cpu.model),
        ]
    return cpu, [
        "the pool's probes judged no model this cpu_map knows usable on every member: the "
        f"node-labeller publishes cpu-model.node.kubevirt.io/{cpu.model} only where libvirt "
        "reports it usable, so the VM may never be scheduled"
    ]


def override(model: str) -> list[str]:
    """The KubeVirt CR's obsoleteCPUModels: KubeVirt's default list without ``model``."""
    return [
        "  spec:",
        "    configuration:",
        "      obsoleteCPUModels:",
        *(f"        {quoted(m)}: true" for m in sorted(OBSOLETE_MODELS - {model})),
    ]


def _selectors(cpu: LibvirtCpu) -> str:
    return (
        f"the VM's pod needs nodes labelled cpu-model.node.kubevirt.io/{cpu.model}=true and "
        f"cpu-feature.node.kubevirt.io/<name>=true for each of the {len(cpu.require)} "
        "features with policy require; the node-labeller sets a feature label where "
        "libvirt's host-model requires it, which can lack a feature QEMU offers that the "
        "host's own CPUID lacks (KVM emulates it): check with kubectl get nodes -l "
        f"cpu-model.node.kubevirt.io/{cpu.model}=true,cpu-feature.node.kubevirt.io/<name>=true"
    )


def render_kubevirt(b: Baseline, cpu_map: CpuMap) -> Rendered:
    cpu, scheduling = choose(b, cpu_map)
    refuse_names("--format kubevirt", f"cpu_map {cpu.cpu_map}", spelled(cpu), cpu.vendor_id)
    notes = [
        *origin(b),
        f"libvirt cpu_map: {cpu.cpu_map}",
        f"model {cpu.model}: {cpu.why}",
        *gaps(cpu),
        *scheduling,
        _selectors(cpu),
        *pv_notes(cpu),
        "KubeVirt cannot set the CPUID vendor or phys-bits: under KVM QEMU gives the "
        f"guest the host's vendor, which is the pool's ({b.vendor or 'unknown'})",
        "in a VirtualMachine this goes under spec.template.spec.domain.cpu",
    ]
    lines = [f"# {n}" for n in notes]
    lines += ["spec:", "  domain:", "    cpu:", f"      model: {quoted(cpu.model)}"]
    policies = [(f, "require") for f in cpu.require] + [(f, "disable") for f in cpu.disable]
    if policies:
        lines.append("      features:")
        for name, policy in policies:
            lines += [f"      - name: {quoted(name)}", f"        policy: {policy}"]
    warnings = [*gaps(cpu), *scheduling[:1]]
    return Rendered("\n".join(lines) + "\n", commentary(b, warnings))
