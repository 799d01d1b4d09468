"""Per-model usability: the probe's reading of ``unavailable-features`` against libvirt's.

For each ``caps_*.replies`` conversation (QEMU 5.0, 8.2, 10.0), libvirt
shipped its own reading of the very same ``query-cpu-definitions`` replies:
``domaincapsdata/qemu_<ver>[-q35|-tcg].x86_64.xml`` marks each custom model
``usable='yes'|'no'`` and, from libvirt 8.x on, lists the ``<blockers>``
(libvirt spellings). Ours is ``CpuModel.usable`` / ``unavailable_features``
as the probe decodes them (``tests/support/replay/members.machine_probe``: the real
decoders on the stand-in's answers). The two must agree model by model;
models only one side lists are returned for the caller's table to justify.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..support.realdata import CPU_MAP, LIBVIRT
from ..support.replay import members as replay
from .cpu_map import load

DOMAINCAPS = LIBVIRT / "domaincapsdata"


@dataclass(frozen=True)
class Case:
    """One domaincaps file and the replay host + accelerator that answers for the same replies."""

    file: str
    capture: str
    accel: str


#: The .replies conversations and libvirt's three readings of each (i440fx, q35, TCG).
CASES: tuple[Case, ...] = tuple(
    Case(f"qemu_{ver}{variant}.x86_64.xml", capture, "tcg" if variant == "-tcg" else "kvm")
    for ver, capture in (
        ("5.0.0", "qemu-5.0-Xeon-E3-1245-v5"),
        ("8.2.0", "qemu-8.2-Ryzen-9-3900X"),
        ("10.0.0", "qemu-10.0-Ryzen-9-3900X"),
    )
    for variant in ("", "-q35", "-tcg")
)


@dataclass(frozen=True)
class LibvirtModels:
    """The custom-mode models of one domaincaps file."""

    machine: str
    usable: dict[str, bool]
    #: model -> blockers in fleetcpu's spelling (only files that list blockers).
    blockers: dict[str, frozenset[str]]
    #: how many blocker names libvirt spells differently from fleetcpu.
    respelt: int


def read_domaincaps(path: Path) -> LibvirtModels:
    root = ET.parse(path).getroot()
    cmap = load(CPU_MAP)
    custom = root.find("./cpu/mode[@name='custom']")
    if custom is None:
        raise ValueError(f"{path.name}: no custom CPU mode")
    usable: dict[str, bool] = {}
    blockers: dict[str, frozenset[str]] = {}
    respelt = 0
    for el in custom:
        if el.tag == "model" and el.text:
            usable[el.text] = el.get("usable") == "yes"
        elif el.tag == "blockers":
            names = [f.get("name", "") for f in el.findall("feature")]
            spelt = cmap.to_qemu(set(names))
            respelt += sum(1 for n in names if n != cmap.spell(n))
            blockers[el.get("model", "")] = spelt
    machine = root.findtext("machine", "")
    return LibvirtModels(machine, usable, blockers, respelt)


@dataclass(frozen=True)
class UsabilityResult:
    """One domaincaps file against the probe: JSON-ready."""

    file: str
    capture: str
    accel: str
    machine: str
    compared: int
    usable_agree: int
    usable_libvirt: int
    blockers_compared: int
    blockers_agree: int
    blockers_respelt: int
    disagreements: tuple[str, ...]
    only_ours: tuple[str, ...]
    only_libvirt: tuple[str, ...]


def compare(case: Case) -> UsabilityResult:
    """Every model both list: usable must match, and blockers (where given) = unavailable-features."""
    theirs = read_domaincaps(DOMAINCAPS / case.file)
    ours = {m.name: m for m in replay.machine_probe(case.capture, case.accel).models}
    both = sorted(set(ours) & set(theirs.usable))
    disagreements = []
    usable_agree = blockers_agree = 0
    for name in both:
        model = ours[name]
        if model.usable == theirs.usable[name]:
            usable_agree += 1
        else:
            disagreements.append(
                f"{name}: libvirt usable={theirs.usable[name]}, we read "
                f"unavailable-features {list(model.unavailable_features)}"
            )
        if name in theirs.blockers:
            mine = frozenset(model.unavailable_features)
            if mine == theirs.blockers[name]:
                blockers_agree += 1
            else:
                delta = [
                    *(f"+{f}" for f in sorted(theirs.blockers[name] - mine)),
                    *(f"-{f}" for f in sorted(mine - theirs.blockers[name])),
                ]
                disagreements.append(f"{name}: libvirt's blockers {' '.join(delta)} against ours")
    return UsabilityResult(
        file=case.file,
        capture=case.capture,
        accel=case.accel,
        machine=theirs.machine,
        compared=len(both),
        usable_agree=usable_agree,
        usable_libvirt=sum(theirs.usable[n] for n in both),
        blockers_compared=sum(1 for n in both if n in theirs.blockers),
        blockers_agree=blockers_agree,
        blockers_respelt=theirs.respelt,
        disagreements=tuple(disagreements),
        only_ours=tuple(sorted(set(ours) - set(theirs.usable))),
        only_libvirt=tuple(sorted(set(theirs.usable) - set(ours))),
    )
