"""Typed records of one probe, and the probe document they serialise to.

Raw QMP JSON is turned into these records once (``qmp_decode``); everything after
that (the document on stdout, the store, the baseline) speaks records. The
JSON document is these dataclasses with snake_case keys, so its reader
(``document_decoder``) is generic: converters compiled from the type hints,
naming the exact key at fault, which is what an operator needs when an
air-gapped host's file is rejected. What a valid document is beyond its types
(``check_probe_document``) is said here, next to the records.

Additive evolution: unknown keys are ignored on read, so a newer probe's
document still loads in an older orchestrator. A breaking change bumps
``SCHEMA``'s major number.

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, FrozenSet, Mapping, Optional, Tuple, Union

from ..errors import ProbeDocumentError
from ..vocabulary import DevKvm, KvmNested, Register, Status
from .envelope import JsonDocument, check_status
from .names import UNNAMED_FEATURE, is_name, is_vendor, name_problem, vendor_problem

__all__ = [
    "FLOAT_INT",
    "INT64",
    "MAX_DEPTH",
    "MAX_DOCUMENT_CHARS",
    "REGISTERS",
    "SCALAR_INT",
    "SCHEMA",
    "SCHEMA_MAJOR",
    "STATUS",
    "U31",
    "U32",
    "Attempt",
    "CpuFacts",
    "CpuModel",
    "Expansion",
    "FeatureWord",
    "HostFacts",
    "MachineInfo",
    "MachineProbe",
    "ProbeDocument",
    "QemuInfo",
    "QueryFailure",
    "Scalar",
    "VcpuProps",
    "check_probe_document",
]

SCHEMA = "fleetcpu.probe/1"
SCHEMA_MAJOR = "fleetcpu.probe/"

#: A non-feature CPU property value (``level``, ``model-id``, ``hv-spinlocks``...).
Scalar = Union[bool, int, float, str, None]

#: The CPUID registers a feature word may name, as plain strings (``Register``'s values).
REGISTERS = Register.values()

# Every integer a document may hold has a range, checked at decode: a value
# beyond its Parquet column (int32, int64) passed the type check and then
# broke the whole run's batch write, and a CPUID word beyond 32 bits or a
# negative family is no CPU. ``metadata={"range": (lo, hi)}`` on a field
# narrows the default, which is the int64 column every other integer fits.
INT64 = (-(2**63), 2**63 - 1)
#: A ``Scalar`` property (stored as JSON text) is a QEMU int64 or uint64 property.
SCALAR_INT = (-(2**63), 2**64 - 1)
#: CPUID leaves, subleaves, register bits, level/xlevel: what CPUID returns.
U32 = {"range": (0, 2**32 - 1)}
#: Family, model, stepping, phys-bits: non-negative, int32 columns.
U31 = {"range": (0, 2**31 - 1)}
#: A process exit status (negative: killed by that signal), kept in int32.
STATUS = {"range": (-(2**31), 2**31 - 1)}
#: Floats (durations) are finite, and integers written for them convert exactly.
FLOAT_INT = 2**53


@dataclass(frozen=True)
class FeatureWord:
    """One CPUID output register as a bit set; ``subleaf`` is 0 where QEMU omits it."""

    leaf: int = field(metadata=U32)
    subleaf: int = field(metadata=U32)
    register: str
    bits: int = field(metadata=U32)


@dataclass(frozen=True)
class QueryFailure:
    """A QMP query that failed while the rest of the probe went on."""

    query: str
    error_class: str
    message: str


@dataclass(frozen=True)
class CpuModel:
    """One entry of ``query-cpu-definitions`` for one machine type."""

    name: str
    unavailable_features: Tuple[str, ...]
    alias_of: Optional[str] = None
    deprecated: bool = False
    migration_safe: Optional[bool] = None
    static: bool = False
    typename: Optional[str] = None
    #: What the model enables on this machine type (its static expansion),
    #: recorded for usable, non-alias models: the baseline needs it to pick the
    #: model needing the fewest explicit changes, and it moves with the
    #: machine type, so only QEMU can say it.
    features: Optional[Tuple[str, ...]] = None

    @property
    def usable(self) -> bool:
        return not self.unavailable_features


@dataclass(frozen=True)
class Expansion:
    """A CPU model expansion split into features (canonical names) and other properties."""

    model: str
    features: Mapping[str, bool]
    props: Mapping[str, Scalar] = field(default_factory=dict)

    def enabled(self) -> Tuple[str, ...]:
        return tuple(sorted(name for name, on in self.features.items() if on))


@dataclass(frozen=True)
class VcpuProps:
    """What the realized, paused vCPU reports through ``qom-get``: what a guest would see."""

    vendor: Optional[str] = None
    family: Optional[int] = field(default=None, metadata=U31)
    model: Optional[int] = field(default=None, metadata=U31)
    stepping: Optional[int] = field(default=None, metadata=U31)
    model_id: Optional[str] = None
    level: Optional[int] = field(default=None, metadata=U32)
    xlevel: Optional[int] = field(default=None, metadata=U32)
    phys_bits: Optional[int] = field(default=None, metadata=U31)


@dataclass(frozen=True)
class MachineProbe:
    """Everything one QEMU launch for one machine type told us."""

    requested: str
    machine_type: str
    accel: str
    cpu: str
    models: Tuple[CpuModel, ...]
    static_expansion: Optional[Expansion]
    full_expansion: Optional[Expansion]
    vcpu: VcpuProps
    feature_words: Tuple[FeatureWord, ...]
    filtered_features: Tuple[FeatureWord, ...]
    errors: Tuple[QueryFailure, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """One QEMU process the probe started, kept as evidence whatever its fate."""

    machine_type: str
    accel: str
    cpu: str
    argv: Tuple[str, ...]
    #: An ``Outcome``: ok | died | unknown-machine-type | qmp-error | timeout | interrupted
    outcome: str
    exit_status: Optional[int] = field(metadata=STATUS)
    stderr_tail: str
    duration_s: float


@dataclass(frozen=True)
class MachineInfo:
    """One ``query-machines`` entry: a versioned type and the alias (``q35``) naming it now.

    (Every record has a docstring: without one, ``dataclass`` computes an
    ``inspect.signature`` for it at import, on the probe's start-up path.)
    """

    name: str
    alias: Optional[str] = None
    is_default: bool = False
    deprecated: bool = False


@dataclass(frozen=True)
class QemuInfo:
    """The QEMU that answered: binary, build, whether KVM worked, its machine types."""

    binary: str
    version: str
    package: str
    kvm_present: Optional[bool]
    kvm_enabled: Optional[bool]
    machines: Tuple[MachineInfo, ...]


@dataclass(frozen=True)
class CpuFacts:
    """The host CPU as the kernel reports it (``/proc/cpuinfo``): a fact, not a capability."""

    vendor: Optional[str] = None
    family: Optional[int] = field(default=None, metadata=U31)
    model: Optional[int] = field(default=None, metadata=U31)
    stepping: Optional[int] = field(default=None, metadata=U31)
    model_name: Optional[str] = None
    microcode: Optional[str] = None


@dataclass(frozen=True)
class HostFacts:
    """What the host's own files say about it: explains a CPU, never decides what a guest gets."""

    hostname: Optional[str] = None
    kernel_release: Optional[str] = None
    cpu: CpuFacts = field(default_factory=CpuFacts)
    #: kvm_intel, kvm_amd, kvm_pvm, ... or None when no KVM vendor module is loaded.
    kvm_module: Optional[str] = None
    #: A ``KvmNested``: "true" | "false" | "unknown"
    kvm_nested: str = KvmNested.UNKNOWN
    #: A ``DevKvm``: "ok" | "missing" | "no-permission"
    dev_kvm: str = DevKvm.MISSING
    #: Set (to a label) when the facts were made up for a test host, never on a real one.
    synthetic: Optional[str] = None


@dataclass(frozen=True)
class ProbeDocument(JsonDocument):
    """The probe's whole output; ``status`` failed documents carry stage, error and attempts.

    It opens with the envelope's fields (``envelope.JsonDocument``) and closes
    with the failure's, as every host document does.
    """

    host: HostFacts
    accel: Optional[str] = None
    accel_reason: Optional[str] = None
    qemu: Optional[QemuInfo] = None
    machine_types: Tuple[MachineProbe, ...] = ()
    attempts: Tuple[Attempt, ...] = ()
    stage: Optional[str] = None
    error: Optional[str] = None
    error_code: Optional[str] = None
    exit_code: int = field(default=0, metadata={"range": (0, 255)})
    schema: str = SCHEMA


# --------------------------------------------------------------------------
# What a valid document is beyond its types (``document_decoder`` reads the text).

#: Most characters a document may have: collect's stdout cap, so both paths take the same.
MAX_DOCUMENT_CHARS = 32 * 1024 * 1024
#: Deepest nesting a document may have (a probe document has 6 levels).
MAX_DEPTH = 32


def check_probe_document(
    doc: ProbeDocument, source: str, reused: FrozenSet[str] = frozenset()
) -> ProbeDocument:
    """The rules types cannot say, on a document just converted; errors name the key at fault.

    ``reused`` names the parts (``machine_types``, ``qemu``) a decoder took
    from its cache: they passed these checks when first read, and checking
    them is most of the cost (names repeat, but there are thousands), so
    they are skipped. Returns the document as read (an older probe's ``""``
    blocker named, see ``_name_unnamed_blockers``).
    """
    check_status(doc.status, doc.stage, source)
    if doc.status == Status.OK and not doc.machine_types:
        raise ProbeDocumentError(source, "machine_types", "an ok document needs at least one")
    fresh_machine_types = "machine_types" not in reused
    if fresh_machine_types:
        for i, mp in enumerate(doc.machine_types):
            for j, fw in enumerate(mp.feature_words + mp.filtered_features):
                if fw.register not in REGISTERS:
                    raise ProbeDocumentError(
                        source,
                        "machine_types[%d] feature word %d: register" % (i, j),
                        "must be one of %s" % ", ".join(REGISTERS),
                    )
        doc = _name_unnamed_blockers(doc)
    _check_names(doc, source, fresh_machine_types, "qemu" not in reused)
    return doc


def _name_unnamed_blockers(doc: ProbeDocument) -> ProbeDocument:
    """A blocker an older probe kept as QEMU's ``""`` becomes ``UNNAMED_FEATURE``.

    Only ``unavailable_features``: the model stays unusable, as QEMU said. An
    empty name anywhere else is still refused by ``_check_names``.
    """
    if not any("" in m.unavailable_features for mp in doc.machine_types for m in mp.models):
        return doc
    machine_types = []
    for mp in doc.machine_types:
        models = tuple(
            dataclasses.replace(
                m,
                unavailable_features=tuple(
                    sorted({UNNAMED_FEATURE if f == "" else f for f in m.unavailable_features})
                ),
            )
            if "" in m.unavailable_features
            else m
            for m in mp.models
        )
        machine_types.append(dataclasses.replace(mp, models=models))
    return dataclasses.replace(doc, machine_types=tuple(machine_types))


def _name(text: Optional[str], key: str, source: str) -> None:
    if text is not None and not is_name(text):
        raise ProbeDocumentError(source, key, str(name_problem(text)))


def _names(texts: Any, key: str, source: str) -> None:
    for i, text in enumerate(texts):
        if not is_name(text):
            raise ProbeDocumentError(source, "%s[%d]" % (key, i), str(name_problem(text)))


def _vendor(text: Any, key: str, source: str) -> None:
    if text is not None and not is_vendor(text):
        raise ProbeDocumentError(source, key, str(vendor_problem(text)))


def _check_names(doc: ProbeDocument, source: str, machine_types: bool, qemu: bool) -> None:
    """Every name a config could be given meets ``names.NAME_RULE``, every vendor ``is_vendor``.

    Names repeat across machine types and hosts, so ``is_name`` remembers
    those that passed: after the first host of a kind this is set lookups.
    ``machine_types`` and ``qemu`` say whether to check those parts.
    """
    _vendor(doc.host.cpu.vendor, "host.cpu.vendor", source)
    if qemu and doc.qemu is not None:
        for i, mi in enumerate(doc.qemu.machines):
            _name(mi.name, "qemu.machines[%d].name" % i, source)
            _name(mi.alias, "qemu.machines[%d].alias" % i, source)
    for i, mp in enumerate(doc.machine_types if machine_types else ()):
        where = "machine_types[%d]" % i
        _name(mp.requested, where + ".requested", source)
        _name(mp.machine_type, where + ".machine_type", source)
        _vendor(mp.vcpu.vendor, where + ".vcpu.vendor", source)
        for j, m in enumerate(mp.models):
            at = "%s.models[%d]" % (where, j)
            _name(m.name, at + ".name", source)
            _name(m.alias_of, at + ".alias_of", source)
            _names(m.unavailable_features, at + ".unavailable_features", source)
            _names(m.features or (), at + ".features", source)
        for kind, exp in (("static_expansion", mp.static_expansion), ("full_expansion", mp.full_expansion)):
            if exp is None:
                continue
            at = "%s.%s" % (where, kind)
            _name(exp.model, at + ".model", source)
            _names(exp.features, at + ".features", source)
            _names(exp.props, at + ".props", source)
            _vendor(exp.props.get("vendor"), at + ".props.vendor", source)
