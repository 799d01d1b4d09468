"""Read libvirt's CPU tables (``cpu_map/``): feature spellings and named models.

Why fleetcpu reads them at all: libvirt, Nova and KubeVirt take a CPU as a
*libvirt* model name plus *libvirt* feature names, and both differ from
QEMU's. The spellings (``pclmuldq`` for QEMU's ``pclmulqdq``, ``lahf_lm`` for
``lahf-lm``) and the models a given libvirt knows live only in its
``cpu_map`` directory, which changes with the libvirt version. So an export
must name the cpu_map it was made for, and a model cpu_map lacks cannot be
used at all (libvirt refuses an unknown model).

Two layouts exist and both are read:

* libvirt <= 10.x: ``index.xml`` includes every ``x86_*.xml`` directly under
  ``<arch name='x86'>``; models are unversioned (``Cascadelake-Server``).
* newer libvirt: includes are nested in ``<group>`` elements, and versioned
  models (``Cascadelake-Server-v5``) exist; ``X-v1`` is usually just
  ``<model name='X'/>``, i.e. inherits everything from ``X``.

A model's ``<feature removed='yes'>`` marks a feature QEMU dropped from the
model; such features are kept apart (``LibvirtModel.removed``) so callers can
treat them conservatively: never counted as given by the model, always
disabled explicitly when unwanted.

Parsing is pure (``parse_features``, ``parse_models`` take XML text);
``load_cpu_map`` is the one function that reads files.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError
from ..probe.features import canonical, cpuid_bit
from ..vocabulary import Register

__all__ = [
    "SYSTEM_CPU_MAP",
    "CpuMap",
    "CpuMapError",
    "LibvirtFeature",
    "LibvirtModel",
    "build",
    "load_cpu_map",
    "parse_features",
    "parse_models",
    "parse_vendors",
]

#: The system's cpu_map on Debian/Ubuntu/Fedora/RHEL: what ``--libvirt-cpu-map`` defaults to.
SYSTEM_CPU_MAP = Path("/usr/share/libvirt/cpu_map")
_REGISTERS = Register.values()


class CpuMapError(BadInputError):
    """The cpu_map directory is missing or unreadable (exit 3, like any bad input file)."""

    code = "cpu-map"


@dataclass(frozen=True)
class LibvirtFeature:
    """One ``<feature>`` of ``x86_features.xml``: libvirt's name, its aliases, its CPUID bit."""

    name: str
    #: (alias, source) pairs: ``source='qemu'`` names QEMU's spelling, ``'linux'`` /proc's.
    aliases: tuple[tuple[str, str], ...] = ()
    #: (leaf, subleaf, register, bit) for CPUID features, None for MSR features.
    cpuid: tuple[int, int, str, int] | None = None


@dataclass(frozen=True)
class LibvirtModel:
    """A cpu_map model flattened through its ``<model name='parent'/>`` chain."""

    name: str
    #: CPUID vendor string (``GenuineIntel``) from ``x86_vendors.xml``; None for generic models.
    vendor: str | None
    #: libvirt feature names the model enables (``removed='yes'`` ones excluded).
    features: frozenset[str]
    #: Features marked ``removed='yes'`` somewhere in the chain (and not re-added).
    removed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CpuMap:
    """One libvirt cpu_map directory: features by libvirt name, x86 models by name."""

    path: str
    features: Mapping[str, LibvirtFeature]
    models: Mapping[str, LibvirtModel]
    #: Folded QEMU spelling -> libvirt name (built once from names and aliases).
    _by_qemu: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    _by_bit: Mapping[tuple[int, int, str, int], str] = field(default_factory=dict, repr=False, compare=False)

    def libvirt_name(self, qemu_name: str) -> str | None:
        """libvirt's spelling of a QEMU feature, None when this cpu_map cannot name it.

        By name first (libvirt's own name or any alias, folded the way QEMU
        folds spellings), then by CPUID bit: a feature libvirt lists under a
        name neither side aliases is still the same bit.
        """
        found = self._by_qemu.get(_fold(qemu_name))
        if found is not None:
            return found
        bit = cpuid_bit(qemu_name)
        return self._by_bit.get(bit) if bit is not None else None

    def model(self, name: str) -> LibvirtModel | None:
        return self.models.get(name)


def _fold(name: str) -> str:
    """One key for every spelling QEMU accepts: canonical name, ``_``/``.`` folded to ``-``."""
    return canonical(name).replace("_", "-").replace(".", "-").lower()


def _hex(value: str | None) -> int:
    return int(value, 16) if value else 0


def parse_features(xml_text: str | bytes) -> dict[str, LibvirtFeature]:
    """``x86_features.xml`` -> libvirt name -> feature (arch-less: the file is x86 only)."""
    root = ET.fromstring(xml_text)  # noqa: S314 - a local, trusted libvirt data file
    out: dict[str, LibvirtFeature] = {}
    for el in root.iter("feature"):
        name = el.get("name")
        if not name:
            continue
        aliases = tuple((a.get("name", ""), a.get("source", "")) for a in el.iter("alias") if a.get("name"))
        bit = None
        cpuid = el.find("cpuid")
        if cpuid is not None:
            leaf, sub = _hex(cpuid.get("eax_in")), _hex(cpuid.get("ecx_in"))
            for reg in _REGISTERS:
                mask = _hex(cpuid.get(reg))
                if mask:
                    bit = (leaf, sub, reg, mask.bit_length() - 1)
                    break
        out[name] = LibvirtFeature(name, aliases, bit)
    return out


def parse_vendors(xml_text: str | bytes) -> dict[str, str]:
    """``x86_vendors.xml`` -> libvirt vendor name (``Intel``) -> CPUID string."""
    root = ET.fromstring(xml_text)  # noqa: S314
    return {v.get("name", ""): v.get("string", "") for v in root.iter("vendor") if v.get("name")}


@dataclass
class _RawModel:
    parent: str | None
    vendor: str | None
    features: set[str]
    removed: set[str]


def _raw_models(xml_text: str | bytes) -> dict[str, _RawModel]:
    root = ET.fromstring(xml_text)  # noqa: S314
    out: dict[str, _RawModel] = {}
    for m in root.iter("model"):
        name = m.get("name")
        is_reference = all(m.find(tag) is None for tag in ("decode", "feature", "model"))
        if not name or is_reference:
            continue  # a bare <model name='X'/> reference, not a definition
        parent = m.find("model")
        vendor = m.find("vendor")
        out[name] = _RawModel(
            parent.get("name") if parent is not None else None,
            vendor.get("name") if vendor is not None else None,
            {f.get("name", "") for f in m.findall("feature") if f.get("removed") != "yes"},
            {f.get("name", "") for f in m.findall("feature") if f.get("removed") == "yes"},
        )
    return out


def parse_models(texts: Iterable[str | bytes], vendors: Mapping[str, str]) -> dict[str, LibvirtModel]:
    """Model files -> flattened models. A parent chain that loops or breaks stops there."""
    raw: dict[str, _RawModel] = {}
    for text in texts:
        raw.update(_raw_models(text))

    def flatten(name: str, seen: tuple[str, ...]) -> tuple[set[str], set[str], str | None]:
        m = raw[name]
        if m.parent is None or m.parent not in raw or m.parent in seen:
            return set(m.features), set(m.removed), m.vendor
        feats, removed, vendor = flatten(m.parent, (*seen, name))
        removed = (removed - m.features) | m.removed
        return (feats - m.removed) | m.features, removed, m.vendor or vendor

    out = {}
    for name in raw:
        feats, removed, vendor = flatten(name, (name,))
        out[name] = LibvirtModel(
            name, vendors.get(vendor) if vendor else None, frozenset(feats), frozenset(removed - feats)
        )
    return out


def build(path: str, features: Mapping[str, LibvirtFeature], models: Mapping[str, LibvirtModel]) -> CpuMap:
    """Assemble a ``CpuMap`` and its lookup indexes (pure)."""
    by_qemu: dict[str, str] = {}
    by_bit: dict[tuple[int, int, str, int], str] = {}
    # Aliases first, own names last: libvirt's own name wins a (theoretical) clash.
    for feat in features.values():
        for alias, _source in feat.aliases:
            by_qemu.setdefault(_fold(alias), feat.name)
        if feat.cpuid is not None:
            by_bit.setdefault(feat.cpuid, feat.name)
    for feat in features.values():
        by_qemu[_fold(feat.name)] = feat.name
    return CpuMap(path, dict(features), dict(models), by_qemu, by_bit)


def _x86_includes(index: ET.Element) -> list[str]:
    """Every file the x86 arch includes, in order, through any nesting of ``<group>``."""
    return [
        inc.get("filename", "")
        for arch in index.iter("arch")
        if arch.get("name") == "x86"
        for inc in arch.iter("include")
        if inc.get("filename")
    ]


def load_cpu_map(directory: str | Path) -> CpuMap:
    """Read a cpu_map directory (``index.xml`` and what its x86 arch includes)."""
    base = Path(directory)
    try:
        index = ET.fromstring((base / "index.xml").read_bytes())  # noqa: S314
        files = _x86_includes(index)
        texts = {name: (base / name).read_bytes() for name in files}
    except (OSError, ET.ParseError) as exc:
        raise CpuMapError(f"{base}: not a readable libvirt cpu_map directory ({exc})") from exc
    try:
        features = parse_features(texts.get("x86_features.xml", b"<cpus/>"))
        vendors = parse_vendors(texts.get("x86_vendors.xml", b"<cpus/>"))
        models = parse_models(
            [t for n, t in texts.items() if n not in ("x86_features.xml", "x86_vendors.xml")], vendors
        )
    except ET.ParseError as exc:
        raise CpuMapError(f"{base}: malformed cpu_map XML ({exc})") from exc
    if not features or not models:
        raise CpuMapError(f"{base}: cpu_map lists no x86 features or models")
    return build(str(base), features, models)
