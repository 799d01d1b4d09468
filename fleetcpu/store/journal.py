"""The pending-run journal: what makes "commit, then update the index" safe to interrupt.

A run is committed when its ``runs`` row appears; the index is updated after.
Between the two, a SIGKILL, or a lock held too long by another writer, would
leave a committed run that the index never learns about. So before
publishing anything, a writer drops a marker ``v1/index/pending/<run_id>``
and removes it only once the index includes the run. Whoever reads the index
next folds in every marked run whose ``runs`` row exists; a marked run
without one whose lease is free (``lease.py``: its writer is dead) was never
committed, and a writer deletes its files (they were visible to raw readers,
never to ours). A marker with no lease at all was left by a fleetcpu older
than leases; for those alone the old rule stands (older than an hour: such a
writer published its files within milliseconds of the marker).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import lease
from .atomic import STALE_AFTER_S, fsync_dir
from .layout import Layout, is_run_id

__all__ = ["Pending", "abandoned", "begin", "end", "pending", "pending_paths", "roll_back"]


@dataclass(frozen=True)
class Pending:
    run_id: str
    age_s: float
    committed: bool


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
        committed = layout.run_file("runs", entry.name).exists()
        out.append(Pending(entry.name, age, committed))
    return sorted(out, key=lambda p: p.run_id)


def abandoned(layout: Layout, dead: set[str], older_than: float = STALE_AFTER_S) -> list[str]:
    """Runs that began committing, never wrote their ``runs`` row, and never will.

    ``dead``: runs whose lease was proven free (``lease.dead_runs``) before
    this call, so a ``runs`` row not there now will never appear.
    """
    out = []
    for p in pending(layout):
        if p.committed:
            continue
        if p.run_id in dead:
            if not layout.run_file("runs", p.run_id).exists():
                out.append(p.run_id)
        elif not lease.has_lease(layout, p.run_id) and p.age_s > older_than:
            out.append(p.run_id)  # written by a fleetcpu older than leases
    return out


def roll_back(layout: Layout, run_id: str, tables: tuple[str, ...]) -> None:
    for table in tables:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(layout.run_file(table, run_id))
    end(layout, run_id)


def pending_paths(layout: Layout) -> list[Path]:
    return [layout.pending_file(p.run_id) for p in pending(layout)]
