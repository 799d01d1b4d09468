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
            self.by_bit.setdefault((bits.kind, bits.leaf, bits.subleaf, bits.register, bits.bit), bits)

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
            feats = {fold(f.get("name", "")) for f in m.findall("feature") if f.get("removed") != "yes"}
            raw[m.attrib["name"]] = (parent.get("name") if parent is not None else None, feats)

    def flatten(name: str, depth: int = 0) -> set[str]:
        parent, feats = raw[name]
        if parent is None or parent not in raw or depth > 20:
            return set(feats)
        return flatten(parent, depth + 1) | feats

    return {name: Model(name, frozenset(flatten(name))) for name in raw}


# ---------------------------------------------------------------------------
# Named models' features: what the stand-in answers for
# ``query-cpu-model-expansion type=static model=<Model>`` and what the
# baseline's property tests build members from. One helper, so both agree.
# ---------------------------------------------------------------------------


def resolve_model(models: dict[str, Model], name: str) -> str | None:
    """The cpu_map model standing for QEMU's ``name``, or None when cpu_map lacks it.

    libvirt's ``X-v1`` files only include ``X``, so the two are one model:
    a QEMU name cpu_map lacks is looked up as its ``-v1`` twin (``X`` ->
    ``X-v1``, ``Icelake-Client-v1`` -> ``Icelake-Client``). Other versions
    are never guessed.
    """
    if name in models:
        return name
    if name.endswith("-v1") and name[:-3] in models:
        return name[:-3]
    if name + "-v1" in models:
        return name + "-v1"
    return None


def model_features(
    models: dict[str, Model], table: FeatureTable, name: str, known: set[str] | frozenset[str]
) -> list[str] | None:
    """QEMU spellings of the cpu_map model's features that the captured QEMU knows (``known``
    holds folded names), sorted; None when cpu_map lacks the model.

    Restricted to ``known`` because a real QEMU's expansion of a model only
    ever names features that QEMU has: libvirt's newer tables name features
    (and ~70 ``vmx-*`` on Intel models) older captured QEMUs never had.
    """
    chosen = resolve_model(models, name)
    if chosen is None:
        return None
    feats = models[chosen].features
    out = set()
    for folded in feats:
        bits = table.get(folded)
        qemu = bits.name if bits is not None else folded
        needs = _needs(bits)
        if fold(qemu) in known and (needs is None or needs in feats):
            out.add(qemu)
    return sorted(out)


def _needs(bits: FeatureBits | None) -> str | None:
    """The feature (folded) QEMU requires for this one to survive expansion, if any.

    QEMU's ``feature_dependencies`` clear whole feature words when their parent
    feature is off: libvirt lists ~70 ``vmx-*`` on Intel models that lack
    ``vmx`` itself, and QEMU's expansion of such a model holds none of them.
    Only these parent/child rules are applied: VMX capability MSRs need
    ``vmx``, the SVM leaf needs ``svm``, ARCH_CAPABILITIES bits need
    ``arch-capabilities``, CORE_CAPABILITY bits ``core-capability``,
    PERF_CAPABILITIES bits ``pdcm``, XSAVE sub-leaf 1 features ``xsave``.
    """
    if bits is None:
        return None
    if bits.kind == "msr":
        if 0x480 <= bits.leaf <= 0x491:
            return "vmx"
        return {0x10A: "arch-capabilities", 0xCF: "core-capability", 0x345: "pdcm"}.get(bits.leaf)
    if bits.leaf == 0x8000000A:
        return "svm"
    if (bits.leaf, bits.subleaf) == (0xD, 1):
        return "xsave"
    return None
