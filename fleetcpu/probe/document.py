"""Typed records of one probe, and the probe document they serialise to.

Raw QMP JSON is turned into these records once (``qmp_decode``); everything after
that (the document on stdout, the store, the baseline) speaks records. The
JSON document is these dataclasses with snake_case keys, so the parser below
is generic: it walks the type hints and names the exact key at fault, which is
what an operator needs when an air-gapped host's file is rejected.

Additive evolution: unknown keys are ignored on read, so a newer probe's
document still loads in an older orchestrator. A breaking change bumps
``SCHEMA``'s major number.

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import itertools
import json
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union

from ..errors import ProbeDocumentError
from ..vocabulary import DevKvm, KvmNested, Register, Status
from .envelope import JsonDocument, check_status, read_envelope
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
    "T",
    "VcpuProps",
    "document_from_dict",
    "document_from_json",
    "load_json",
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
# Reading a document back: strict about types, lenient about unknown keys.

T = TypeVar("T")

_HINTS: Dict[type, Dict[str, Any]] = {}


def _hints(cls: type) -> Dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _type_name(tp: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, path: str, source: str) -> Any:  # noqa: PLR0911, PLR0912
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if set(options) == {bool, int, float, str}:
            try:
                return _scalar(value)
            except _Bad:
                raise ProbeDocumentError(
                    source,
                    path,
                    "must be a boolean, a string, a finite number or an integer from %d to %d" % SCALAR_INT,
                ) from None
        if len(options) == 1:  # Optional[X]: keep X's precise error path
            return _convert(options[0], value, path, source)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path, source)
            except ProbeDocumentError as exc:
                errors.append(exc.problem)
        raise ProbeDocumentError(source, path, "; ".join(errors) or "must not be null")
    if dataclasses.is_dataclass(tp):
        return _from_dict(typing.cast(Type[Any], tp), value, path, source)
    if origin is tuple:
        if not isinstance(value, list):
            raise ProbeDocumentError(source, path, "must be a list")
        return tuple(_convert(args[0], v, "%s[%d]" % (path, i), source) for i, v in enumerate(value))
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            raise ProbeDocumentError(source, path, "must be an object")
        return {k: _convert(args[1], v, "%s.%s" % (path, k), source) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProbeDocumentError(source, path, "must be a number")
        if _finite(value) is None:
            raise ProbeDocumentError(source, path, "must be a finite number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProbeDocumentError(source, path, "must be an integer")
        _check_range(value, INT64, path, source)
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise ProbeDocumentError(source, path, "must be a %s" % _type_name(tp))
        return value
    if tp is type(None):
        if value is not None:
            raise ProbeDocumentError(source, path, "must be null")
        return None
    raise TypeError("records: unsupported field type %r" % (tp,))


def _finite(value: Any) -> Optional[float]:
    """``value`` as a float if it is one exactly and finitely, else None (no OverflowError)."""
    if type(value) is int:
        return float(value) if -FLOAT_INT <= value <= FLOAT_INT else None
    return value if math.isfinite(value) else None


def _check_range(value: Any, bounds: Tuple[int, int], path: str, source: str) -> None:
    if value is not None and not bounds[0] <= value <= bounds[1]:
        raise ProbeDocumentError(source, path, "must be an integer from %d to %d" % bounds)


class _Bad(Exception):
    """Raised by the fast path; the slow path then finds and names the key at fault."""


_Fast = Callable[[Any], Any]
_FAST: Dict[Any, _Fast] = {}


def _bad() -> Any:
    raise _Bad()


def _exact(kind: type) -> _Fast:
    def conv(v: Any) -> Any:
        return v if type(v) is kind else _bad()  # bool is not an int here

    return conv


def _int(lo: int, hi: int) -> _Fast:
    def conv(v: Any) -> Any:
        return v if type(v) is int and lo <= v <= hi else _bad()

    return conv


def _number(v: Any) -> Any:
    kind = type(v)
    if kind is float and v - v == 0.0:  # finite: inf - inf and nan - nan are nan
        return v
    if kind is int and -FLOAT_INT <= v <= FLOAT_INT:
        return float(v)
    return _bad()


def _optional(inner: _Fast) -> _Fast:
    def conv(v: Any) -> Any:
        return None if v is None else inner(v)

    return conv


def _scalar(v: Any) -> Any:
    """A ``Scalar``: bool, str, a finite float or an integer of QEMU's int64/uint64 range."""
    kind = type(v)
    if v is None or kind is str or kind is bool:
        return v
    if kind is int and SCALAR_INT[0] <= v <= SCALAR_INT[1]:
        return v
    if kind is float and v - v == 0.0:
        return v
    return _bad()


def _ranged(hint: Any, bounds: Tuple[int, int]) -> _Fast:
    """A narrower integer range than the type's own (``metadata={"range": ...}``)."""
    conv = _int(*bounds)
    return _optional(conv) if typing.get_origin(hint) is Union else conv


def _record(tp: Any) -> _Fast:
    hints = _hints(tp)
    spec = [
        (
            f.name,
            _ranged(hints[f.name], f.metadata["range"]) if "range" in f.metadata else _fast(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(tp)
    ]

    def conv(v: Any) -> Any:
        if type(v) is not dict:
            _bad()
        kwargs = {}
        for name, sub, required in spec:
            if name in v:
                kwargs[name] = sub(v[name])
            elif required:
                _bad()
        return tp(**kwargs)

    return conv


def _sequence(item_type: Any) -> _Fast:
    item = _fast(item_type)

    def conv(v: Any) -> Any:
        if type(v) is not list:
            _bad()
        if item_type is str and all(type(x) is str for x in v):
            return tuple(v)
        return tuple(item(x) for x in v)

    return conv


def _mapping(value_type: Any) -> _Fast:
    item = _fast(value_type)

    def conv(v: Any) -> Any:
        if type(v) is not dict:
            _bad()
        if value_type is bool and all(type(x) is bool for x in v.values()):
            return dict(v)
        return {k: item(x) for k, x in v.items()}

    return conv


def _fast(tp: Any) -> _Fast:
    """A converter for ``tp`` compiled once: no path strings, no typing introspection per value.

    Collect parses a 100 KB document per host; the generic walker spent 9 ms
    on it, mostly building error paths that are only needed on failure.
    """
    if tp not in _FAST:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        options = tuple(a for a in args if a is not type(None))
        conv: _Fast
        if tp in (str, bool):
            conv = _exact(tp)
        elif tp is int:
            conv = _int(*INT64)
        elif tp is float:
            conv = _number
        elif origin is Union and len(options) == 1:
            conv = _optional(_fast(options[0]))
        elif origin is Union and set(options) == {bool, int, float, str}:
            conv = _scalar
        elif dataclasses.is_dataclass(tp):
            conv = _record(tp)
        elif origin is tuple:
            conv = _sequence(args[0])
        elif origin in (dict, collections.abc.Mapping):
            conv = _mapping(args[1])
        else:
            raise TypeError("records: unsupported field type %r" % (tp,))
        _FAST[tp] = conv
    return _FAST[tp]


def _from_dict(cls: Type[T], value: Any, path: str, source: str) -> T:
    if not isinstance(value, dict):
        raise ProbeDocumentError(source, path or "<document>", "must be an object")
    kwargs: Dict[str, Any] = {}
    for f in dataclasses.fields(typing.cast(Any, cls)):
        sub = "%s.%s" % (path, f.name) if path else f.name
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProbeDocumentError(source, sub, "missing")
            continue
        kwargs[f.name] = _convert(_hints(cls)[f.name], value[f.name], sub, source)
        if "range" in f.metadata:
            _check_range(kwargs[f.name], f.metadata["range"], sub, source)
    return cls(**kwargs)


def document_from_dict(value: Any, source: str = "<probe>") -> ProbeDocument:
    """Validate a parsed JSON value as a probe document; errors name the key at fault."""
    read_envelope(value, SCHEMA, SCHEMA_MAJOR, "probe", source)
    try:
        doc = typing.cast(ProbeDocument, _fast(ProbeDocument)(value))
    except _Bad:
        doc = _from_dict(ProbeDocument, value, "", source)  # raises, naming the key
    check_status(doc.status, doc.stage, source)
    if doc.status == Status.OK and not doc.machine_types:
        raise ProbeDocumentError(source, "machine_types", "an ok document needs at least one")
    for i, mp in enumerate(doc.machine_types):
        for j, fw in enumerate(mp.feature_words + mp.filtered_features):
            if fw.register not in REGISTERS:
                raise ProbeDocumentError(
                    source,
                    "machine_types[%d] feature word %d: register" % (i, j),
                    "must be one of %s" % ", ".join(REGISTERS),
                )
    doc = _name_unnamed_blockers(doc)
    _check_names(doc, source)
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


def _check_names(doc: ProbeDocument, source: str) -> None:
    """Every name a config could be given meets ``names.NAME_RULE``, every vendor ``is_vendor``.

    Names repeat across machine types and hosts, so ``is_name`` remembers
    those that passed: after the first host of a kind this is set lookups.
    """
    _vendor(doc.host.cpu.vendor, "host.cpu.vendor", source)
    if doc.qemu is not None:
        for i, mi in enumerate(doc.qemu.machines):
            _name(mi.name, "qemu.machines[%d].name" % i, source)
            _name(mi.alias, "qemu.machines[%d].alias" % i, source)
    for i, mp in enumerate(doc.machine_types):
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


#: Most characters a document may have: collect's stdout cap, so both paths take the same.
MAX_DOCUMENT_CHARS = 32 * 1024 * 1024
#: Deepest nesting a document may have (a probe document has 6 levels).
MAX_DEPTH = 32

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
#: A JSON escape that may decode to half a surrogate pair (no UTF-8 for it).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _too_deep(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``, without recursion.

    Each pass deletes every innermost ``[]`` and ``{}``, so a balanced text of
    depth D is empty after D passes (C-speed string operations, ~1 ms on a
    100 KB document), and one that still shrinks at pass ``limit + 1`` is
    deeper than ``limit``; what stops shrinking first (unbalanced brackets:
    not JSON) gets the running count of what is left.
    """
    rest = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if re.search(r"[\[{]{%d}" % (limit + 1), rest):  # the usual attack: one long run of openers
        return True
    for _ in range(limit + 1):
        if not rest:
            return False
        shorter = rest.replace("[]", "").replace("{}", "")
        if len(shorter) == len(rest):  # unbalanced: count what is left (not JSON anyway)
            return max(itertools.accumulate(1 if c in "[{" else -1 for c in rest)) > limit
        rest = shorter
    return True  # still shrinking after limit + 1 passes: a balanced part deeper than limit


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False


def load_json(text: str, source: str) -> Any:
    """``json.loads`` for untrusted text: size and depth bounded before parsing, UTF-8 after.

    A host's output must never abort a run: 100,000 levels of ``[`` made the
    parser raise ``RecursionError``, and a lone surrogate (``"\\ud800"``) is a
    string no Parquet column can hold. Every such text is a
    ``ProbeDocumentError`` (a failure row, or exit 3).
    """
    if len(text) > MAX_DOCUMENT_CHARS:
        raise ProbeDocumentError(
            source, "", "%d characters, more than %d: not a probe document" % (len(text), MAX_DOCUMENT_CHARS)
        )
    if _too_deep(text, MAX_DEPTH):
        raise ProbeDocumentError(source, "", "nested deeper than %d levels" % MAX_DEPTH)
    try:
        value = json.loads(text)
    except RecursionError as exc:  # not reachable after _too_deep; kept as the last guard
        raise ProbeDocumentError(source, "", "nested deeper than %d levels" % MAX_DEPTH) from exc
    except ValueError as exc:
        raise ProbeDocumentError(source, "", "not JSON (%s)" % exc) from exc
    if (not text.isascii() or _SURROGATE_ESCAPE.search(text)) and _has_surrogate(value):
        raise ProbeDocumentError(source, "", "a string is not valid Unicode (a lone surrogate)")
    return value


def document_from_json(text: str, source: str = "<probe>") -> ProbeDocument:
    """The reference reader of a probe document: bounded parse, then ``document_from_dict``."""
    return document_from_dict(load_json(text, source), source)
