"""What the directories of a store hold: commit records where a run puts them, and the rest.

Why so strict: a directory is open to anyone (a copied file, a ``date=garbage``
folder, someone's own Parquet file). fleetcpu's readers start from the commit
records alone, and a record counts only at the path its run id computes, so
nothing dropped beside them changes an answer; ``fsck`` lists the rest.
A layout 1 run has one record, ``run-<id>.parquet``; a layout 2 run one per
committed part, ``run-<id>-00001.parquet`` and on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .layout import Layout, run_file_name, run_time

__all__ = [
    "commit_records",
    "committed_run_ids",
    "in_its_date_dir",
    "is_date_dir",
    "published_files",
    "records_of",
    "run_file_id",
]

_DATE_DIR = re.compile(r"^date=\d{4}-\d{2}-\d{2}$")


def is_date_dir(name: str) -> bool:
    return _DATE_DIR.match(name) is not None


def run_file_id(name: str) -> str | None:
    """The run id of a ``run-<id>.parquet`` or ``run-<id>-<part>.parquet`` name, else None."""
    found = run_file_name(name)
    return found[0] if found is not None else None


def in_its_date_dir(day: str, run_id: str) -> bool:
    return day == "date=" + run_time(run_id).strftime("%Y-%m-%d")


def _sorted(found: dict[str, list[tuple[int, Path]]]) -> dict[str, list[Path]]:
    return {run: [p for _, p in sorted(found[run])] for run in sorted(found)}


def commit_records(layout: Layout) -> dict[str, list[Path]]:
    """run id -> its commit records where its id puts them (one for a layout 1 run, one
    per committed part in layout 2), oldest run first, parts in order."""
    try:
        days = [e.name for e in os.scandir(layout.table_dir("runs")) if e.is_dir() and is_date_dir(e.name)]
    except FileNotFoundError:
        return {}
    found: dict[str, list[tuple[int, Path]]] = {}
    for day in days:
        for entry in os.scandir(layout.table_dir("runs") / day):
            named = run_file_name(entry.name)
            if named is None or not in_its_date_dir(day, named[0]) or not entry.is_file():
                continue
            found.setdefault(named[0], []).append((named[1] or 0, Path(entry.path)))
    return _sorted(found)


def records_of(layout: Layout, run_id: str) -> list[Path]:
    """One run's commit records, parts in order (none: nothing of it is committed)."""
    return published_files(layout, "runs", run_id)


def published_files(layout: Layout, table: str, run_id: str) -> list[Path]:
    """The visible files named after ``run_id`` in its date folder of ``table``
    (whole-run and parts), parts in order; listed or not in a record."""
    day = layout.run_file(table, run_id).parent
    try:
        entries = list(os.scandir(day))
    except FileNotFoundError:
        return []
    found: dict[str, list[tuple[int, Path]]] = {}
    for entry in entries:
        named = run_file_name(entry.name)
        if named is not None and named[0] == run_id and entry.is_file():
            found.setdefault(run_id, []).append((named[1] or 0, Path(entry.path)))
    return _sorted(found).get(run_id, [])


def committed_run_ids(layout: Layout) -> list[str]:
    """Every run with a commit record where its id puts it, oldest first."""
    return list(commit_records(layout))
