"""Reading probe documents at fleet rate: a host whose CPU looks like one seen this run is not re-decoded.

Why: ~90 % of a probe document (70 of 78 KB) is ``machine_types``, the part
that depends only on the CPU, microcode, kernel and QEMU, and validating it
into records costs ~1 ms of orchestrator CPU per host (~2 ms with 256
sessions in flight), a fifth of what a whole SSH session costs. A pool is a
few CPU types, so at 10,000 hosts nearly every host repeats a
``machine_types`` some earlier host sent, byte for byte.

How, without giving up any check: the document's top level is walked with
the ``json`` module's own C scanner, one value at a time. At
``machine_types`` the text is compared with the few most recent
``machine_types`` texts that decoded cleanly; a JSON array is
self-delimiting, so a text that starts with one of them holds exactly that
array there, and its already validated records are reused (records are
frozen; hosts may share them). Everything else in the document (host facts,
QEMU, attempts, status) is decoded and validated as always, by
``document_from_dict``. Anything unusual (not an object, a duplicate key, a
value the scanner rejects, a record error) falls back to
``document_from_json`` on the whole text, so errors and their messages are
exactly the reference parser's.
"""

from __future__ import annotations

import dataclasses
import json
import json.scanner
import re
from typing import Any

from ..probe.records import MachineProbe, ProbeDocument, VcpuProps, document_from_dict, document_from_json

__all__ = ["MachineTypesMemo", "read_document"]

#: The C scanner ``json.loads`` itself uses: one JSON value from an index, and where it ends.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_WS = re.compile(r"[ \t\n\r]*")


def _skip(text: str, i: int) -> int:
    """Past JSON whitespace from ``i``."""
    m = _WS.match(text, i)
    return i if m is None else m.end()

#: A valid one-entry ``machine_types`` stand-in: decoding it is cheap, and the
#: document it validates is then given the remembered records instead.
_STAND_IN = [json.loads(json.dumps(dataclasses.asdict(
    MachineProbe("", "", "", "", (), None, None, VcpuProps(), (), ()))))]


class MachineTypesMemo:
    """The ``size`` most recently used ``machine_types`` texts and their validated records."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._entries: dict[str, tuple[MachineProbe, ...]] = {}
        self.hits = 0

    def match(self, text: str, at: int) -> tuple[str, tuple[MachineProbe, ...]] | None:
        for known, records in list(self._entries.items()):
            if text.startswith(known, at):
                self.hits += 1
                return known, records
        return None

    def remember(self, known: str, records: tuple[MachineProbe, ...]) -> None:
        self._entries.pop(known, None)
        self._entries[known] = records
        while len(self._entries) > self.size:
            del self._entries[next(iter(self._entries))]


_MEMO = MachineTypesMemo()


def _walk(text: str, memo: MachineTypesMemo) -> tuple[dict[str, Any], str | None,
                                                      tuple[MachineProbe, ...] | None] | None:
    """The top-level object with ``machine_types`` left out when remembered; None: not the usual shape.

    Returns (value, machine_types text, remembered records or None).
    """
    ws = _skip
    i = ws(text, 0)
    if not text.startswith("{", i):
        return None
    i = ws(text, i + 1)
    value: dict[str, Any] = {}
    span: str | None = None
    records: tuple[MachineProbe, ...] | None = None
    while text.startswith('"', i):
        key, i = _scan(text, i)
        if key in value or (key == "machine_types" and span is not None):
            return None  # duplicate key: json.loads keeps the last; let it
        i = ws(text, i)
        if not text.startswith(":", i):
            return None
        i = ws(text, i + 1)
        if key == "machine_types":
            found = memo.match(text, i)
            if found is not None:
                span, records = found
                i += len(span)
            else:
                value[key], end = _scan(text, i)
                span, i = text[i:end], end
        else:
            value[key], i = _scan(text, i)
        i = ws(text, i)
        if text.startswith(",", i):
            i = ws(text, i + 1)
            continue
        if text.startswith("}", i) and ws(text, i + 1) == len(text):
            return value, span, records
        return None
    return None


def read_document(text: str, source: str = "probe output",
                  memo: MachineTypesMemo | None = None) -> ProbeDocument:
    """``document_from_json(text, source)``, reusing remembered ``machine_types`` records.

    Raises ``ProbeDocumentError`` exactly as ``document_from_json`` does.
    """
    memo = _MEMO if memo is None else memo
    try:
        walked = _walk(text, memo)
    except (StopIteration, ValueError, RecursionError):
        walked = None
    if walked is None:
        return document_from_json(text, source)
    value, span, records = walked
    if records is None:
        doc = document_from_dict(value, source)
        if span is not None and doc.machine_types:
            memo.remember(span, doc.machine_types)
        return doc
    try:
        doc = document_from_dict({**value, "machine_types": _STAND_IN}, source)
    except Exception:  # noqa: BLE001 - the reference parser decides, and words the error
        return document_from_json(text, source)
    return dataclasses.replace(doc, machine_types=records)
