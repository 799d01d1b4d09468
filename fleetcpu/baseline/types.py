"""The baseline's typed records: what goes into the pure core and what comes out.

Why records and not the store's rows or the probe's documents: the core is
pure logic that ``blockers`` and ``check`` (issue 6) will call on other
inputs (a probe document that is not stored, a pool minus one host), so its
input is one small record per host, ``Member``, whatever produced it. Every
record is frozen: a baseline is evidence and must not change after it is
computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..probe.document import CpuModel, FeatureWord

__all__ = [
    "SCHEMA",
    "Baseline",
    "FeatureBlock",
    "HostRef",
    "Member",
    "Missing",
    "ModelBlock",
    "ModelVerdict",
    "Notice",
    "Policy",
    "Scalars",
]

SCHEMA = "fleetcpu.baseline/1"


@dataclass(frozen=True)
class Scalars:
    """The non-feature CPUID values a guest sees; None where the data does not say."""

    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    level: int | None = None
    xlevel: int | None = None
    phys_bits: int | None = None


@dataclass(frozen=True)
class Member:
    """One host of the pool, reduced to what the baseline needs for one machine type.

    ``offered`` is what a guest on this host can be given (canonical names,
    OS-controlled bits removed); ``vocabulary`` every feature name this
    host's QEMU knows, enabled or not: a ``-feat`` for a name outside it would
    make that QEMU refuse to start. ``models`` are the host's own
    ``query-cpu-definitions`` for the machine type, with ``CpuModel.features``.
    """

    host: str
    accel: str
    qemu_version: str | None
    collected_at: datetime
    #: CPUID vendor string the host's vCPU reports (``GenuineIntel``...).
    vendor: str | None
    microcode: str | None
    #: "true" | "false" | "unknown", as the probe read it from the KVM module.
    kvm_nested: str
    models: tuple[CpuModel, ...]
    offered: frozenset[str]
    vocabulary: frozenset[str]
    scalars: Scalars
    feature_words: tuple[FeatureWord, ...] = ()


@dataclass(frozen=True)
class Policy:
    """What the pool's guests may use beyond "every member offers it". Each field is a CLI flag.

    Policy only ever removes features from the intersection; it never adds.
    """

    #: ``--allow-non-migratable``: keep ``invtsc`` when every member offers it.
    non_migratable: bool = False
    #: ``--nested``: keep vmx/vmx-*/svm/SVM-leaf features, if every member nests.
    nested: bool = False
    #: ``--no-kvm-pv`` sets False: drop every KVM paravirtual feature.
    kvm_pv: bool = True
    #: ``--no-tsx`` sets False: drop ``hle``/``rtm`` even when every member offers them.
    tsx: bool = True


@dataclass(frozen=True)
class HostRef:
    """One member as the JSON ``hosts`` list names it: where its data came from."""

    host: str
    accel: str
    qemu_version: str | None
    collected_at: datetime


@dataclass(frozen=True)
class Missing:
    """A pool member whose data could not be used, and why (``code`` is stable)."""

    host: str
    #: stale | probed-under-tcg | probed-under-kvm | no-successful-probe
    code: str
    message: str


@dataclass(frozen=True)
class Notice:
    """One entry of the JSON ``warnings`` list: something an operator should know or act on."""

    code: str
    message: str
    feature: str | None = None
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureBlock:
    """Why a feature some member offers is not in the result, and which hosts cause it.

    ``reason`` codes: ``not-offered`` (``hosts`` lack it), ``non-migratable``,
    ``nested-policy`` (no ``--nested``), ``nested-off`` (``hosts`` do not
    report nesting enabled), ``kvm-pv-policy``, ``tsx-policy``. For the
    policy reasons ``hosts`` is empty unless named hosts are the cause.
    """

    feature: str
    reason: str
    hosts: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class ModelBlock:
    """One reason a model is not a candidate, with the hosts where it applies."""

    #: absent | alias | superseded | unusable | deprecated | not-migration-safe |
    #: features-unknown | unknown-feature-name
    reason: str
    detail: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ModelVerdict:
    """Every model some member's QEMU lists (host/max/base aside), judged for the pool."""

    model: str
    candidate: bool
    #: For a candidate: the explicit changes it needs (``cost`` = their sum).
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    #: Features the model enables on every member.
    own_features: int = 0
    blocks: tuple[ModelBlock, ...] = ()
    #: Hosts where the name is an alias or an unversioned name that QEMU resolves per
    #: machine type: usable only when no name is stable on every member.
    resolves_on: tuple[str, ...] = ()

    @property
    def cost(self) -> int:
        return len(self.enable) + len(self.disable)


@dataclass(frozen=True)
class Baseline:
    """The answer for one pool and machine type; ``to_json`` in ``fleetcpu.export`` is its contract."""

    pool: str
    machine_type: str
    accel: str
    vendor: str | None
    model: str
    enable: tuple[str, ...]
    disable: tuple[str, ...]
    features: tuple[str, ...]
    scalars: Scalars
    cpu: str
    custom: str
    hosts: tuple[HostRef, ...]
    missing: tuple[Missing, ...] = ()
    warnings: tuple[Notice, ...] = ()
    #: Explanations for ``blockers``/``check``: every feature some member
    #: offers that the result lacks, and every model judged.
    blocked: tuple[FeatureBlock, ...] = field(default=(), repr=False)
    models: tuple[ModelVerdict, ...] = field(default=(), repr=False)
    #: Every feature name some member's QEMU knows: what a consumer's named model could
    #: hold, so exports that start from one disable every such name the result lacks.
    vocabulary: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    #: The highest x86-64 psABI level ``features`` reach (``probe.abi_level``); None: not even v1.
    abi_level: str | None = None
    schema: str = SCHEMA
