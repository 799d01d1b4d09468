"""Mutated golden probe documents, and the verdict of every path that decodes one.

Shared by ``tests/test_fuzz_documents.py`` (the CI run: fixed seed, >= 5,000
cases, bounded time) and ``benchmarks/fuzz_documents.py`` (the long run,
outside CI). A case is the bytes a host could print (or a file ``import``
could be given): a golden document, or a smaller one cut from it (fewer
models, so more cases fit the time bound), with one to three named mutation
operators applied. Each case goes through

- ``import``'s reader (``importer.load`` on a real file, then its
  ``rehearse`` of the store columns), and
- collect's decode path (``interpret`` over the bytes as stdout, then the
  same store-column rehearsal for a document it accepts),

and the only outcomes allowed are a document or a ``ProbeDocumentError``
(a failure row, or a one-line exit 3). Anything else is a traceback: the
case, its operators and its seed are reported so it can be replayed.
"""

from __future__ import annotations

import contextlib
import json
import random
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcpu.collect.probe_reply import interpret
from fleetcpu.errors import ProbeDocumentError
from fleetcpu.fleet.remote_run import RemoteRun
from fleetcpu.store.importer import ImportItem, load, rehearse
from fleetcpu.store.layout import parse_rfc3339

REPO = Path(__file__).resolve().parents[2]
GOLDENS = sorted((REPO / "tests" / "golden").glob("probe-*.json"))

Path_ = tuple[str | int, ...]
#: One case in this many mutates a whole golden (~30 ms a case), the rest a cut one (~7 ms).
WHOLE_EVERY = 50


def _paths(node: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every path into ``node`` (the root excluded)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*at, key)
            yield from _paths(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*at, i)
            yield from _paths(value, (*at, i))


def _get(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


@dataclass
class Seed:
    """One document to mutate: its JSON value and every path into it."""

    name: str
    value: dict[str, Any]
    paths: list[Path_] = field(default_factory=list)
    containers: list[Path_] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = list(_paths(self.value))
        self.containers = [()] + [p for p in self.paths if isinstance(_get(self.value, p), (dict, list))]


def _cut(value: dict[str, Any], keep: int) -> dict[str, Any]:
    """The document with every long list and map cut to ``keep`` entries: still a valid one."""
    for mp in value["machine_types"]:
        mp["models"] = mp["models"][:keep]
        mp["feature_words"] = mp["feature_words"][:keep]
        mp["filtered_features"] = mp["filtered_features"][:keep]
        for kind in ("static_expansion", "full_expansion"):
            for part in ("features", "props"):
                mp[kind][part] = dict(list(mp[kind][part].items())[: keep * 3])
    value["qemu"]["machines"] = value["qemu"]["machines"][:keep]
    return value


def seeds() -> list[Seed]:
    """Each golden, whole and cut to a few entries per list (~1/20 the size: more cases per second).

    ``cases`` uses the whole goldens for one case in ``WHOLE_EVERY``, the cut ones for the rest.
    """
    out = []
    for path in GOLDENS:
        out.append(Seed(path.stem, json.loads(path.read_text())))
    for path in GOLDENS:
        out.append(Seed(path.stem + "-cut", _cut(json.loads(path.read_text()), 4)))
    return out


# --------------------------------------------------------------------------- operators
# Every operator changes a copy of the document's value; those that need what
# no JSON value can say (deep nesting, a duplicate key) plant a sentinel and
# ask for it to be replaced in the text (``edits``); ``invalid_utf8`` then
# changes the bytes.
HUGE = [2**31, 2**32, 2**53 + 1, 2**63, 2**64, 2**1000, 10**400]
NEGATIVE = [-1, -(2**31) - 1, -(2**63) - 1, -(10**30)]
ODD_NAMES = [
    "y,kvm=off",
    "a=b",
    'pwn\n[chardev "pwn"]',
    "",
    "-h",
    " ",
    "\u0000",
    "\u00e9t\u00e9",
    "x" * 300,
    "\ud800",
    "\udfff",
    "a\\b",
    "'",
    "<x/>",
    "\u202e",
    "\ufeff",
]
SWAPS: list[Any] = [None, True, False, 0, -7, 1.5, float("inf"), "", "text", [], [1, "a"], {}, {"k": "v"}]
Edits = list[tuple[str, str]]


def _dicts(seed: Seed) -> list[Path_]:
    return [p for p in seed.containers if isinstance(_get(seed.value, p), dict)]


def _value_op(rng: random.Random, seed: Seed, doc: dict[str, Any], value: Any) -> None:
    _set(doc, rng.choice(seed.paths), value)


def type_swap(rng: random.Random, seed: Seed, doc: dict[str, Any], _edits: Edits) -> None:
    _value_op(rng, seed, doc, rng.choice(SWAPS))


def huge_int(rng: random.Random, seed: Seed, doc: dict[str, Any], _edits: Edits) -> None:
    _value_op(rng, seed, doc, rng.choice(HUGE))


def negative_int(rng: random.Random, seed: Seed, doc: dict[str, Any], _edits: Edits) -> None:
    _value_op(rng, seed, doc, rng.choice(NEGATIVE))


def long_string(rng: random.Random, seed: Seed, doc: dict[str, Any], _edits: Edits) -> None:
    length = rng.choice((1_000, 1_000, 70_000, 70_000, 400_000))
    _value_op(rng, seed, doc, rng.choice("ab\u00e9\n,") * length)


def odd_name(rng: random.Random, seed: Seed, doc: dict[str, Any], _edits: Edits) -> None:
    """An odd string as a value, or as a key (a feature or property name)."""
    name = rng.choice(ODD_NAMES)
    at = _get(doc, rng.choice(_dicts(seed)))
    if at and rng.random() < 0.5:
        at[name] = at.pop(rng.choice(list(at)))
    else:
        _value_op(rng, seed, doc, name)


def missing_key(rng: random.Random, seed: Seed, doc: dict[str, Any], _edits: Edits) -> None:
    at = _get(doc, rng.choice(_dicts(seed)))
    if at:
        del at[rng.choice(list(at))]


def extra_key(rng: random.Random, seed: Seed, doc: dict[str, Any], _edits: Edits) -> None:
    at = _get(doc, rng.choice(_dicts(seed)))
    at[rng.choice(["extra", "x-new", "schema", "Zz"])] = rng.choice(SWAPS)


def deep_nesting(rng: random.Random, seed: Seed, doc: dict[str, Any], edits: Edits) -> None:
    """A value somewhere becomes ``[[[...]]]`` or ``{"a": {"a": ...}}``, up to 100,000 levels."""
    depth = rng.choice((20, 33, 33, 1_000, 1_000, 100_000))
    deep = "[" * depth + "]" * depth if rng.random() < 0.7 else '{"a":' * depth + "1" + "}" * depth
    sentinel = f"\u0001deep{len(edits)}\u0001"
    _value_op(rng, seed, doc, sentinel)
    edits.append((json.dumps(sentinel), deep))


def duplicate_key(rng: random.Random, seed: Seed, doc: dict[str, Any], edits: Edits) -> None:
    """A key repeated in its object, with another value before or after (JSON keeps the last)."""
    path = rng.choice(_dicts(seed))
    at = _get(doc, path)
    if not at:
        return
    key = rng.choice(list(at))
    sentinel = f"\u0001dup{len(edits)}\u0001"
    items = list(at.items())
    items.insert(rng.randrange(len(items) + 1), (sentinel, rng.choice(SWAPS)))
    at.clear()
    at.update(items)
    edits.append((json.dumps(sentinel), json.dumps(key)))


VALUE_OPS = {
    f.__name__: f
    for f in (
        type_swap,
        huge_int,
        negative_int,
        long_string,
        odd_name,
        missing_key,
        extra_key,
        deep_nesting,
        duplicate_key,
    )
}


def invalid_utf8(rng: random.Random, data: bytes) -> bytes:
    """Bytes no UTF-8 decoder accepts (a stray continuation, an encoded surrogate, 0xff)."""
    bad = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"))
    at = rng.randrange(len(data))
    return data[:at] + bad + data[at:]


BYTE_OPS = {"invalid_utf8": invalid_utf8}
OPERATORS = (*VALUE_OPS, *BYTE_OPS)


# --------------------------------------------------------------------------- cases and verdicts
@dataclass(frozen=True)
class Case:
    index: int
    seed: str
    operators: tuple[str, ...]
    data: bytes


def cases(count: int, seed: int = 17) -> Iterator[Case]:
    """``count`` mutated documents, the same for the same ``seed``; every operator used in turn."""
    rng = random.Random(seed)
    pool = seeds()
    texts = {s.name: json.dumps(s.value) for s in pool}
    for index in range(count):
        whole = index % WHOLE_EVERY == 0
        s = pool[index // 10 % len(GOLDENS) if whole else len(GOLDENS) + index % len(GOLDENS)]
        ops = list(
            dict.fromkeys(
                [OPERATORS[index % len(OPERATORS)], *rng.sample(OPERATORS, rng.choice((0, 0, 1, 2)))]
            )
        )
        edits: Edits = []
        doc = json.loads(texts[s.name])
        for o in ops:
            if o in VALUE_OPS:
                # An earlier operator may have removed or retyped the place: no change then.
                with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
                    VALUE_OPS[o](rng, s, doc, edits)
        text = json.dumps(doc, indent=rng.choice((None, 2)), ensure_ascii=rng.random() < 0.5)
        for old, new in edits:
            text = text.replace(old, new, 1)
        data = text.encode("utf-8", errors="surrogatepass")
        for o in ops:
            if o in BYTE_OPS:
                data = BYTE_OPS[o](rng, data)
        yield Case(index, s.name, tuple(ops), data)


@dataclass
class Tally:
    """What the cases gave: accepted, refused (clean), and tracebacks (each with its case)."""

    accepted: int = 0
    refused: int = 0
    tracebacks: list[str] = field(default_factory=list)
    by_operator: dict[str, list[int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.accepted + self.refused + len(self.tracebacks)


def _ran(stdout: bytes) -> RemoteRun:
    return RemoteRun(stdout=stdout, stderr_tail=b"", exit_status=0, exit_signal=None, duration_s=0.1)


def judge(case: Case, scratch: Path) -> tuple[bool, str | None]:
    """(accepted?, traceback text or None) over import's reader and collect's decode path."""
    try:
        scratch.write_bytes(case.data)
        try:
            item = load(str(scratch), None)
            rehearse(item)
            imported = True
        except ProbeDocumentError as exc:
            imported = False
            if "\n" in exc.message:
                raise AssertionError(f"a multi-line error: {exc.message!r}") from exc
        verdict = interpret(_ran(case.data), "python3")
        # The bytes import accepted were rehearsed already; collect's text differs only where
        # they are not UTF-8 (decoded with replacement), which import refuses.
        if verdict.document is None:
            assert verdict.stage == "output", verdict
        elif not imported:
            doc = verdict.document
            rehearse(
                ImportItem(
                    str(scratch),
                    doc.host.hostname or "h",
                    parse_rfc3339(doc.time) if _rfc3339(doc.time) else _EPOCH,
                    doc,
                )
            )
    except Exception:  # noqa: BLE001 - exactly what the fuzz test hunts
        return (
            False,
            f"case {case.index} ({case.seed}, {'+'.join(case.operators)}):\n" + traceback.format_exc(),
        )
    return imported, None


def _rfc3339(text: str) -> bool:
    try:
        parse_rfc3339(text)
    except ValueError:
        return False
    return True


_EPOCH = parse_rfc3339("1970-01-01T00:00:00Z")


def run(count: int, scratch: Path, seed: int = 17) -> Tally:
    tally = Tally()
    for case in cases(count, seed):
        accepted, failure = judge(case, scratch)
        if failure is not None:
            tally.tracebacks.append(failure)
        elif accepted:
            tally.accepted += 1
        else:
            tally.refused += 1
        for op in case.operators:
            counts = tally.by_operator.setdefault(op, [0, 0])
            counts[0 if accepted else 1] += 1
    return tally
