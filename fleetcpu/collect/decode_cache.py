"""Reading probe documents at fleet rate: a host whose CPU looks like one seen this run is not re-decoded.

Why: ~90 % of a probe document (70 of 78 KB) is ``machine_types``, the part
that depends only on the CPU, microcode, kernel and QEMU, and validating it
into records costs ~1 ms of orchestrator CPU per host (~2 ms with 256
sessions in flight), a fifth of what a whole SSH session costs. A pool is a
few CPU types, so at 10,000 hosts nearly every host repeats a
``machine_types`` some earlier host sent, byte for byte.

How, without giving up any check: the document's top level is walked with
the ``json`` module's own C scanner, one value at a time. At
``machine_types`` (and ``qemu``, ~5 KB, the same for every host of one QEMU
build) the text is compared with the few most recent texts of that part
that decoded cleanly; a JSON array is
self-delimiting, so a text that starts with one of them holds exactly that
array there, and its already validated records are reused (records are
frozen; hosts may share them). Everything else in the document (host facts,
attempts, status) is decoded and validated as always, by
``document_from_dict``. Anything unusual (not an object, a duplicate key, a
value the scanner rejects, a record error) falls back to
``document_from_json`` on the whole text, so errors and their messages are
exactly the reference parser's. That includes nesting: the C scanner's own
recursion guard stops a deeply nested value here, and the reference parser
then bounds the depth before parsing and says so; an oversized text or one
that may hold a lone surrogate goes straight to it.
"""

from __future__ import annotations

import dataclasses
import json
import json.scanner
import re
from typing import Any

from ..errors import ProbeDocumentError
from ..probe.document import (
    MAX_DOCUMENT_CHARS,
    MachineProbe,
    ProbeDocument,
    VcpuProps,
    document_from_dict,
    document_from_json,
)

__all__ = ["DocumentMemo", "read_document"]

#: The C scanner ``json.loads`` itself uses: one JSON value from an index, and where it ends.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_WS = re.compile(r"[ \t\n\r]*")


#: Texts holding an escape that may be half a surrogate pair go to the reference
#: parser, which checks every string (a cheap ``in``; probe documents rarely have one).
_SURROGATE_HINT = "\\ud"
_SURROGATE_HINT_UPPER = "\\uD"


def _skip(text: str, i: int) -> int:
    """Past JSON whitespace from ``i``."""
    m = _WS.match(text, i)
    return i if m is None else m.end()


#: The parts worth remembering, each with a valid stand-in: decoding the
#: stand-in is cheap, and the document it validates is then given the
#: remembered records instead. ``qemu`` (~5 KB: every machine type the binary
#: knows) is the same on every host running one QEMU build.
_STAND_INS: dict[str, Any] = {
    "machine_types": [
        json.loads(
            json.dumps(
                dataclasses.asdict(MachineProbe("x", "x", "", "", (), None, None, VcpuProps(), (), ()))
            )
        )
    ],
    "qemu": None,
}


class DocumentMemo:
    """Per remembered part, the ``size`` most recently used texts and their validated records."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._entries: dict[str, dict[str, Any]] = {key: {} for key in _STAND_INS}
        self.hits = 0

    def match(self, key: str, text: str, at: int) -> tuple[str, Any] | None:
        for known, records in list(self._entries[key].items()):
            if text.startswith(known, at):
                self.hits += 1
                return known, records
        return None

    def remember(self, key: str, known: str, records: Any) -> None:
        entries = self._entries[key]
        entries.pop(known, None)
        entries[known] = records
        while len(entries) > self.size:
            del entries[next(iter(entries))]


_MEMO = DocumentMemo()


def _walk(text: str, memo: DocumentMemo) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]] | None:
    """The top-level object, remembered parts left out; None: not the usual shape.

    Returns (value, the texts of the memo's parts, the records reused for some of them).
    """
    ws = _skip
    i = ws(text, 0)
    if not text.startswith("{", i):
        return None
    i = ws(text, i + 1)
    value: dict[str, Any] = {}
    spans: dict[str, str] = {}
    reused: dict[str, Any] = {}
    while text.startswith('"', i):
        key, i = _scan(text, i)
        if key in value or key in spans:
            return None  # duplicate key: json.loads keeps the last; let it
        i = ws(text, i)
        if not text.startswith(":", i):
            return None
        i = ws(text, i + 1)
        found = memo.match(key, text, i) if key in _STAND_INS else None
        if found is not None:
            spans[key], reused[key] = found
            i += len(spans[key])
        else:
            value[key], end = _scan(text, i)
            if key in _STAND_INS:
                spans[key] = text[i:end]
            i = end
        i = ws(text, i)
        if text.startswith(",", i):
            i = ws(text, i + 1)
            continue
        if text.startswith("}", i) and ws(text, i + 1) == len(text):
            return value, spans, reused
        return None
    return None


def read_document(text: str, source: str = "probe output", memo: DocumentMemo | None = None) -> ProbeDocument:
    """``document_from_json(text, source)``, reusing remembered ``machine_types`` and ``qemu`` records.

    Raises ``ProbeDocumentError`` exactly as ``document_from_json`` does.
    """
    memo = _MEMO if memo is None else memo
    if len(text) > MAX_DOCUMENT_CHARS or _SURROGATE_HINT in text or _SURROGATE_HINT_UPPER in text:
        return document_from_json(text, source)
    try:
        walked = _walk(text, memo)
    except (StopIteration, ValueError, RecursionError):
        walked = None
    if walked is None:
        return document_from_json(text, source)
    value, spans, reused = walked
    try:
        doc = document_from_dict({**value, **{k: _STAND_INS[k] for k in reused}}, source)
    except ProbeDocumentError:  # the reference parser decides, and words the error
        return document_from_json(text, source)
    for key, span in spans.items():
        if key not in reused and getattr(doc, key):
            memo.remember(key, span, getattr(doc, key))
    return dataclasses.replace(doc, **reused) if reused else doc
