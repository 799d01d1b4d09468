"""A run's commit record: which files it published, and whether a file is one of them.

Why the record lists its files: without the list, a deleted ``models`` file
read as "this run has no model rows" and the baseline quietly changed its
answer; a foreign Parquet file in a table directory was read as data. With
it, readers open exactly the files the run committed, check each against
its rows and bytes (cheap: a stat and the footer), and name a missing or
different one (exit 4). ``fsck`` also checks the sha256.

Runs committed before the list existed (``files`` null) are *unverified*:
their file is, as before, the one at the run's computed path, if it exists.

A layout 2 run has one record per committed part (``part`` 1, 2, ...), each
listing that part's files; together they are the run's record. Every part
but the last says ``partial``; a run whose records all say so is still being
written, or its writer died (``killed``) and its committed parts are all of it.

Pure except ``checked``, which stats the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreCorruptError
from .layout import Layout

__all__ = [
    "KILLED",
    "PARTIAL",
    "CommitRecord",
    "CommittedFile",
    "FileEntry",
    "checked",
    "from_row",
    "from_rows",
]

#: The status of every part's record but the last (layout 2).
PARTIAL = "partial"
#: What readers call a run whose records all say ``partial`` and whose writer is gone.
KILLED = "killed"


@dataclass(frozen=True)
class FileEntry:
    table: str
    path: str  # relative to the layout directory
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class CommitRecord:
    run_id: str
    #: None: committed by a fleetcpu before file lists (unverified).
    files: tuple[FileEntry, ...] | None
    #: Records that commit the run: 1 in layout 1, its committed parts in layout 2.
    parts: int = 1
    #: Its last record is written (status complete or interrupted). False: a layout 2
    #: run still being written, or killed after these parts.
    final: bool = True

    @property
    def verified(self) -> bool:
        return self.files is not None

    def entries(self, table: str) -> list[FileEntry]:
        return [f for f in self.files or () if f.table == table]


def _entries(files: Sequence[Mapping[str, object]]) -> tuple[FileEntry, ...]:
    return tuple(
        FileEntry(
            str(f["table"]), str(f["path"]), int(str(f["rows"])), int(str(f["bytes"])), str(f["sha256"])
        )
        for f in files
    )


def from_row(run_id: str, files: object) -> CommitRecord:
    """A whole-run record (layout 1)."""
    if files is None:
        return CommitRecord(run_id, None)
    assert isinstance(files, list)
    return CommitRecord(run_id, _entries(files))


def from_rows(layout: Layout, run_id: str, rows: Sequence[Mapping[str, object]]) -> CommitRecord:
    """The run's records (``status``, ``files``, ``part``), parts in order, as one.

    A gap in the parts (part 2 missing beside 1 and 3) or a part after the one
    that ended the run is StoreCorruptError naming the record: a deleted part
    record must not make its hosts vanish quietly.
    """
    if len(rows) == 1 and rows[0].get("part") is None:
        return from_row(run_id, rows[0].get("files"))
    files: list[FileEntry] = []
    for n, row in enumerate(rows, start=1):
        part = row.get("part")
        if part != n:
            missing = layout.part_file("runs", run_id, n)
            raise StoreCorruptError(
                f"{missing}: missing; run {run_id} has commit records of parts "
                f"{', '.join(str(r.get('part')) for r in rows)}, so part {n}'s are lost"
            )
        if n < len(rows) and row.get("status") != PARTIAL:
            extra = layout.part_file("runs", run_id, n + 1)
            raise StoreCorruptError(
                f"{extra}: run {run_id} already ended with part {n} ({row.get('status')}); "
                "a later part's record is not its writer's"
            )
        listed = row.get("files")
        if not isinstance(listed, list):
            raise StoreCorruptError(
                f"{layout.part_file('runs', run_id, n)}: a part's record without its files"
            )
        files.extend(_entries(listed))
    final = bool(rows) and rows[-1].get("status") != PARTIAL
    return CommitRecord(run_id, tuple(files), len(rows), final)


@dataclass(frozen=True)
class CommittedFile:
    """One file a reader may read: its path and, when the record says, its row count."""

    path: Path
    rows: int | None


def checked(layout: Layout, record: CommitRecord, table: str) -> list[CommittedFile]:
    """The run's files of ``table`` in the order written (none: it wrote no rows there).

    A listed file that is missing or of another size is StoreCorruptError
    naming it (its rows are checked against the footer when it is read). An
    unverified run's file is trusted if present, as before.
    """
    if record.files is None:
        path = layout.run_file(table, record.run_id)
        return [CommittedFile(path, None)] if path.exists() else []
    return [_present(layout, record.run_id, entry) for entry in record.entries(table)]


def _present(layout: Layout, run_id: str, entry: FileEntry) -> CommittedFile:
    path = layout.data / entry.path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise StoreCorruptError(
            f"{path}: missing; run {run_id}'s commit record lists it with {entry.rows} rows"
        ) from None
    if size != entry.bytes:
        raise StoreCorruptError(
            f"{path}: {size} bytes where run {run_id}'s commit record says "
            f"{entry.bytes}; the file was replaced or damaged"
        )
    return CommittedFile(path, entry.rows)
