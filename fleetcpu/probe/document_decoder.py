"""Reading a document back: text -> records, by one decoder with one code path.

Strict about types, lenient about unknown keys: a newer probe's document
still loads in an older orchestrator. Every error is one
``ProbeDocumentError`` naming the key at fault (``machine_types[0].vcpu.family:
must be an integer from 0 to 2147483647``), which is what an operator needs
when an air-gapped host's file is rejected.

The one path, for every probe and verify document, whoever reads it
(collect, verify, import, explain):

1. **parse**: the text's top level is walked with the ``json`` module's own C
   scanner, one value at a time (that is where the cache below looks);
2. **convert**: converters compiled once per record type check every value
   and build the frozen records. They build no key path while a value is
   good: a bad one raises ``_Bad``, and each enclosing record and list adds
   its key while the exception passes, so the message names the exact key
   at no cost to a good document (the type-hint walker this replaced spent
   9 ms on a 100 KB document building paths, compiled converters 1.2 ms);
3. **check**: what a valid document is beyond its types (status, stage,
   registers, names), said by the document's own module.

A text the walk cannot vouch for is parsed by ``load_json`` instead, the
bounded parser, and then converted and checked by the same code: one that is
not the usual shape (not an object, a duplicate key, a value the scanner
rejects, an escape that may be half a surrogate pair), and one whose walked
value does not decode cleanly. ``load_json`` refuses a text too large, too
deep or holding a lone surrogate before its records are looked at, which
the walk does not measure; letting it parse again whatever the walk found
amiss (~2 ms, for bad documents only) keeps every error exactly what it
is without a walk: the error never depends on the path or the cache. The
records bound how deep a key they know can nest, so on a walked text only
the values of unknown keys are measured.

The cache, private to each ``DocumentDecoder``: ~90 % of a probe document
(70 of 78 KB) is ``machine_types``, which depends only on the CPU,
microcode, kernel and QEMU, and ``qemu`` (~5 KB) is the same on every host
of one QEMU build. A pool is a few CPU types, so at fleet rate nearly every
host repeats parts some earlier host sent, byte for byte. At those keys the
walk compares the text with the few most recent texts that decoded
cleanly; a JSON value is self-delimiting, so a text that starts with one of
them holds exactly that value there, and its already converted and checked
records are reused (records are frozen; hosts may share them): ~0.1 ms per
document instead of ~2 ms. Collect makes one decoder per run, so nothing is
remembered across runs or shared between callers; the one-shot functions
(``document_from_json``) use a decoder of their own that remembers nothing.

Python 3.9, stdlib only: this module ships to hosts (the probe never
imports it; ``enforce_document`` does so lazily).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import itertools
import json
import json.scanner
import math
import re
import typing
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple, Union

from ..errors import ProbeDocumentError
from .document import (
    FLOAT_INT,
    INT64,
    MAX_DEPTH,
    MAX_DOCUMENT_CHARS,
    SCALAR_INT,
    SCHEMA,
    SCHEMA_MAJOR,
    ProbeDocument,
    check_probe_document,
)
from .envelope import read_envelope

__all__ = [
    "PROBE",
    "DocumentDecoder",
    "DocumentKind",
    "document_from_dict",
    "document_from_json",
    "load_json",
]

# --------------------------------------------------------------------------
# Convert: one compiled converter per type and depth in the text.
#
# ``depth`` is where the value stands in a walked text (the document's own
# object is 1), so a record can bound its unknown keys' nesting; 0: the text
# was bounded by ``load_json`` already (or there is none), nothing to measure.


def _below(depth: int) -> int:
    return depth + 1 if depth else 0


class _Bad(Exception):
    """A value that does not fit; the key path is added while it unwinds (innermost first)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        #: (name or index), innermost first.
        self.path: List[Union[str, int]] = []

    def key(self) -> str:
        """The path as the document's errors spell it: ``machine_types[0].models[3].name``."""
        out = ""
        for part in reversed(self.path):
            if isinstance(part, int):
                out += "[%d]" % part
            else:
                out = "%s.%s" % (out, part) if out else part
        return out


_Conv = Callable[[Any], Any]
#: (type, depth) or (type, depth, range) -> its converter: types, not data (no document is kept).
_COMPILED: Dict[Tuple[Any, ...], _Conv] = {}
_NUMBER = "must be a number"
_SCALAR = "must be a boolean, a string, a finite number or an integer from %d to %d" % SCALAR_INT


def _range_problem(bounds: Tuple[int, int]) -> str:
    return "must be an integer from %d to %d" % bounds


def _exact(kind: type, problem: str) -> _Conv:
    def conv(v: Any) -> Any:
        if type(v) is kind or isinstance(v, kind):
            return v
        raise _Bad(problem)

    return conv


def _int(bounds: Tuple[int, int]) -> _Conv:
    """An integer (never a bool) in INT64, then in ``bounds`` (a field's narrower range)."""
    lo, hi = bounds
    wide = _range_problem(INT64)
    narrow = _range_problem(bounds)

    def conv(v: Any) -> Any:
        if type(v) is int and lo <= v <= hi:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad("must be an integer")
        raise _Bad(wide if not INT64[0] <= v <= INT64[1] else narrow)

    return conv


def _finite(value: Any) -> Optional[float]:
    """``value`` as a float if it is one exactly and finitely, else None (no OverflowError)."""
    if type(value) is int:
        return float(value) if -FLOAT_INT <= value <= FLOAT_INT else None
    return value if math.isfinite(value) else None


def _number(v: Any) -> Any:
    """A finite float; an integer is taken where it converts exactly."""
    if type(v) is float and v - v == 0.0:  # finite: inf - inf and nan - nan are nan
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(_NUMBER)
    if _finite(v) is None:
        raise _Bad("must be a finite number")
    return float(v)


def _scalar(v: Any) -> Any:
    """A ``Scalar``: None, bool, str, a finite float or an integer of QEMU's int64/uint64 range."""
    kind = type(v)
    if v is None or kind is str or kind is bool:
        return v
    if kind is int and SCALAR_INT[0] <= v <= SCALAR_INT[1]:
        return v
    if kind is float and v - v == 0.0:
        return v
    raise _Bad(_SCALAR)


def _optional(inner: _Conv) -> _Conv:
    def conv(v: Any) -> Any:
        return None if v is None else inner(v)

    return conv


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether a parsed value has more than ``limit`` levels of lists and objects (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            if level > limit:
                return True
            stack.extend((x, level + 1) for x in (item.values() if isinstance(item, dict) else item))
    return False


def _missing() -> None:
    raise _Bad("missing")


def _record(tp: Any, depth: int) -> _Conv:
    """A record at ``depth`` in the text (the document's own object is 1)."""
    hints = typing.get_type_hints(tp)
    spec = [
        (
            f.name,
            _compile(hints[f.name], _below(depth), f.metadata.get("range")),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(tp)
    ]
    names = frozenset(f.name for f in dataclasses.fields(tp))
    # A known key's value is bounded by its type; an unknown key's is not, so on a walked
    # text it is measured: the text may nest MAX_DEPTH levels, this record is ``depth`` of them.
    room = MAX_DEPTH - depth if depth else 0

    def conv(v: Any) -> Any:
        if type(v) is not dict and not isinstance(v, dict):
            raise _Bad("must be an object")
        kwargs = {}
        name = ""
        try:
            for name, sub, required in spec:
                if name in v:
                    kwargs[name] = sub(v[name])
                elif required:
                    _missing()
        except _Bad as bad:
            bad.path.append(name)
            raise
        if (
            room
            and len(kwargs) != len(v)
            and any(_nests_deeper(x, room) for k, x in v.items() if k not in names)
        ):
            raise _Bad("nested deeper than %d levels" % MAX_DEPTH)
        return tp(**kwargs)

    return conv


def _sequence(item_type: Any, depth: int) -> _Conv:
    item = _compile(item_type, _below(depth))
    plain = item_type is str

    def conv(v: Any) -> Any:
        if type(v) is not list and not isinstance(v, list):
            raise _Bad("must be a list")
        if plain and all(type(x) is str for x in v):
            return tuple(v)
        i = 0
        try:
            out = []
            for i, x in enumerate(v):  # noqa: B007 - i names the item at fault
                out.append(item(x))
        except _Bad as bad:
            bad.path.append(i)
            raise
        return tuple(out)

    return conv


def _mapping(value_type: Any, depth: int) -> _Conv:
    item = _compile(value_type, _below(depth))
    plain = value_type is bool

    def conv(v: Any) -> Any:
        if type(v) is not dict and not isinstance(v, dict):
            raise _Bad("must be an object")
        if plain and all(type(x) is bool for x in v.values()):
            return dict(v)
        key = ""
        try:
            out = {}
            for key, x in v.items():
                out[key] = item(x)
        except _Bad as bad:
            bad.path.append(key)
            raise
        return out

    return conv


def _compile(tp: Any, depth: int, bounds: Optional[Tuple[int, int]] = None) -> _Conv:  # noqa: PLR0912
    """The converter for ``tp`` at ``depth``, compiled once: no path strings, no typing per value.

    ``bounds`` (a field's ``metadata={"range": ...}``) narrows an integer's range.
    """
    cache_key = (tp, depth) if bounds is None else (tp, depth, bounds)
    found = _COMPILED.get(cache_key)
    if found is not None:
        return found
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    options = tuple(a for a in args if a is not type(None))
    conv: _Conv
    if origin is Union and len(options) == 1:
        conv = _optional(_compile(options[0], depth, bounds))
    elif bounds is not None:
        if tp is not int:
            raise TypeError("document: a range on a field that is no integer: %r" % (tp,))
        conv = _int(bounds)
    elif tp is str:
        conv = _exact(str, "must be a string")
    elif tp is bool:
        conv = _exact(bool, "must be a boolean")
    elif tp is int:
        conv = _int(INT64)
    elif tp is float:
        conv = _number
    elif origin is Union and set(options) == {bool, int, float, str}:
        conv = _scalar
    elif dataclasses.is_dataclass(tp):
        conv = _record(tp, depth)
    elif origin is tuple:
        conv = _sequence(args[0], depth)
    elif origin in (dict, collections.abc.Mapping):
        conv = _mapping(args[1], depth)
    else:
        raise TypeError("document: unsupported field type %r" % (tp,))
    _COMPILED[cache_key] = conv
    return conv


# --------------------------------------------------------------------------
# Parse: bounded, and walked at the top level where a decoder remembers parts.

#: Most characters a document may have is ``MAX_DOCUMENT_CHARS`` (collect's stdout cap).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
#: A JSON escape that may decode to half a surrogate pair (no UTF-8 for it).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: The C scanner ``json.loads`` itself uses: one JSON value from an index, and where it ends.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_WS = re.compile(r"[ \t\n\r]*")


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


def _may_hold_surrogate(text: str) -> bool:
    """The cheap test before the exact one: a non-ASCII text, or an escape of half a pair."""
    return not text.isascii() or _SURROGATE_ESCAPE.search(text) is not None


def _too_large(text: str, source: str) -> Optional[ProbeDocumentError]:
    if len(text) > MAX_DOCUMENT_CHARS:
        return ProbeDocumentError(
            source, "", "%d characters, more than %d: not a probe document" % (len(text), MAX_DOCUMENT_CHARS)
        )
    return None


def _deep(source: str) -> ProbeDocumentError:
    return ProbeDocumentError(source, "", "nested deeper than %d levels" % MAX_DEPTH)


def _surrogate(source: str) -> ProbeDocumentError:
    return ProbeDocumentError(source, "", "a string is not valid Unicode (a lone surrogate)")


def load_json(text: str, source: str) -> Any:
    """``json.loads`` for untrusted text: size and depth bounded before parsing, UTF-8 after.

    A host's output must never abort a run: 100,000 levels of ``[`` made the
    parser raise ``RecursionError``, and a lone surrogate (``"\\ud800"``) is a
    string no Parquet column can hold. Every such text is a
    ``ProbeDocumentError`` (a failure row, or exit 3).
    """
    big = _too_large(text, source)
    if big is not None:
        raise big
    if _too_deep(text, MAX_DEPTH):
        raise _deep(source)
    try:
        value = json.loads(text)
    except RecursionError as exc:  # not reachable after _too_deep; kept as the last guard
        raise _deep(source) from exc
    except ValueError as exc:
        raise ProbeDocumentError(source, "", "not JSON (%s)" % exc) from exc
    if _may_hold_surrogate(text) and _has_surrogate(value):
        raise _surrogate(source)
    return value


def _skip(text: str, i: int) -> int:
    """Past JSON whitespace from ``i``."""
    m = _WS.match(text, i)
    return i if m is None else m.end()


class _Walked:
    """The top-level object, its remembered parts left out as the records already made of them."""

    __slots__ = ("nonascii", "reused", "spans", "value")

    def __init__(self) -> None:
        self.value: Any = {}
        #: The text was not ASCII (so a string in it may be a lone surrogate).
        self.nonascii = False
        #: The text of each part a decoder remembers, as it stands in this document.
        self.spans: Dict[str, str] = {}
        #: Records reused for some of those parts.
        self.reused: Dict[str, Any] = {}


# --------------------------------------------------------------------------
# The kinds of document, and the decoder.


@dataclasses.dataclass(frozen=True)
class DocumentKind:
    """What the decoder needs to know of one kind of document.

    ``check(doc, source, reused)`` raises on what types cannot say (a failed
    document without its stage...) and returns the document as read;
    ``reused`` names the parts taken from the cache, checked when first read.
    """

    record: type
    schema: str
    schema_major: str
    #: "probe" or "verify", in "not a fleetcpu ... document".
    label: str
    check: Callable[[Any, str, FrozenSet[str]], Any]
    #: Top-level keys worth remembering: large, and the same on many hosts.
    remembered: Tuple[str, ...] = ()


#: The probe document: its two large parts remembered.
PROBE = DocumentKind(
    ProbeDocument, SCHEMA, SCHEMA_MAJOR, "probe", check_probe_document, ("machine_types", "qemu")
)


class _Parts:
    """Per remembered part, the ``size`` most recently used texts and their checked records."""

    __slots__ = ("entries", "hits", "size")

    def __init__(self, keys: Tuple[str, ...], size: int) -> None:
        self.size = size
        self.entries: Dict[str, Dict[str, Any]] = {key: {} for key in keys}
        self.hits = 0

    def match(self, key: str, text: str, at: int) -> Optional[Tuple[str, Any]]:
        entries = self.entries[key]
        for known, records in entries.items():
            if text.startswith(known, at):
                self.hits += 1
                return known, records
        return None

    def remember(self, key: str, known: str, records: Any) -> None:
        entries = self.entries.setdefault(key, {})
        entries.pop(known, None)
        entries[known] = records
        while len(entries) > self.size:
            del entries[next(iter(entries))]


class DocumentDecoder:
    """One decoder: text -> checked records, remembering up to ``remember`` texts per large part.

    Make one per run (``collect`` does): the cache lives as long as the
    decoder, so what one run saw never leaks into another. ``remember=0``
    remembers nothing (the one-shot functions below).
    """

    def __init__(self, remember: int = 16) -> None:
        self._parts = _Parts(PROBE.remembered, remember)

    @property
    def hits(self) -> int:
        """How many parts were reused instead of decoded (for tests and benchmarks)."""
        return self._parts.hits

    def remembered(self, key: str) -> int:
        """How many texts of part ``key`` this decoder holds."""
        return len(self._parts.entries.get(key, ()))

    def probe(self, text: str, source: str = "<probe>") -> ProbeDocument:
        """A ``fleetcpu.probe/1`` document from its text."""
        return typing.cast(ProbeDocument, self.decode(PROBE, text, source))

    def decode(self, kind: DocumentKind, text: str, source: str) -> Any:
        """A document of ``kind`` from its text: parse, convert, check (the module docstring's one path)."""
        big = _too_large(text, source)
        if big is not None:
            raise big
        try:
            walked = self._walk(kind, text)
        except (StopIteration, ValueError, RecursionError):
            walked = None
        if walked is not None:
            try:
                doc = self._document(kind, walked, source, walked=True)
            except _Unsure:
                walked = None
        if walked is None:  # what the walk cannot vouch for: the bounded parser decides, and words the error
            walked = _Walked()
            walked.value = load_json(text, source)
            doc = self._document(kind, walked, source, walked=False)
        for key, span in walked.spans.items():
            if key not in walked.reused and getattr(doc, key):
                self._parts.remember(key, span, getattr(doc, key))
        return doc

    def from_value(self, kind: DocumentKind, value: Any, source: str) -> Any:
        """A document of ``kind`` from a parsed JSON value (nothing remembered)."""
        parsed = _Walked()
        parsed.value = value
        return self._document(kind, parsed, source, walked=False)

    def _walk(self, kind: DocumentKind, text: str) -> Optional[_Walked]:
        """The top-level object, remembered parts matched; None: not the usual shape.

        A text that may hold an escaped lone surrogate is left to ``load_json``,
        which checks every string (a cheap ``in``; documents rarely have one).
        """
        ws = _skip
        i = ws(text, 0)
        if not text.startswith("{", i) or "\\ud" in text or "\\uD" in text:
            return None
        i = ws(text, i + 1)
        out = _Walked()
        out.nonascii = not text.isascii()
        value, spans = out.value, out.spans
        remembered = kind.remembered if self._parts.size else ()
        while text.startswith('"', i):
            key, i = _scan(text, i)
            if key in value or key in spans:
                return None  # duplicate key: json.loads keeps the last; let it
            i = ws(text, i)
            if not text.startswith(":", i):
                return None
            i = ws(text, i + 1)
            found = self._parts.match(key, text, i) if key in remembered else None
            if found is not None:
                spans[key], out.reused[key] = found
                i += len(spans[key])
            else:
                value[key], end = _scan(text, i)
                if key in remembered:
                    spans[key] = text[i:end]
                i = end
            i = ws(text, i)
            if text.startswith(",", i):
                i = ws(text, i + 1)
                continue
            if text.startswith("}", i) and ws(text, i + 1) == len(text):
                return out
            return None
        return None

    def _document(self, kind: DocumentKind, parsed: _Walked, source: str, *, walked: bool) -> Any:
        """Convert and check; ``walked``: the value is the walk's, not ``load_json``'s.

        ``load_json`` refuses a text nested too deep, or holding a lone
        surrogate, before its records are looked at. The walk does not
        measure the text, so on a walked value anything amiss (a value that
        does not convert, an unknown key nested deeper than the records
        allow, a surrogate in a non-ASCII text) raises ``_Unsure``, and the
        text is parsed again by ``load_json``: its error is the one given.
        """
        value = read_envelope(parsed.value, kind.schema, kind.schema_major, kind.label, source)
        try:
            doc = _compile(kind.record, 1 if walked else 0)(value)
        except _Bad as bad:
            if walked:
                raise _Unsure() from None
            raise ProbeDocumentError(source, bad.key() or "<document>", bad.problem) from None
        if walked and parsed.nonascii and _has_surrogate(value):
            raise _Unsure()
        if parsed.reused:  # remembered parts are optional fields: the records so far lack them
            doc = dataclasses.replace(doc, **parsed.reused)
        return kind.check(doc, source, frozenset(parsed.reused))


class _Unsure(Exception):
    """The walk's value did not decode cleanly: ``load_json`` parses the text again and decides."""


def document_from_dict(value: Any, source: str = "<probe>") -> ProbeDocument:
    """Validate a parsed JSON value as a probe document; errors name the key at fault."""
    return typing.cast(ProbeDocument, DocumentDecoder(remember=0).from_value(PROBE, value, source))


def document_from_json(text: str, source: str = "<probe>") -> ProbeDocument:
    """A probe document from its text, by a decoder that remembers nothing (one-shot readers)."""
    return DocumentDecoder(remember=0).probe(text, source)
