"""libvirt's ``cpu_map``, read for judging: models flattened, guest CPUs expanded, names translated.

A libvirt baseline is a *model name* plus explicit ``require``/``disable``
features; what the guest really gets is only known after expanding the model
through ``cpu_map`` (its ``<model name=parent/>`` inheritance included) and
applying the policies. Names are libvirt's (``pclmuldq``, ``tsc_adjust``); the
comparison with fleetcpu needs QEMU's spelling (``x86_features.xml``'s
``<alias source='qemu'>``) folded by ``fleetcpu.probe.features.canonical``.

Why not ``tests/support/replay/cpumap.py``: that reader folds every name to serve the
stand-in, which only ever speaks QEMU. The oracle must keep libvirt's own
names (virsh reads them) and read two releases' tables: 11.3's in the test
data and Debian 12's 9.0 behind ``virsh``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fleetcpu.probe.features import canonical

#: Policies that put a feature in the guest, and those that keep it out.
_ON = frozenset({"require", "force"})
_OFF = frozenset({"disable", "forbid"})
_NOT_MODELS = frozenset({"x86_features.xml", "x86_vendors.xml"})


@dataclass(frozen=True)
class ModelDef:
    """One ``<model>`` as written: its parent, vendor, features and ``removed='yes'`` features."""

    name: str
    parent: str | None
    vendor: str | None
    features: frozenset[str]
    removed: frozenset[str]


@dataclass(frozen=True)
class GuestCpu:
    """A libvirt ``<cpu mode='custom'>`` expanded: the libvirt-named features the guest gets."""

    model: str
    vendor: str | None
    features: frozenset[str]
    required: tuple[str, ...]
    disabled: tuple[str, ...]


class AmbiguousModelError(ValueError):
    """A guest CPU leaves a ``removed='yes'`` feature of its model without a policy.

    libvirt marks features QEMU took out of a model ``removed='yes'``: old
    domain definitions still get them, new baselines do not. Every baseline
    in the test data resolves this by naming such features explicitly; one
    that did not would mean different things to different libvirt releases,
    so the oracle refuses to guess.
    """


class CpuMap:
    """One release's ``cpu_map`` directory (x86 only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.qemu_names: dict[str, str] = {}
        self.unmigratable: frozenset[str] = frozenset()
        self.vendors: dict[str, str] = {}
        self.models: dict[str, ModelDef] = {}
        self._read_features()
        self._read_vendors()
        self._read_models()
        self.libvirt_names = {q: n for n, q in sorted(self.qemu_names.items(), reverse=True)}

    # -- reading ---------------------------------------------------------------
    def _read_features(self) -> None:
        unmigratable = set()
        for el in ET.parse(self.directory / "x86_features.xml").getroot().iter("feature"):
            name = el.get("name", "")
            qemu = [a.get("name", "") for a in el.findall("alias") if a.get("source") == "qemu"]
            self.qemu_names[name] = canonical(qemu[0] if qemu else name)
            if el.get("migratable") == "no":
                unmigratable.add(name)
        self.unmigratable = frozenset(unmigratable)

    def _read_vendors(self) -> None:
        path = self.directory / "x86_vendors.xml"
        for el in ET.parse(path).getroot().iter("vendor"):
            self.vendors[el.get("name", "")] = el.get("string", "")

    def _read_models(self) -> None:
        for path in sorted(self.directory.glob("x86_*.xml")):
            if path.name in _NOT_MODELS:
                continue
            # Top-level models only: a model's own <model name=.../> names its parent.
            for m in ET.parse(path).getroot().findall("model"):
                name = m.get("name")
                if name is None:
                    continue
                parent = m.find("model")
                vendor = m.find("vendor")
                feats = m.findall("feature")
                self.models[name] = ModelDef(
                    name=name,
                    parent=parent.get("name") if parent is not None else None,
                    vendor=vendor.get("name") if vendor is not None else None,
                    features=frozenset(f.get("name", "") for f in feats if f.get("removed") != "yes"),
                    removed=frozenset(f.get("name", "") for f in feats if f.get("removed") == "yes"),
                )

    # -- models ------------------------------------------------------------------
    def flatten(self, name: str) -> ModelDef:
        """The model with its ancestors' features and vendor folded in."""
        chain: list[ModelDef] = []
        current: str | None = name
        while current is not None:
            if current not in self.models:
                raise KeyError(f"{self.directory}: no CPU model {current!r}")
            if len(chain) > 32:
                raise ValueError(f"{self.directory}: model inheritance loops at {name!r}")
            chain.append(self.models[current])
            current = self.models[current].parent
        features: set[str] = set()
        removed: set[str] = set()
        vendor = None
        for m in reversed(chain):
            features |= m.features
            removed |= m.removed
            vendor = m.vendor or vendor
        return ModelDef(name, None, vendor, frozenset(features - removed), frozenset(removed))

    # -- guest CPUs -----------------------------------------------------------------
    def expand(self, path: Path) -> GuestCpu:
        """A ``<cpu mode='custom'>`` file (a baseline result or a ``-json.xml``) expanded."""
        root = ET.parse(path).getroot()
        model_el = root.find("model")
        if model_el is None or not model_el.text:
            raise ValueError(f"{path.name}: no <model>")
        model = self.flatten(model_el.text.strip())
        vendor_el = root.find("vendor")
        features = set(model.features)
        required, disabled = [], []
        for f in root.findall("feature"):
            name, policy = f.get("name", ""), f.get("policy", "require")
            if policy in _ON:
                features.add(name)
                required.append(name)
            elif policy in _OFF:
                features.discard(name)
                disabled.append(name)
            else:
                raise ValueError(f"{path.name}: feature {name!r} has policy {policy!r}")
        unresolved = sorted(model.removed - set(required) - set(disabled))
        if unresolved:
            raise AmbiguousModelError(
                f"{path.name}: {model.name} marks {', '.join(unresolved)} removed='yes' and the "
                "CPU gives no policy for it: whether the guest has it depends on the libvirt release"
            )
        return GuestCpu(
            model=model.name,
            vendor=vendor_el.text.strip() if vendor_el is not None and vendor_el.text else None,
            features=frozenset(features),
            required=tuple(required),
            disabled=tuple(disabled),
        )

    # -- names ------------------------------------------------------------------------
    def spell(self, name: str) -> str:
        """One libvirt name in fleetcpu's spelling (a name this table lacks is folded as it is)."""
        return self.qemu_names.get(name, canonical(name))

    def to_qemu(self, names: frozenset[str] | set[str]) -> frozenset[str]:
        """libvirt names -> fleetcpu's canonical QEMU spellings."""
        return frozenset(self.spell(n) for n in names)

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every feature this libvirt can name, in fleetcpu's spelling."""
        return frozenset(self.qemu_names.values())

    def vendor_string(self, name: str | None) -> str | None:
        """``Intel`` -> ``GenuineIntel``: the CPUID vendor fleetcpu records."""
        return None if name is None else self.vendors.get(name, name)


@cache
def load(directory: Path) -> CpuMap:
    """One parse per directory per process: the tables are read-only."""
    return CpuMap(directory)
