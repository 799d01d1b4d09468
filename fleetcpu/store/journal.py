"""The pending-run journal: what makes "commit, then update the index" safe to interrupt.

A run is committed when its ``runs`` row appears; the index is updated after.
Between the two, a SIGKILL, or a lock held too long by another writer, would
leave a committed run that the index never learns about. So before
publishing anything, a writer drops a marker ``v1/index/pending/<run_id>``
and removes it only once the index includes the run. Whoever reads the index
next folds in every marked run whose ``runs`` row exists; a marked run
without one whose lease is free (``lease.py``: its writer is dead) was never
committed, and a writer deletes its files (they were visible to raw readers,
never to ours). In layout 2 the marker goes down before the first part: a
run whose records all say ``partial`` is being written while its lease is
held (readers merge its parts in memory), and was killed once it is free:
then its committed parts are all of it, the index folds them in for good,
and only its files no record lists are deleted (``Store``'s sweep). A
marker with no lease at all was left by a fleetcpu older than leases; for
those alone the old rule stands (older than an hour: such a writer published
its files within milliseconds of the marker).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import FleetcpuError
from . import lease, scan
from .atomic import STALE_AFTER_S, fsync_dir
from .commit import PARTIAL
from .layout import Layout, is_run_id, run_file_name
from .reader import read_file
from .schema import RUNS

__all__ = ["Pending", "abandoned", "begin", "end", "pending", "pending_paths", "roll_back"]


@dataclass(frozen=True)
class Pending:
    run_id: str
    age_s: float
    #: The whole run is committed: its one record (layout 1), or its last part's.
    committed: bool
    #: Layout 2: some parts are committed, the last is not (yet).
    parts: bool = False
    #: Its writer held its lease when looked at (before its records were read).
    live: bool = False

    @property
    def foldable(self) -> bool:
        """Its records will not change: the index may take it in for good."""
        return self.committed or (self.parts and not self.live)


def _final(record: Path) -> bool:
    named = run_file_name(record.name)
    if named is None or named[1] is None:
        return True  # a whole-run record (layout 1)
    try:
        status = read_file(record, RUNS, columns=["status"])["status"].to_pylist()
    except FleetcpuError:
        return False  # unreadable: whoever reads the run names it
    return bool(status) and status[0] != PARTIAL


def begin(layout: Layout, run_id: str) -> None:
    path = layout.pending_file(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.fsync(fd)
    os.close(fd)
    fsync_dir(path.parent)


def end(layout: Layout, run_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layout.pending_file(run_id))


def pending(layout: Layout) -> list[Pending]:
    try:
        entries = list(os.scandir(layout.pending_dir))
    except FileNotFoundError:
        return []
    now = time.time()
    out = []
    for entry in entries:
        if not is_run_id(entry.name):
            continue
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue
        # Liveness first: a writer not alive now writes no record after, so what is
        # read next is final (a live one may add parts; readers merge them in memory).
        live = lease.is_live(layout, entry.name)
        records = scan.records_of(layout, entry.name)
        committed = bool(records) and _final(records[-1])
        out.append(Pending(entry.name, age, committed, bool(records) and not committed, live))
    return sorted(out, key=lambda p: p.run_id)


def abandoned(layout: Layout, dead: set[str], older_than: float = STALE_AFTER_S) -> list[str]:
    """Runs that began committing, never wrote their ``runs`` row, and never will.

    ``dead``: runs whose lease was proven free (``lease.dead_runs``) before
    this call, so a ``runs`` row not there now will never appear.
    """
    out = []
    for p in pending(layout):
        if p.committed or p.parts:
            continue  # committed parts of a dead run are kept: it reads as killed
        if p.run_id in dead:
            if not scan.records_of(layout, p.run_id):
                out.append(p.run_id)
        elif not lease.has_lease(layout, p.run_id) and p.age_s > older_than:
            out.append(p.run_id)  # written by a fleetcpu older than leases
    return out


def roll_back(layout: Layout, run_id: str, tables: tuple[str, ...]) -> None:
    """Delete every file a run that never committed anything published, then its marker."""
    for table in tables:
        for path in scan.published_files(layout, table, run_id):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    end(layout, run_id)


def pending_paths(layout: Layout) -> list[Path]:
    return [layout.pending_file(p.run_id) for p in pending(layout)]
