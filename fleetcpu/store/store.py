"""The store: a directory of immutable Parquet files that pandas, pyarrow and DuckDB read as is.

    STORE/fleetcpu-store.json                 marker: {"format": "fleetcpu.store", "layout": 2}
    STORE/.lock                               flock for the index's read-merge-replace
    STORE/v1/<table>/date=YYYY-MM-DD/run-<run_id>-<part>.parquet   a file per table per part
                                              (layout 1: run-<run_id>.parquet, one per run)
    STORE/v1/index/latest.parquet             latest state of every host (derived)
    STORE/v1/index/pending/<run_id>           journal of runs being committed

Why a marker: a mistyped ``--store`` must never scatter Parquet files into
someone's home directory or read a random directory as if it were a store.
Why readers trust only what ``runs`` records list: a record is written last,
after the files it lists, so a file no record lists belongs to a part (or a
layout 1 run) interrupted before its commit record. A layout 2 run whose
records all say ``partial`` is live while its lease is held, and ``killed``
once it is not: its committed parts are then all of it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__
from ..errors import (
    FleetcpuError,
    NoUsableDataError,
    StoreCorruptError,
    StoreForeignError,
    StoreLockedError,
    StoreWriteError,
    UnknownPoolError,
)
from ..outcome import ConnectionSpec
from ..probe.document import HostFacts, MachineInfo, MachineProbe
from . import commit, journal, lease, scan
from . import index as idx
from .atomic import locked, remove_temporaries, write_bytes, write_table
from .commit import KILLED, PARTIAL, CommitRecord, CommittedFile
from .layout import LOCK, MARKER, MARKER_FORMAT, Layout, is_temporary, rfc3339, run_file_name
from .parts import FLUSH_SECONDS
from .reader import empty, hosts_by_row_group, read_file, row_group_of_hosts
from .run_port import RunPort
from .run_writer import DEFAULT_FLUSH_EVERY, RunWriter
from .schema import (
    DETAIL_TABLES,
    HOSTS,
    INDEX,
    INDEX_ACCELS,
    LAYOUT,
    LAYOUTS,
    MACHINES,
    RUN_TABLES,
    RUNS,
    TABLES,
)
from .snapshot import (
    accel_slots,
    facts_and_connections,
    host_states,
    machine_lists,
    machine_probes,
    run_infos,
)
from .views import AccelLatest, HostSnapshot, HostState, RunInfo

__all__ = ["DEFAULT_LOCK_TIMEOUT", "Store"]

DEFAULT_LOCK_TIMEOUT = 30.0
_EMPTY_MSG = "store is empty: run fleetcpu collect or import first"


def _is_empty_dir(path: Path) -> bool:
    """Empty, or holding only what a concurrent creator of this store leaves first."""
    return all(
        name == LOCK or (name.startswith(f".{MARKER}.") and is_temporary(name)) for name in os.listdir(path)
    )


def _lock_timeout() -> float:
    text = os.environ.get("FLEETCPU_STORE_LOCK_TIMEOUT")
    return float(text) if text else DEFAULT_LOCK_TIMEOUT


class Store:
    """An opened store. Build it with ``Store.open`` or ``Store.create_or_open``."""

    def __init__(self, root: Path, *, lock_timeout: float | None = None) -> None:
        self.root = root
        self.layout = Layout(root)
        self.lock_timeout = _lock_timeout() if lock_timeout is None else lock_timeout
        #: The layout its marker names (``schema.LAYOUTS``), known once the marker is read.
        self.layout_version = LAYOUT
        #: Commit records read so far: immutable once written, so read once.
        self._records: dict[str, CommitRecord] = {}

    # -- opening ------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, lock_timeout: float | None = None) -> Store:
        """An existing store; a missing or empty directory is NoUsableDataError (exit 21)."""
        root = Path(path)
        if not root.is_dir() or _is_empty_dir(root):
            raise NoUsableDataError(f"{root}: {_EMPTY_MSG}")
        store = cls(root, lock_timeout=lock_timeout)
        store._check_marker()
        return store

    @classmethod
    def create_or_open(
        cls,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float | None = None,
        layout: int = LAYOUT,
    ) -> Store:
        """The store at ``path``, created when the directory is absent or empty.

        ``layout`` is for a store being created only: 1 keeps one file per table
        per run, so a fleetcpu older than parts can still write it (an existing
        store keeps the layout its marker names)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise StoreForeignError(f"{root}: not a directory, cannot hold a fleetcpu store")
        store = cls(root, lock_timeout=lock_timeout)
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not store.layout.marker.exists() and _is_empty_dir(root):
                marker = {
                    "format": MARKER_FORMAT,
                    "layout": layout,
                    "created": rfc3339(datetime.now(UTC)),
                    "fleetcpu_version": __version__,
                }
                # Exclusive: of two processes creating the store at once, one marker wins.
                write_bytes(store.layout.marker, (json.dumps(marker) + "\n").encode(), exclusive=True)
        except OSError as exc:
            reason = f"{exc.filename or root}: {exc.strerror or exc}"
            raise StoreWriteError(f"{reason}: cannot create the store", reason) from exc
        store._check_marker()
        return store

    def _check_marker(self) -> None:
        marker = self.layout.marker
        try:
            text = marker.read_text()
        except FileNotFoundError:
            raise StoreForeignError(
                f"{self.root}: not a fleetcpu store (no {MARKER}) and not empty; "
                "choose another --store directory"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreCorruptError(f"{marker}: unreadable ({exc})") from exc
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise StoreCorruptError(f"{marker}: not JSON ({exc})") from exc
        if not isinstance(value, dict) or value.get("format") != MARKER_FORMAT:
            found = value.get("format") if isinstance(value, dict) else None
            raise StoreForeignError(f"{marker}: not a fleetcpu store marker (format {found!r})")
        layout = value.get("layout")
        # (True == 1 in Python: a boolean is no layout.)
        if isinstance(layout, bool) or layout not in LAYOUTS:
            raise StoreForeignError(
                f"{marker}: store layout {layout!r}, this fleetcpu reads layouts "
                f"{' and '.join(map(str, LAYOUTS))}; a newer fleetcpu wrote it"
            )
        self.layout_version = int(layout)

    # -- writing ------------------------------------------------------------

    def run_writer(
        self,
        command: str,
        inventory: str | None = None,
        *,
        started_at: datetime | None = None,
        flush_every: int = DEFAULT_FLUSH_EVERY,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> RunWriter:
        """A streaming writer for one run; ``started_at`` (default now) times the run id."""
        port = RunPort(
            self.root,
            self.layout,
            self.layout_version,
            self._known_digests(),
            lambda run_id, wrote_hosts: self._index_run(run_id, wrote_hosts=wrote_hosts),
        )
        return RunWriter(
            port,
            command,
            inventory,
            started_at=started_at,
            flush_every=flush_every,
            flush_seconds=flush_seconds,
        )

    def _known_digests(self) -> dict[tuple[str, str], str]:
        """(host, cpu_digest) -> detail run, from the index: what a new run need not rewrite."""
        table = self._index_table()
        known: dict[tuple[str, str], str] = {}
        for prefix in ("", *(f"{a}_" for a in INDEX_ACCELS)):
            hosts = table["host"].to_pylist()
            digests = table[f"{prefix}cpu_digest"].to_pylist()
            runs = table[f"{prefix}detail_run"].to_pylist()
            for host, digest, run in zip(hosts, digests, runs, strict=True):
                if host is not None and digest is not None and run is not None:
                    known.setdefault((str(host), str(digest)), str(run))
        return known

    def _run_hosts(self, run_id: str, records: Sequence[Path] | None = None) -> pa.Table:
        """The index-relevant columns of one committed run's ``hosts`` rows (its committed
        parts' rows, for a run being written or killed after some parts)."""
        found = self.committed_files(HOSTS.name, run_id, records)
        if not found:
            return empty(HOSTS, idx.BASE)
        return pa.concat_tables(read_file(f.path, HOSTS, columns=idx.BASE, rows=f.rows) for f in found)

    # -- commit records -----------------------------------------------------

    def _record(self, run_id: str, paths: Sequence[Path] | None = None) -> CommitRecord:
        """The run's commit records as one (a record per part in layout 2). Kept once
        the run's last part is in: only then do its records stop changing."""
        record = self._records.get(run_id)
        if record is None:
            found = scan.records_of(self.layout, run_id) if paths is None else paths
            rows = [
                row for path in found for row in read_file(path, RUNS, columns=_RECORD_COLUMNS).to_pylist()
            ]
            record = commit.from_rows(self.layout, run_id, rows)
            if record.final:
                self._records[run_id] = record
        return record

    def committed_files(
        self, table: str, run_id: str, records: Sequence[Path] | None = None
    ) -> list[CommittedFile]:
        """The files of ``table`` that committed run ``run_id`` published (none: it wrote no
        rows there), checked against its commit records: a listed file that is missing or
        replaced is StoreCorruptError naming it. ``records``: its record files, if known."""
        return commit.checked(self.layout, self._record(run_id, records), table)

    def _index_run(self, run_id: str, *, wrote_hosts: bool) -> None:
        """Fold a just-committed run into the index; the journal covers a failure here."""
        with locked(self.layout.lock, self.lock_timeout):
            self._fold_pending_locked(extra=run_id if wrote_hosts else None)
            journal.end(self.layout, run_id)
            self._housekeeping_locked()

    def _fold_pending_locked(self, extra: str | None = None) -> pa.Table:
        """Under the lock: index := index + every committed pending run (+ ``extra``)."""
        current = self._read_index_file()
        if current is None:
            return self._rebuild_locked()
        runs = [p.run_id for p in journal.pending(self.layout) if p.foldable]
        if extra is not None and extra not in runs:
            runs.append(extra)
        if runs:
            rows = pa.concat_tables([self._run_hosts(r) for r in runs])
            current = idx.merge(current, rows)
            write_table(self.layout.index_file, INDEX, current)
            for run in runs:
                journal.end(self.layout, run)
        return current

    def _housekeeping_locked(self) -> None:
        """Clean up after dead writers, on whatever date they died; never a live one's files.

        A run is dead when its lease is free (``lease.py``): then its
        temporaries go, and every file it published that no commit record of
        it lists (all of them, if it committed nothing; a killed layout 2
        run keeps its committed parts). Index temporaries are written only
        under the lock we hold, so any left is a dead writer's.
        """
        tables = tuple(spec.name for spec in RUN_TABLES)
        dead = lease.dead_runs(self.layout)
        for run in journal.abandoned(self.layout, set(dead)):
            journal.roll_back(self.layout, run, tables)
        for run in dead:
            for path in self._unrecorded_files(run):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            for path in lease.temporaries_of(self.layout, run, tables):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            lease.drop(self.layout, run)
        remove_temporaries(self.layout.index_dir)

    def _unrecorded_files(self, run_id: str) -> list[Path]:
        """A dead run's published data files that none of its commit records lists (a
        part killed between its files and its record). Nothing, if its records cannot
        be read: damage is for ``fsck`` to name, never a reason to delete."""
        records = scan.records_of(self.layout, run_id)
        if not records:
            return []  # never committed: journal.abandoned rolls it back
        try:
            record = self._record(run_id, records)
        except FleetcpuError:
            return []
        if record.files is None:
            return []  # unverified (older fleetcpu): its one file per table is its own
        keep = {self.layout.data / f.path for f in record.files}
        return [
            path
            for spec in RUN_TABLES
            if spec is not RUNS
            for path in scan.published_files(self.layout, spec.name, run_id)
            if path not in keep
        ]

    # -- the index ----------------------------------------------------------

    def _read_index_file(self) -> pa.Table | None:
        path = self.layout.index_file
        if not path.exists():
            return None
        try:
            return read_file(path, INDEX)
        except StoreCorruptError as exc:
            raise StoreCorruptError(
                f"{exc.message} (the index is derived data: delete it and it is rebuilt)"
            ) from exc

    def _index_table(self) -> pa.Table:
        """The index as of now: the file, plus committed runs it has not folded in yet.

        A reader never waits and never fails for want of writing: when another
        process holds the lock, or the store cannot be written (read-only, full),
        the missing runs are merged in memory only, from committed data.
        """
        current = self._read_index_file()
        marked = journal.pending(self.layout)
        foldable = [p.run_id for p in marked if p.foldable]
        # Committed parts of runs being written: merged in memory only, never written
        # (their markers stay until their last part is folded in).
        live = [p.run_id for p in marked if p.parts and not p.foldable]
        if current is not None and not foldable and not live:
            return current
        table: pa.Table | None = None
        if foldable or current is None:
            try:
                with locked(self.layout.lock, 0):
                    table = self._fold_pending_locked()
            except (StoreLockedError, OSError):
                pass
        if table is None:
            if current is None:
                return self._rebuild()  # every committed part included
            table, live = current, live + foldable
        if not live:
            return table
        return idx.merge(table, pa.concat_tables([self._run_hosts(r) for r in live]))

    def reindex(self) -> int:
        """Rebuild the index from the ``hosts`` table; returns the number of hosts."""
        with locked(self.layout.lock, self.lock_timeout):
            return self._rebuild_locked().num_rows

    def _rebuild_locked(self) -> pa.Table:
        dead = set(lease.dead_runs(self.layout))
        for run in journal.abandoned(self.layout, dead):
            journal.roll_back(self.layout, run, tuple(spec.name for spec in RUN_TABLES))
        pending_before = {p.run_id for p in journal.pending(self.layout) if p.foldable}
        current = self._rebuild()
        write_table(self.layout.index_file, INDEX, current)
        # Only markers of runs committed before the scan began are surely in it.
        for run in pending_before:
            journal.end(self.layout, run)
        return current

    def _rebuild(self) -> pa.Table:
        """The index from the committed runs' ``hosts`` files, and nothing else: a stray
        file in the directory (``fleetcpu fsck`` lists them) never counts."""
        current: pa.Table | None = None
        records = scan.commit_records(self.layout)
        for _day, runs in itertools.groupby(records, key=lambda r: r[:8]):
            tables = [t for t in (self._run_hosts(r, records[r]) for r in runs) if t.num_rows]
            if tables:
                # Reduce day by day: memory stays at one day of rows plus the index.
                current = idx.merge(current, pa.concat_tables(tables))
        return current if current is not None else idx.empty_index()

    # -- reading ------------------------------------------------------------

    def runs(self) -> list[RunInfo]:
        """Every committed run, oldest first (a layout 2 run once, its parts summed).

        A run whose records all say ``partial`` is ``partial`` while its writer
        lives, and ``killed`` once its lease is free: then its committed parts
        are all of it.
        """
        infos = run_infos(self.table(RUNS.name))
        for i, info in enumerate(infos):
            if info.status != PARTIAL or lease.is_live(self.layout, info.run_id):
                continue
            # Not alive now, so its records are final: read them again (it may have
            # written its last part since the table above was read).
            again = run_infos(self.table(RUNS.name, runs=[info.run_id]))[0]
            infos[i] = again if again.status != PARTIAL else replace(again, status=KILLED)
        return infos

    def table(
        self, name: str, *, columns: Sequence[str] | None = None, runs: Iterable[str] | None = None
    ) -> pa.Table:
        """A whole table (or the given runs of it) through its current schema,
        committed runs only: the safe way to load history for analysis."""
        spec = TABLES.get(name)
        if spec is None or spec is INDEX:
            raise ValueError(f"no table {name!r}; tables: {', '.join(s.name for s in RUN_TABLES)}")
        records = scan.commit_records(self.layout)
        chosen = list(records) if runs is None else sorted(set(runs) & set(records))
        if spec is RUNS:  # a row per record: per run in layout 1, per part in layout 2
            parts = [read_file(path, spec, columns=columns) for r in chosen for path in records[r]]
        else:
            parts = [
                read_file(f.path, spec, columns=columns, rows=f.rows)
                for r in chosen
                for f in self.committed_files(name, r, records[r])
            ]
        if not parts:
            return empty(spec, columns)
        return pa.concat_tables(parts)

    def run_table(
        self,
        name: str,
        run_id: str,
        *,
        columns: Sequence[str] | None = None,
        hosts: Collection[str] | None = None,
    ) -> pa.Table:
        """One committed run's rows of table ``name`` (of ``hosts`` only: just the row
        groups holding them), read through its commit records.

        Why a method: a run is one file per table in layout 1 but a file per
        part in layout 2, so a caller that builds the file name itself reads
        nothing of a run written in parts. Empty when the run wrote no rows there.
        """
        spec = TABLES.get(name)
        if spec is None or spec in (INDEX, RUNS):
            raise ValueError(f"no run table {name!r}")
        files = self.committed_files(name, run_id)
        parts = [read_file(f.path, spec, columns=columns, hosts=hosts, rows=f.rows) for f in files]
        if not parts:
            return empty(spec, columns)
        return pa.concat_tables(parts)

    def runs_with(self, name: str) -> list[str]:
        """Committed runs that published files in table ``name``, oldest first.

        Listing one table's folder (a few files: adoptions) costs far less
        than reading every run's commit record; what is listed is then read
        through the records as always (``table(name, runs=...)``).
        """
        found: set[str] = set()
        try:
            days = [e for e in os.scandir(self.layout.table_dir(name)) if e.is_dir()]
        except FileNotFoundError:
            return []
        for day in days:
            for entry in os.scandir(day.path):
                run = scan.run_file_id(entry.name)  # a whole run's file, or a part's
                if run is not None:
                    found.add(run)
        committed = set(scan.committed_run_ids(self.layout))
        return sorted(found & committed)

    def latest(self, pool: str | None = None) -> list[HostState]:
        """The latest record of every host (of ``pool``), sorted by pool then host."""
        index = self._index_table()
        if pool is not None:
            # Filtered in Arrow: one pool of a 100,000-host fleet builds only its own records.
            chosen = index.filter(pc.equal(index["pool"], pa.scalar(pool, pa.string())))
            if chosen.num_rows == 0:
                known = sorted(str(p) for p in pc.unique(index["pool"]).to_pylist())
                raise UnknownPoolError(
                    f"unknown pool {pool!r}; pools in the store: {', '.join(known) or 'none'}"
                )
            index = chosen
        # Sorted in Arrow: a key function per record costs more than building it at 100,000.
        index = index.sort_by([("pool", "ascending"), ("host", "ascending")])
        return host_states(index)

    def pools(self) -> list[str]:
        return sorted({str(p) for p in self._index_table()["pool"].to_pylist()})

    def snapshots(self, hosts: Iterable[str], accel: str) -> dict[str, HostSnapshot]:
        """Each host's latest successful data under ``accel``; hosts without any are absent.

        Reads only what it needs: the ``hosts`` rows of each distinct successful
        run, and the detail rows of one host per distinct ``cpu_digest`` (equal
        digests mean equal detail rows, so hosts of one CPU generation share
        one frozen ``MachineProbe`` set). A 10,000-host pool of a few CPU
        types costs a few hosts' worth of records.
        """
        chosen, sample = self._sampled(hosts, accel)
        return self._snapshots(chosen, sample, accel)

    def machine_lists(self, hosts: Iterable[str], accel: str) -> dict[str, tuple[MachineInfo, ...] | None]:
        """Each host's QEMU machine list (``hosts.qemu_machines``) at its latest successful
        ``accel`` run; None where that row recorded none. Reads that one column only:
        ``status``'s machine-type lifecycle needs every member's list, not its CPU data."""
        index = self._index_table()
        wanted = pa.array(sorted(set(hosts)), pa.string())
        index = index.filter(pc.is_in(index["host"], value_set=wanted))
        by_run: dict[str, set[str]] = {}
        for host, slot in zip(index["host"].to_pylist(), accel_slots(index, accel), strict=True):
            if slot is not None:
                by_run.setdefault(slot.run, set()).add(str(host))
        out: dict[str, tuple[MachineInfo, ...] | None] = {}
        for run, members in sorted(by_run.items()):
            for f in self.committed_files(HOSTS.name, run):
                table = read_file(
                    f.path, HOSTS, columns=["host", "qemu_machines"], hosts=members, rows=f.rows
                )
                names = [str(h) for h in table["host"].to_pylist()]
                out.update(zip(names, machine_lists(table["qemu_machines"]), strict=True))
        return out

    def distinct_snapshots(self, hosts: Iterable[str], accel: str) -> list[HostSnapshot]:
        """One snapshot per distinct CPU data (``cpu_digest``) among ``hosts``, sorted by host.

        For what depends on the CPU data alone (``status``'s headroom): a
        10,000-host pool of 144 CPUs costs 144 snapshots, of the holders
        ``snapshots`` would sample anyway, chosen where they share row groups.
        Each is one holder's whole snapshot, its facts that host's own.
        """
        chosen, sample = self._sampled(hosts, accel)
        holders = {host for host, _run in sample.values()}
        mine = {host: slot for host, slot in chosen.items() if host in holders}
        return [snap for _host, snap in sorted(self._snapshots(mine, sample, accel).items())]

    def _sampled(
        self, hosts: Iterable[str], accel: str
    ) -> tuple[dict[str, AccelLatest], dict[str, tuple[str, str]]]:
        """``hosts``' slots of ``accel`` with CPU data, and one (host, detail run) per content key."""
        if accel not in INDEX_ACCELS:
            raise ValueError(f"accel must be one of {', '.join(INDEX_ACCELS)}, not {accel!r}")
        index = self._index_table()
        wanted = pa.array(sorted(set(hosts)), pa.string())
        index = index.filter(pc.is_in(index["host"], value_set=wanted))
        # Only the slot of ``accel`` is needed: no whole HostState per host.
        chosen = {
            str(host): slot
            for host, slot in zip(index["host"].to_pylist(), accel_slots(index, accel), strict=True)
            if slot is not None and slot.detail_run is not None
        }
        holders: dict[str, list[tuple[str, str]]] = {}  # content key -> (host, detail run)s
        for host, slot in chosen.items():
            holders.setdefault(_content_key(host, slot.cpu_digest), []).append((host, str(slot.detail_run)))
        return chosen, self._samples(holders)

    def _snapshots(
        self, chosen: dict[str, AccelLatest], sample: dict[str, tuple[str, str]], accel: str
    ) -> dict[str, HostSnapshot]:
        """The snapshots of ``chosen``: their ``hosts`` rows, and the detail rows of the
        ``sample`` holders of their content keys (shared by every host of a key)."""
        by_run: dict[str, set[str]] = {}
        for host, slot in chosen.items():
            by_run.setdefault(slot.run, set()).add(host)
        by_detail: dict[str, set[str]] = {}
        for host, run in sample.values():
            by_detail.setdefault(run, set()).add(host)

        host_rows: dict[str, tuple[HostFacts, ConnectionSpec]] = {}
        qemu: dict[str, tuple[str | None, ...]] = {}
        listed: dict[str, tuple[MachineInfo, ...] | None] = {}
        for run, members in sorted(by_run.items()):
            found = self.committed_files(HOSTS.name, run)
            if not found:
                raise StoreCorruptError(
                    f"{self.layout.run_file(HOSTS.name, run)}: missing although the index points there"
                )
            table = pa.concat_tables(
                read_file(f.path, HOSTS, columns=_SNAPSHOT_COLUMNS, hosts=members, rows=f.rows) for f in found
            )
            host_rows.update(facts_and_connections(table))
            names = [str(h) for h in table["host"].to_pylist()]
            qemu.update(
                zip(names, zip(*(table[n].to_pylist() for n in _QEMU_COLUMNS), strict=True), strict=True)
            )
            listed.update(zip(names, machine_lists(table["qemu_machines"]), strict=True))

        detail: dict[str, dict[str, MachineProbe]] = {}
        for run, members in sorted(by_detail.items()):
            parts = self._parts_holding(run, members)
            tables = []
            for spec in DETAIL_TABLES:
                found = [
                    f
                    for f in self.committed_files(spec.name, run)
                    if parts is None or _part_of(f.path) in parts
                ]
                tables.append(
                    pa.concat_tables(read_file(f.path, spec, hosts=members, rows=f.rows) for f in found)
                    if found
                    else empty(spec)
                )
            detail.update(machine_probes(*tables))
        shared = {
            key: MappingProxyType(detail[host]) for key, (host, _run) in sample.items() if host in detail
        }

        out: dict[str, HostSnapshot] = {}
        for host in sorted(chosen):
            slot = chosen[host]
            row = host_rows.get(host)
            machines = shared.get(_content_key(host, slot.cpu_digest))
            if row is None:
                raise StoreCorruptError(
                    f"{self.layout.run_file(HOSTS.name, slot.run)}: host "
                    f"{host!r} missing although the index points there"
                )
            if machines is None:
                holder, run = sample[_content_key(host, slot.cpu_digest)]
                raise StoreCorruptError(
                    f"{self.layout.run_file('machines', run)}: host "
                    f"{holder!r} missing although the index points there"
                )
            facts, conn = row
            pool, qemu_version, qemu_package, qemu_binary, probe_version = qemu[host]
            out[host] = HostSnapshot(
                host=host,
                pool=str(pool),
                accel=accel,
                run=slot.run,
                collected_at=slot.collected_at,
                detail_run=str(slot.detail_run),
                cpu_digest=str(slot.cpu_digest),
                facts=facts,
                qemu_version=qemu_version,
                qemu_package=qemu_package,
                qemu_binary=qemu_binary,
                probe_version=probe_version,
                connection=conn,
                machines=machines,
                qemu_machines=listed.get(host),
            )
        return out

    def _parts_holding(self, run: str, members: set[str]) -> set[int | None] | None:
        """The parts of ``run`` whose detail files hold ``members`` (None: read them all).

        A first run of 10,000 hosts is ~150 parts; a host's detail rows are all
        in its own part, so the other three tables need only the parts that the
        small ``machines`` files (their host dictionaries) say hold a member.
        """
        found = self.committed_files(MACHINES.name, run)
        if len(found) < 2:
            return None
        return {
            _part_of(f.path) for f in found if set().union(*hosts_by_row_group(f.path, MACHINES)) & members
        }

    def _samples(self, holders: dict[str, list[tuple[str, str]]]) -> dict[str, tuple[str, str]]:
        """One (host, detail run) per content key, chosen so that their rows share few row groups.

        Any holder of a digest has the same rows, but the first holder of each
        of 150 digests in a first run of 10,000 hosts sits in most of that
        run's 150 row groups: reading them decodes most of the file. Choosing
        greedily the row group that holds the most digests still missing
        reads a handful instead (row groups as the ``machines`` file has them:
        the writer flushes every table at once, so the others follow).
        """
        if all(len(found) == 1 for found in holders.values()):
            return {key: found[0] for key, found in holders.items()}
        where: dict[str, dict[str, tuple[int, int]]] = {}  # run -> host -> (part, row group)
        for run in sorted({run for found in holders.values() for _, run in found}):
            where[run] = {}
            for part, f in enumerate(self.committed_files("machines", run)):
                for host, group in row_group_of_hosts(f.path, TABLES["machines"], rows=f.rows).items():
                    where[run].setdefault(host, (part, group))
        # (run, (part, row group)) -> key -> host
        bins: dict[tuple[str, tuple[int, int]], dict[str, str]] = {}
        for key, found in holders.items():
            for host, run in found[:_HOLDERS]:
                bins.setdefault((run, where[run].get(host, (-1, -1))), {}).setdefault(key, host)
        order = sorted(bins)
        sample: dict[str, tuple[str, str]] = {}
        while len(sample) < len(holders):
            best = max(order, key=lambda b: sum(k not in sample for k in bins[b]))
            for key, host in bins[best].items():
                sample.setdefault(key, (host, best[0]))
            order.remove(best)
        return sample

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"


#: What ``_record`` reads of each commit record.
_RECORD_COLUMNS = ["status", "files", "part"]

#: The ``hosts`` columns a snapshot needs (facts, QEMU, connection), not the evidence.
_SNAPSHOT_COLUMNS = [
    "host",
    "pool",
    "qemu_version",
    "qemu_package",
    "qemu_binary",
    "hostname",
    "kernel_release",
    "cpu_vendor",
    "cpu_family",
    "cpu_model",
    "cpu_stepping",
    "cpu_model_name",
    "microcode",
    "kvm_module",
    "kvm_nested",
    "dev_kvm",
    "synthetic",
    "probe_version",
    "conn_transport",
    "conn_address",
    "conn_port",
    "conn_user",
    "conn_python",
    "conn_qemu",
    "qemu_machines",
]


#: Holders of one digest considered when choosing which to read: enough to find shared
#: row groups, few enough that 100,000 holders cost nothing.
_HOLDERS = 256

#: Snapshot fields taken from the ``hosts`` row as they are (strings or None).
_QEMU_COLUMNS = ("pool", "qemu_version", "qemu_package", "qemu_binary", "probe_version")


def _part_of(path: Path) -> int | None:
    named = run_file_name(path.name)
    return named[1] if named is not None else None


def _content_key(host: str, digest: str | None) -> str:
    """Hosts with one digest share detail content; without a digest, a host is its own."""
    return f"sha256:{digest}" if digest is not None else f"host:{host}"
