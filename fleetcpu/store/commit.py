"""A run's commit record: which files it published, and whether a file is one of them.

Why the record lists its files: without the list, a deleted ``models`` file
read as "this run has no model rows" and the baseline quietly changed its
answer; a foreign Parquet file in a table directory was read as data. With
it, readers open exactly the files the run committed, check each against
its rows and bytes (cheap: a stat and the footer), and name a missing or
different one (exit 4). ``fsck`` also checks the sha256.

Runs committed before the list existed (``files`` null) are *unverified*:
their file is, as before, the one at the run's computed path, if it exists.

Pure except ``checked``, which stats the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreCorruptError
from .layout import Layout

__all__ = ["CommitRecord", "CommittedFile", "FileEntry", "checked", "from_row"]


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

    @property
    def verified(self) -> bool:
        return self.files is not None

    def entries(self, table: str) -> list[FileEntry]:
        return [f for f in self.files or () if f.table == table]


def from_row(run_id: str, files: object) -> CommitRecord:
    if files is None:
        return CommitRecord(run_id, None)
    assert isinstance(files, list)
    return CommitRecord(run_id, tuple(
        FileEntry(str(f["table"]), str(f["path"]), int(f["rows"]), int(f["bytes"]),
                  str(f["sha256"]))
        for f in files
    ))


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
