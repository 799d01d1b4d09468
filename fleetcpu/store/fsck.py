"""``fleetcpu fsck``: every committed run checked against its record, every other file named.

Why a command of its own: fleetcpu's readers open only the files commit
records list, so a stray file (someone's own Parquet file, a copy in the
wrong folder, a ``date=garbage`` directory) never changes fleetcpu's
answers, but it does change what pandas or DuckDB read from the same
directory. And a reader checks only the files a question needs, cheaply
(size and row count); ``fsck`` checks every file of every run, sha256
included. Its result is for scripts: damaged committed runs, exit 4;
otherwise stray files, exit 7; otherwise 0. Runs written before commit
records listed their files are *unverified*: trusted, named, not an error.
A layout 2 run is checked part by part; one killed after some parts is
*killed*: its committed parts are checked like any run's, its files no
record lists are stray (the next writer sweeps them), and it is named, not
an error.

What is not stray: the marker and lock, the index, journal markers and
leases of runs (live or awaiting the next writer's sweep), the temporaries
of a live run, and each committed run's listed files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FleetcpuError
from . import commit, lease, scan
from .layout import Layout, is_run_id, is_temporary, run_file_name
from .reader import read_file
from .schema import INDEX, RUN_TABLES, RUNS, TABLES

__all__ = ["Damage", "FsckReport", "fsck", "render"]


@dataclass(frozen=True)
class Damage:
    run_id: str
    path: Path
    problem: str


@dataclass
class FsckReport:
    runs: int = 0
    unverified: list[str] = field(default_factory=list)
    #: Layout 2 runs whose writer died after these many committed parts.
    killed: dict[str, int] = field(default_factory=dict)
    damaged: list[Damage] = field(default_factory=list)
    stray: list[Path] = field(default_factory=list)
    #: Files of runs whose writers still live (not judged).
    live: int = 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_run(
    layout: Layout, run_id: str, records: list[Path], live: set[str], report: FsckReport
) -> set[Path]:
    """The run's files as its records list them (damage noted); returns their paths."""
    owned = set(records)
    rows = []
    for record_path in records:
        try:
            rows += read_file(record_path, RUNS, columns=["status", "files", "part"]).to_pylist()
        except FleetcpuError as exc:
            report.damaged.append(Damage(run_id, record_path, exc.message))
            return owned
    try:
        record = commit.from_rows(layout, run_id, rows)
    except FleetcpuError as exc:
        report.damaged.append(Damage(run_id, records[-1], exc.message))
        return owned
    if not record.final and run_id not in live:
        report.killed[run_id] = record.parts
    if record.files is None:
        report.unverified.append(run_id)
        for spec in RUN_TABLES:
            path = layout.run_file(spec.name, run_id)
            if spec is RUNS or not path.exists():
                continue
            owned.add(path)
            try:
                read_file(path, spec, columns=[])
            except FleetcpuError as exc:
                report.damaged.append(Damage(run_id, path, exc.message))
        return owned
    for entry in record.files:
        path = layout.data / entry.path
        owned.add(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            report.damaged.append(Damage(run_id, path, f"missing (listed with {entry.rows} rows)"))
            continue
        if size != entry.bytes or _sha256(path) != entry.sha256:
            report.damaged.append(
                Damage(
                    run_id,
                    path,
                    f"{size} bytes, not the {entry.bytes} bytes and sha256 its "
                    "commit record lists: replaced or damaged",
                )
            )
            continue
        try:
            read_file(path, TABLES[entry.table], columns=[], rows=entry.rows)
        except FleetcpuError as exc:
            report.damaged.append(Damage(run_id, path, exc.message))
    return owned


def _is_run_bookkeeping(path: Path, layout: Layout, live: set[str]) -> bool:
    """Journal markers, leases, a live run's temporaries and not-yet-committed files."""
    parent = path.parent
    if parent in (layout.pending_dir, layout.lease_dir) and is_run_id(path.name):
        return True
    if parent == layout.index_dir and is_temporary(path.name):
        return True  # an index being replaced under the lock, or a dead writer's
    name = path.name
    if parent == layout.lease_dir:
        return name.removeprefix(".").removesuffix(".tmp") in live
    if is_temporary(name):
        # .run-<id>[-<part>].parquet.tmp, .run-<id>....parquet.<pid>.tmp, .run-<id>.parquet.room.tmp
        name = name[1 : name.index(".parquet") + len(".parquet")] if ".parquet" in name else ""
    named = run_file_name(name)
    return named is not None and named[0] in live


def fsck(layout: Layout) -> FsckReport:
    """Check the store at ``layout`` (read only: nothing is repaired or removed)."""
    report = FsckReport()
    # Runs alive now: taken before the walk, so a run committing meanwhile is not stray.
    live = {name for name in _lease_names(layout) if lease.is_live(layout, name)}
    owned: set[Path] = {layout.marker, layout.lock}
    committed = scan.commit_records(layout)
    for run_id, records in committed.items():
        report.runs += 1
        owned |= _check_run(layout, run_id, records, live, report)
    if layout.index_file.exists():
        owned.add(layout.index_file)
        try:
            read_file(layout.index_file, INDEX, columns=[])
        except FleetcpuError as exc:
            report.damaged.append(
                Damage("index", layout.index_file, f"{exc.message} (derived: delete it to rebuild)")
            )
    # Runs that committed during the walk: their files are theirs, not strays.
    committed_now = set(scan.committed_run_ids(layout)) - set(committed)
    for directory, _dirs, names in os.walk(layout.root):
        for name in sorted(names):
            path = Path(directory) / name
            if path in owned:
                continue
            if _is_run_bookkeeping(path, layout, live | committed_now):
                if any(run in name for run in live):
                    report.live += 1
                continue
            report.stray.append(path)
    report.stray.sort()
    return report


def _lease_names(layout: Layout) -> list[str]:
    try:
        return [e.name for e in os.scandir(layout.lease_dir) if is_run_id(e.name)]
    except FileNotFoundError:
        return []


def render(report: FsckReport) -> list[str]:
    """The report as lines: one per finding, then a summary line."""
    lines = [f"damaged     {d.path}: {d.problem} (run {d.run_id})" for d in report.damaged]
    lines += [f"stray       {p}: no committed run lists it" for p in report.stray]
    lines += [f"unverified  run {r}: committed before runs listed their files" for r in report.unverified]
    lines += [
        f"killed      run {r}: its writer died after {n} committed part(s); they are "
        "kept and read, the rest of the run is lost"
        for r, n in report.killed.items()
    ]
    verified = report.runs - len(report.unverified)
    lines.append(
        f"{report.runs} committed run(s): {verified} verified, {len(report.unverified)} "
        f"unverified; {len({d.run_id for d in report.damaged})} damaged, "
        f"{len(report.stray)} stray file(s)"
        + (f"; {report.live} file(s) of live runs not judged" if report.live else "")
    )
    return lines
