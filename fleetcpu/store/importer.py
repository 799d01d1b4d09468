"""``fleetcpu import``: probe documents made offline become runs of their own.

Why validate every file before storing any: an operator importing a directory
of air-gapped hosts' files wants all of them or a clear refusal, not a store
holding half a batch and an error about the other half. So all files are
read and checked first (the error names the file and the key at fault,
exit 3), and each one's rows are converted to the store's Arrow columns as a
rehearsal (a value its column cannot hold is refused here, not at the write
of the second file); only then is the store opened and each document written
as its own run, timed by the document, oldest first, so that the digest dedup
sees each host's previous import.

``collected_now`` is for documents that stand for a host rather than come
from one now (the demo fleet in examples/, test fixtures): their own time
would make every member ``stale`` a week after they were made. The run and
the host rows are then dated at import time, the document's own time stays
in ``probe_time``, and the run's ``command`` says ``import --collected-now``
so no one mistakes the date for a measurement's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from ..errors import ProbeDocumentError
from ..outcome import ConnectionSpec, HostOutcome
from ..probe.document import MAX_DOCUMENT_CHARS, ProbeDocument
from ..probe.document_decoder import document_from_json
from .layout import parse_rfc3339
from .outcome_rows import cpu_digest, detail_rows, host_row, unique_machines
from .run_writer import RunWriter
from .schema import HOSTS, TABLES
from .store import Store

__all__ = [
    "COMMAND",
    "COMMAND_COLLECTED_NOW",
    "DEFAULT_POOL",
    "ImportItem",
    "Imported",
    "OutcomeHook",
    "import_files",
    "load",
    "outcome",
    "rehearse",
]

DEFAULT_POOL = "default"
COMMAND = "import"
COMMAND_COLLECTED_NOW = "import --collected-now"


@dataclass(frozen=True)
class ImportItem:
    """One validated file, ready to store."""

    path: str
    host: str
    time: datetime
    document: ProbeDocument


@dataclass(frozen=True)
class Imported:
    path: str
    host: str
    run_id: str
    status: str


def _host_name(name: str, source: str, key: str) -> str:
    if not name or name != name.strip() or any(ord(c) < 32 or c.isspace() for c in name):
        raise ProbeDocumentError(source, key, f"not usable as a host name: {name!r}")
    return name


def load(path: str, host: str | None) -> ImportItem:
    """Read and validate one file; every problem is a ProbeDocumentError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_DOCUMENT_CHARS + 1)  # a bigger file is refused, not read whole
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeDocumentError(path, "", f"cannot read it ({exc})") from exc
    doc = document_from_json(text, path)
    try:
        moment = parse_rfc3339(doc.time)
    except ValueError as exc:
        raise ProbeDocumentError(path, "time", f"not an RFC 3339 time with offset: {doc.time!r}") from exc
    if host is not None:
        name = _host_name(host, "--host", "")
    elif doc.host.hostname is None:
        raise ProbeDocumentError(path, "host.hostname", "missing: name the host with --host NAME")
    else:
        name = _host_name(doc.host.hostname, path, "host.hostname")
    return ImportItem(path=path, host=name, time=moment, document=doc)


def outcome(item: ImportItem, pool: str, collected_at: datetime | None = None) -> HostOutcome:
    return HostOutcome(
        host=item.host,
        pool=pool,
        collected_at=collected_at or item.time,
        document=item.document,
        connection=ConnectionSpec(transport="import"),
        duration_s=item.document.duration_s,
    )


def rehearse(item: ImportItem) -> None:
    """Convert ``item``'s rows to their Arrow columns, as the write will: an error here stores nothing."""
    machines = unique_machines(item.document.machine_types)
    try:
        row = host_row(outcome(item, DEFAULT_POOL), "rehearsal", cpu_digest(machines), None)
        pa.Table.from_pylist([row], schema=HOSTS.schema)
        for table, rows in detail_rows("rehearsal", item.host, machines).by_table().items():
            pa.Table.from_pylist(rows, schema=TABLES[table].schema)
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
        raise ProbeDocumentError(item.path, "", f"a value its store column cannot hold ({exc})") from exc


#: Given the opened store, what to add to each run beside the host's rows (a command
#: above the store, such as the contract's verdicts, supplies it).
OutcomeHook = Callable[[Store], Callable[[RunWriter, HostOutcome], None]]


def import_files(
    store_path: Path,
    files: Sequence[str],
    *,
    pool: str | None = None,
    host: str | None = None,
    collected_now: bool = False,
    hook: OutcomeHook | None = None,
) -> list[Imported]:
    items = [load(path, host) for path in files]  # all or nothing: validate first
    for item in items:
        rehearse(item)
    store = Store.create_or_open(store_path)
    also = hook(store) if hook is not None else None
    done = []
    for item in sorted(items, key=lambda i: i.time):
        when = datetime.now(UTC) if collected_now else item.time
        with store.run_writer(
            command=COMMAND_COLLECTED_NOW if collected_now else COMMAND,
            inventory=os.path.abspath(item.path),
            started_at=when,
        ) as writer:
            result = outcome(item, pool or DEFAULT_POOL, when)
            writer.add(result)
            if also is not None:
                also(writer, result)
        done.append(Imported(item.path, item.host, writer.run_id, item.document.status))
    return done
