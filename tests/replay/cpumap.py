"""libvirt's CPU tables (``cpu_map/``): feature name -> CPUID/MSR bits, and CPU models.

The fake needs bits for names (to judge ``-cpu ...,+feat``, to word its
warnings like QEMU, to fill ``filtered-features``) and names for bits. It
takes them from libvirt's ``x86_features.xml``, deliberately *not* from
``fleetcpu.probe.features``: a replay built on the product's own table could
never catch a mistake in it. ``<alias source='qemu'>`` gives QEMU's spelling.

Stdlib-only: imported by the fake at every launch.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REGISTERS = ("eax", "ebx", "ecx", "edx")


def fold(name: str) -> str:
    """QEMU accepts ``sse4.1``, ``sse4_1`` and ``sse4-1`` for one property: compare folded."""
    return name.replace("_", "-").replace(".", "-").lower()


@dataclass(frozen=True)
class FeatureBits:
    """Where one feature lives: a CPUID register (leaf/subleaf) or an MSR half."""

    name: str  # QEMU's spelling
    kind: str  # "cpuid" | "msr"
    leaf: int  # CPUID leaf, or MSR index
    subleaf: int
    register: str  # eax..edx (for an MSR: eax = low half, edx = high half)
    mask: int

    @property
    def bit(self) -> int:
        return self.mask.bit_length() - 1

    def describe(self) -> str:
        """QEMU's wording in its ``doesn't support requested feature`` warnings."""
        if self.kind == "cpuid":
            where = f"CPUID.{self.leaf:02X}H:{self.register.upper()}"
        else:
            where = f"MSR({self.leaf:02X}H)"
        bit = self.bit + (32 if self.kind == "msr" and self.register == "edx" else 0)
        return f"{where}.{self.name} [bit {bit}]"


class FeatureTable:
    """``x86_features.xml``, indexed by folded name (libvirt's and QEMU's) and by bit."""

    def __init__(self, path: Path) -> None:
        self.by_name: dict[str, FeatureBits] = {}
        self.by_bit: dict[tuple[str, int, int, str, int], FeatureBits] = {}
        for el in ET.parse(path).getroot().iter("feature"):
            libvirt_name = el.get("name", "")
            aliases = [a.get("name", "") for a in el.iter("alias")]
            qemu = next(
                (a.get("name", "") for a in el.iter("alias") if a.get("source") == "qemu"),
                libvirt_name,
            )
            bits = self._bits(el, qemu)
            if bits is None:
                continue
            for n in (libvirt_name, qemu, *aliases):
                self.by_name.setdefault(fold(n), bits)
            self.by_bit.setdefault(
                (bits.kind, bits.leaf, bits.subleaf, bits.register, bits.bit), bits
            )

    @staticmethod
    def _bits(el: ET.Element, name: str) -> FeatureBits | None:
        cpuid = el.find("cpuid")
        if cpuid is not None:
            leaf = int(cpuid.get("eax_in", "0"), 16)
            sub = int(cpuid.get("ecx_in", "0"), 16)
            for reg in REGISTERS:
                mask = int(cpuid.get(reg, "0"), 16)
                if mask:
                    return FeatureBits(name, "cpuid", leaf, sub, reg, mask)
        msr = el.find("msr")
        if msr is not None:
            index = int(msr.get("index", "0"), 16)
            for reg in ("eax", "edx"):
                mask = int(msr.get(reg, "0"), 16)
                if mask:
                    return FeatureBits(name, "msr", index, 0, reg, mask)
        return None

    def get(self, name: str) -> FeatureBits | None:
        return self.by_name.get(fold(name))

    def names_in(self, leaf: int, subleaf: int, register: str, bits: int) -> list[str]:
        """QEMU names of the set bits of one CPUID register; unnamed bits as ``bit N``."""
        out = []
        for b in range(32):
            if bits >> b & 1:
                f = self.by_bit.get(("cpuid", leaf, subleaf, register, b))
                out.append(f.name if f else f"CPUID.{leaf:02X}H:{register.upper()}[bit {b}]")
        return out


@dataclass(frozen=True)
class Model:
    """A libvirt CPU model flattened through its ``<model name=parent/>`` chain."""

    name: str
    features: frozenset[str]  # folded names; features marked removed='yes' left out


def load_models(cpu_map: Path) -> dict[str, Model]:
    """Every ``x86_<model>.xml``: used only where the capture has no ``query-cpu-definitions``."""
    raw: dict[str, tuple[str | None, set[str]]] = {}
    for path in cpu_map.glob("x86_*.xml"):
        if path.name in ("x86_features.xml", "x86_vendors.xml"):
            continue
        for m in ET.parse(path).getroot().iter("model"):
            if "name" not in m.attrib or (m.find("feature") is None and m.find("model") is None):
                continue
            parent = m.find("model")
            feats = {
                fold(f.get("name", ""))
                for f in m.findall("feature")
                if f.get("removed") != "yes"
            }
            raw[m.attrib["name"]] = (parent.get("name") if parent is not None else None, feats)

    def flatten(name: str, depth: int = 0) -> set[str]:
        parent, feats = raw[name]
        if parent is None or parent not in raw or depth > 20:
            return set(feats)
        return flatten(parent, depth + 1) | feats

    return {name: Model(name, frozenset(flatten(name))) for name in raw}
