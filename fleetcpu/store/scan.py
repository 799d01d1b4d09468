"""What the directories of a store hold: commit records where a run puts them, and the rest.

Why so strict: a directory is open to anyone (a copied file, a ``date=garbage``
folder, someone's own Parquet file). fleetcpu's readers start from the commit
records alone, and a record counts only at the path its run id computes, so
nothing dropped beside them changes an answer; ``fsck`` lists the rest.
"""

from __future__ import annotations

import os
import re

from .layout import Layout, is_run_id, run_time

__all__ = ["committed_run_ids", "in_its_date_dir", "is_date_dir", "run_file_id"]

_DATE_DIR = re.compile(r"^date=\d{4}-\d{2}-\d{2}$")


def is_date_dir(name: str) -> bool:
    return _DATE_DIR.match(name) is not None


def run_file_id(name: str) -> str | None:
    """The run id of a ``run-<id>.parquet`` name, else None."""
    if name.startswith("run-") and name.endswith(".parquet") and is_run_id(name[4:-8]):
        return name[4:-8]
    return None


def in_its_date_dir(day: str, run_id: str) -> bool:
    return day == "date=" + run_time(run_id).strftime("%Y-%m-%d")


def committed_run_ids(layout: Layout) -> list[str]:
    """Every run whose commit record sits where its id puts it, oldest first."""
    try:
        days = [e.name for e in os.scandir(layout.table_dir("runs"))
                if e.is_dir() and is_date_dir(e.name)]
    except FileNotFoundError:
        return []
    out = []
    for day in days:
        for entry in os.scandir(layout.table_dir("runs") / day):
            run = run_file_id(entry.name)
            if run is not None and in_its_date_dir(day, run) and entry.is_file():
                out.append(run)
    return sorted(out)
