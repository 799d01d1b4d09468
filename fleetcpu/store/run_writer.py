"""Streaming one run into the store: ``with store.run_writer(...) as w: w.add(outcome)``.

Why streaming: a 10,000-host run must not hold 10,000 probe documents (each
tens of KB of models and features) in memory. ``add`` converts an outcome to
rows at once and buffers them; every ``flush_every`` hosts (or 20,000 detail
rows) the buffers go out. Memory stays bounded by 20,000 detail rows.

Where a flush goes depends on the store's layout. Layout 2 (new stores): each
host-count flush is a committed part (``parts.py``): whole files and their own
commit record, so a SIGKILL loses only what came after the last part (a
20,000-row spill is a row group of the part being written); and a part is
also written once the oldest buffered host has waited ``flush_seconds`` (5 s;
checked at every ``add`` and by the collector's tick, ``flush_due``), so a
kill costs seconds even when hosts arrive slowly. Layout 1 (stores shared
with older fleetcpus): one Parquet row group per table into files open under
hidden temporary names, all committed at the end, as before.

Why ``__exit__`` commits even on an exception: a Ctrl-C (KeyboardInterrupt,
or CancelledError in the collector's event loop) at host 9,000 must not lose
8,999 results. The run is recorded with ``status = interrupted`` and the
exception goes on propagating.

Commit order (layout 1; each part of layout 2 the same, the marker before the
first part): close every file (footer, fsync), drop a journal marker,
publish the detail tables, then ``hosts``, then the ``runs`` row, which is
the commit record and lists every file with its rows, bytes and sha256 (so a
reader can tell a missing or swapped file from "no rows"); then the index.
``add`` is synchronous and cheap (a row group flush of a few hundred hosts
takes tens of ms), so the collector may call it from its event loop.

Test-only hooks (never set them in production): ``FLEETCPU_TEST_HOOK_KILL_AFTER=<n>``
SIGKILLs the process once ``n`` host rows have been flushed (layout 1: into a
still-open file, i.e. mid-write; layout 2: into committed parts, the last part
aside); ``FLEETCPU_TEST_HOOK_KILL_AT=before-runs|before-index`` SIGKILLs it
just before the (last part's) commit record, or just after it, and
``before-record-<n>`` just before part n's record (layout 2: its files published).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import UTC, datetime
from types import TracebackType

import pyarrow as pa

from .. import __version__
from ..errors import StoreLockedError, StoreWriteError
from ..outcome import HostOutcome
from ..probe.document import MachineProbe
from . import journal
from .atomic import ParquetSink, write_table
from .commit import PARTIAL
from .layout import Layout, new_run_id, utc
from .lease import Lease
from .outcome_rows import Row, cpu_digest, detail_rows, host_row, unique_machines
from .parts import FLUSH_SECONDS, Counts, OpenPart, RunFacts
from .run_port import RunPort
from .schema import ADOPTIONS, COMPLIANCE, DETAIL_TABLES, HEADROOM, HOSTS, RUNS, VERIFY, TableSpec

__all__ = ["DEFAULT_FLUSH_EVERY", "DEFAULT_FLUSH_ROWS", "ROOM_BYTES", "RunWriter"]

DEFAULT_FLUSH_EVERY = 500
#: Also flush once this many detail rows wait: a first run (or a fleet-wide QEMU
#: update) gives every host ~300 new rows, and 500 hosts of them as Python
#: dicts held ~150 MiB; 20,000 rows keep a collect of any size near 100 MiB.
DEFAULT_FLUSH_ROWS = 20_000
#: What ``check_writable`` writes and fsyncs before a run contacts any host: more
#: than a first batch of 500 hosts takes on disk (~0.4 KiB each, first run).
ROOM_BYTES = 1 << 20
_HOOK_KILL_AFTER = "FLEETCPU_TEST_HOOK_KILL_AFTER"
_HOOK_KILL_AT = "FLEETCPU_TEST_HOOK_KILL_AT"
_flushed_in_process = 0


def _hook_kill_at(point: str) -> None:
    if os.environ.get(_HOOK_KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)


#: Tables a run streams rows into, in publishing order (the commit record comes after).
_BUFFERED = (*DETAIL_TABLES, HOSTS, VERIFY, ADOPTIONS, COMPLIANCE, HEADROOM)


def _prove_writable(layout: Layout, run_id: str, room: int) -> None:
    """OSError unless ``run_id`` could store a first batch in ``layout`` (see
    ``RunWriter.check_writable``)."""
    for spec in (*_BUFFERED, RUNS):
        folder = layout.table_dir(spec.name)
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(20, "not a folder (a store table must be one)", str(folder))
    os.close(os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644))
    day = layout.run_file(HOSTS.name, run_id).parent
    day.mkdir(parents=True, exist_ok=True)
    free = os.statvfs(day)
    if free.f_bavail * free.f_frsize < room:
        raise OSError(
            28,
            f"No space left on device (no room for a first batch: "
            f"{free.f_bavail * free.f_frsize // 1024} KiB free, "
            f"{room // 1024} KiB needed)",
            str(day),
        )
    probe = day / f".run-{run_id}.parquet.room.tmp"
    try:
        with open(probe, "wb") as f:
            f.write(bytes(room))
            f.flush()
            os.fsync(f.fileno())
    finally:
        with contextlib.suppress(FileNotFoundError):
            probe.unlink()


class RunWriter:
    """One run being written. Not thread-safe; one ``add`` per host."""

    def __init__(
        self,
        port: RunPort,
        command: str,
        inventory: str | None,
        *,
        started_at: datetime | None = None,
        flush_every: int = DEFAULT_FLUSH_EVERY,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        if flush_seconds <= 0:
            raise ValueError("flush_seconds must be positive")
        self._port = port
        self.command = command
        self.inventory = inventory
        self.started_at = utc(started_at) if started_at is not None else datetime.now(UTC)
        self.run_id = new_run_id(self.started_at)
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.hosts_ok = 0
        self.hosts_failed = 0
        self.hosts_detail = 0
        self.status: str | None = None  # set at commit: complete | interrupted
        #: (host, cpu_digest) -> the committed run already holding that data.
        self._known = port.known_digests
        self._seen: set[str] = set()
        self._digests: dict[int, tuple[tuple[MachineProbe, ...], tuple[MachineProbe, ...], str | None]] = {}
        self._buffers: dict[str, list[Row]] = {spec.name: [] for spec in _BUFFERED}
        self._buffered_hosts = 0
        self._buffered_rows = 0
        self._sinks: dict[str, ParquetSink] = {}
        self._closed = False
        #: Why writing stopped, once it has: every later ``add`` says the same.
        self._failure: StoreWriteError | None = None
        #: The commit record is written: whatever fails after, the run is stored.
        self.committed = False
        #: Layout 2: every flush commits a part (``parts.py``); layout 1: one file per table.
        self._in_parts = port.layout_version >= 2
        #: Parts committed so far, and the hosts in them: what no kill can take back.
        self.parts = 0
        self.hosts_committed = 0
        self._part_counts = Counts()
        #: The part being written (layout 2), once rows were spilled into it.
        self._open: OpenPart | None = None
        #: When the oldest buffered host was added (monotonic): the 5 s rule's clock.
        self._oldest: float | None = None
        self._wrote_hosts = False
        # Held from before the first temporary until after the last: what tells a
        # sweeper this run is alive, however long it goes without touching its files.
        try:
            self._lease: Lease | None = Lease.take(port.layout, self.run_id)
        except OSError as exc:
            raise self._write_error(exc) from exc
        kill_after = os.environ.get(_HOOK_KILL_AFTER)
        self._kill_after = int(kill_after) if kill_after else None

    # -- failures -----------------------------------------------------------

    def _write_error(self, exc: BaseException) -> StoreWriteError:
        if isinstance(exc, OSError) and exc.strerror:
            reason = f"{exc.filename or self._port.root}: {exc.strerror}"
        else:
            reason = f"{self._port.root}: {exc}"
        if self.committed:
            state = "is stored (its commit record is written)"
        elif self.hosts_committed:
            state = (
                f"is stored in part: its {self.parts} committed part(s) hold "
                f"{self.hosts_committed} host(s), the rest was not stored"
            )
        else:
            state = "was not stored"
        return StoreWriteError(f"{reason}: run {self.run_id} {state}", reason)

    def check_writable(self, room: int = ROOM_BYTES) -> None:
        """Prove, before any host is contacted, that this run can be stored: the table
        folders are folders, the lock opens, and ``room`` bytes can really be written
        and fsynced (a read-only mount, a full disk or a quota fails here, not after
        10,000 probes). The probe file is one of this run's temporaries, so a kill
        here leaves nothing a sweeper would not remove."""
        try:
            _prove_writable(self._port.layout, self.run_id, room)
        except OSError as exc:
            error = self._write_error(exc)
            self.discard()
            raise error from exc

    # -- adding -------------------------------------------------------------

    def _check_open(self) -> None:
        """Why a closed writer takes no rows. After a write failure that is the failure
        itself: the collector's results keep arriving for a moment after the writer gave
        up (the 1 s tick can fail a part while hosts finish), and each must be the same
        StoreWriteError, not an internal error."""
        if self._failure is not None:
            raise StoreWriteError(self._failure.message, self._failure.reason)
        if self._closed:
            raise RuntimeError(f"run {self.run_id} is already committed")

    def add(self, outcome: HostOutcome) -> None:
        self._check_open()
        if outcome.host in self._seen:
            raise ValueError(f"host {outcome.host!r} added twice to run {self.run_id}")
        doc = outcome.document
        machines, digest = self._digest(doc.machine_types if doc is not None else ())
        detail_run = None if digest is None else self._known.get((outcome.host, digest))
        new_detail = digest is not None and detail_run is None
        if new_detail:
            detail_run = self.run_id
        # Built (and so validated) before any buffer changes: a bad outcome leaves no trace.
        row = host_row(outcome, self.run_id, digest, detail_run)
        if new_detail:
            self.hosts_detail += 1
            for table, rows in detail_rows(self.run_id, outcome.host, machines).by_table().items():
                self._buffers[table].extend(rows)
                self._buffered_rows += len(rows)
        self._buffers[HOSTS.name].append(row)
        self._seen.add(outcome.host)
        self._count(outcome.ok, detail=new_detail)
        if self._buffered_hosts >= self.flush_every:
            self._flush_or_fail()
        elif self._buffered_rows >= DEFAULT_FLUSH_ROWS:
            # Memory's bound, not durability's: layout 2 spills a row group into the
            # part being written (parts are cut by hosts and time, ``parts.OpenPart``).
            self._flush_or_fail(spill=self._in_parts)
        else:
            self.flush_due()

    def _count(self, ok: bool, *, detail: bool = False) -> None:
        if ok:
            self.hosts_ok += 1
        else:
            self.hosts_failed += 1
        c = self._part_counts
        self._part_counts = Counts(c.ok + ok, c.failed + (not ok), c.detail + detail)
        if self._buffered_hosts == 0:
            self._oldest = time.monotonic()
        self._buffered_hosts += 1

    def flush_due(self) -> None:
        """Layout 2: commit a part once the oldest buffered host has waited
        ``flush_seconds``. ``add`` calls it; so does the collector every second, so
        that a kill loses seconds even when hosts take minutes each."""
        if (
            self._in_parts
            and not self._closed
            and self._oldest is not None
            and time.monotonic() - self._oldest >= self.flush_seconds
        ):
            self._flush_or_fail()

    def _flush_or_fail(self, *, spill: bool = False) -> None:
        """``flush`` (or ``_spill``); a failure to write discards what is not committed
        (nothing half-written stays) and is StoreWriteError saying what is stored."""
        try:
            if spill:
                self._spill()
            else:
                self.flush()
        except (OSError, pa.ArrowException) as exc:
            error = self._failure = self._write_error(exc)
            self.discard()
            raise error from exc

    def _digest(self, machine_types: tuple[MachineProbe, ...]) -> tuple[tuple[MachineProbe, ...], str | None]:
        """``cpu_digest`` once per records object: hosts of one CPU share theirs (``probe.document_decoder``).

        Keyed by identity, and the records are held, so an id is never reused
        while its entry lives; equal-but-distinct records are digested again.
        """
        hit = self._digests.get(id(machine_types))
        if hit is not None and hit[0] is machine_types:
            return hit[1], hit[2]
        machines = unique_machines(machine_types)
        digest = cpu_digest(machines)
        if len(self._digests) >= 64:
            self._digests.clear()
        self._digests[id(machine_types)] = (machine_types, machines, digest)
        return machines, digest

    def add_verify(self, row: Row, *, passed: bool) -> None:
        """One host's ``fleetcpu verify`` result: a ``verify`` row, never a ``hosts`` row.

        A verify run starts a CPU model on the host, it does not probe it, so
        it must not become the host's latest record (which the baseline
        reads); the run's ``hosts_ok``/``hosts_failed`` count passed and
        failed hosts. ``row`` holds every column but ``run_id`` (the
        writer's); it is checked against the schema here, so a bad row fails
        its caller and leaves no trace in the buffers.
        """
        self._check_open()
        host = str(row.get("host"))
        if host in self._seen:
            raise ValueError(f"host {host!r} added twice to run {self.run_id}")
        row = {**row, "run_id": self.run_id}
        pa.Table.from_pylist([row], schema=VERIFY.schema)
        self._buffers[VERIFY.name].append(row)
        self._seen.add(host)
        self._count(passed)
        if self._buffered_hosts >= self.flush_every:
            self._flush_or_fail()
        else:
            self.flush_due()

    def add_rows(self, spec: TableSpec, rows: list[Row]) -> None:
        """Rows of a table a command above the store owns (``adoptions``, ``compliance``).

        Each row holds every column but ``run_id`` (the writer's); they are
        checked against the schema here, so a bad row fails its caller and
        leaves no trace. They commit with the run, like its ``hosts`` rows.
        """
        self._check_open()
        if spec.name not in self._buffers or spec in (*DETAIL_TABLES, HOSTS, VERIFY):
            raise ValueError(f"table {spec.name!r} is not written with add_rows")
        rows = [
            {**row, "run_id": self.run_id} if "run_id" in spec.schema.names else dict(row) for row in rows
        ]
        pa.Table.from_pylist(rows, schema=spec.schema)
        self._buffers[spec.name].extend(rows)
        self._buffered_rows += len(rows)

    def flush(self) -> None:
        """Write the buffered rows: layout 2, as a committed part; layout 1, as one row
        group per table of the run's open files."""
        global _flushed_in_process  # noqa: PLW0603 - a process-wide counter for the test hook
        if self._in_parts:
            self._write_part(PARTIAL)
            return
        for spec in _BUFFERED:
            rows = self._buffers[spec.name]
            if not rows:
                continue
            self._sink(spec).write(pa.Table.from_pylist(rows, schema=spec.schema))
            rows.clear()
        _flushed_in_process += self._buffered_hosts
        self._buffered_hosts = 0
        self._buffered_rows = 0
        if self._kill_after is not None and _flushed_in_process >= self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def _spill(self) -> None:
        """Layout 2: the buffered rows as a row group of the part being written."""
        if self._open is None:
            self._open = OpenPart(self._port.layout, self.run_id, self.parts + 1)
        for spec in _BUFFERED:
            rows = self._buffers[spec.name]
            if rows:
                self._open.append(spec, rows)
                self._wrote_hosts = self._wrote_hosts or spec is HOSTS
                rows.clear()
        self._buffered_rows = 0

    def _write_part(self, status: str) -> None:
        """Commit the part being written (``_buffered_hosts`` hosts: spilled or still
        buffered); ``status`` other than partial makes it the last (written even without
        rows: it says how the run ended)."""
        global _flushed_in_process  # noqa: PLW0603 - a process-wide counter for the test hook
        if status == PARTIAL and not self._buffered_hosts:
            return
        layout = self._port.layout
        part = self.parts + 1
        self._spill()
        assert self._open is not None
        if part == 1:
            journal.begin(layout, self.run_id)  # from now on the index owes this run
        point = "before-runs" if status != PARTIAL else f"before-record-{part}"
        try:
            self._open.commit(
                RunFacts(self.run_id, self.started_at, self.command, self.inventory),
                status,
                self._part_counts,
                [spec.name for spec in _BUFFERED],
                before_record=lambda: _hook_kill_at(point),
            )
        finally:
            self._open = None
        self.parts = part
        self.hosts_committed += self._buffered_hosts
        self._part_counts = Counts()
        self._oldest = None
        if status != PARTIAL:
            return
        _flushed_in_process += self._buffered_hosts
        self._buffered_hosts = self._buffered_rows = 0
        if self._kill_after is not None and _flushed_in_process >= self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def _sink(self, spec: TableSpec) -> ParquetSink:
        sink = self._sinks.get(spec.name)
        if sink is None:
            final = self._port.layout.run_file(spec.name, self.run_id)
            sink = self._sinks[spec.name] = ParquetSink(final, spec)
        return sink

    # -- committing ---------------------------------------------------------

    @property
    def hosts(self) -> int:
        return self.hosts_ok + self.hosts_failed

    def commit(self, status: str = "complete") -> None:
        """Publish the run; after this returns it is in ``runs`` and in the index."""
        if self._closed:
            return
        try:
            self._commit(status)
        finally:
            self._release()

    def _release(self) -> None:
        """Drop the lease: from now on a sweeper may judge what this run left."""
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _commit(self, status: str) -> None:
        if self._in_parts:
            self._commit_last_part(status)
            return
        files = []
        try:
            self.flush()
            for spec in _BUFFERED:
                sink = self._sinks.get(spec.name)
                if sink is None:
                    continue
                sink.close()
                size, sha = sink.digest()
                files.append(
                    {
                        "table": spec.name,
                        "rows": sink.rows,
                        "bytes": size,
                        "sha256": sha,
                        "path": sink.final.relative_to(self._port.layout.data).as_posix(),
                    }
                )
        except (OSError, pa.ArrowException) as exc:
            error = self._write_error(exc)
            self.discard()
            raise error from exc
        except BaseException:
            self.discard()
            raise
        self._closed = True
        self.status = status
        try:
            self._publish(status, files)
        except (OSError, pa.ArrowException) as exc:
            if not self.committed:
                self._unpublish()
            raise self._write_error(exc) from exc
        except StoreLockedError as exc:
            # After the commit record: the run is stored, only the index waits (journal).
            raise StoreLockedError(
                f"{exc.message}; run {self.run_id} is stored (its commit "
                "record is written), the next fleetcpu command folds it "
                "into the index"
            ) from exc

    def _commit_last_part(self, status: str) -> None:
        self._closed = True
        self.status = status
        try:
            self._write_part(status)
        except (OSError, pa.ArrowException) as exc:
            # The last spill can fail before the part's commit takes charge of its files
            # (a full disk while writing a row group): what is open is dropped here.
            error = self._write_error(exc)
            self.discard()
            raise error from exc
        except BaseException:
            self.discard()
            raise
        self._buffered_hosts = self._buffered_rows = 0
        self.committed = True
        _hook_kill_at("before-index")
        try:
            self._port.index_run(self.run_id, self._wrote_hosts)
        except (OSError, pa.ArrowException) as exc:
            raise self._write_error(exc) from exc
        except StoreLockedError as exc:
            raise StoreLockedError(
                f"{exc.message}; run {self.run_id} is stored (its commit "
                "record is written), the next fleetcpu command folds it "
                "into the index"
            ) from exc

    def _publish(self, status: str, files: list[dict[str, object]]) -> None:
        layout = self._port.layout
        journal.begin(layout, self.run_id)
        for spec in _BUFFERED:  # hosts after the rows its detail_run points at
            if spec.name in self._sinks:
                self._sinks[spec.name].publish()
        _hook_kill_at("before-runs")
        finished = datetime.now(UTC)
        write_table(
            layout.run_file(RUNS.name, self.run_id),
            RUNS,
            pa.Table.from_pylist(
                [
                    {
                        "run_id": self.run_id,
                        "started_at": self.started_at,
                        "finished_at": max(finished, self.started_at),
                        "command": self.command,
                        "inventory": self.inventory,
                        "fleetcpu_version": __version__,
                        "status": status,
                        "hosts_ok": self.hosts_ok,
                        "hosts_failed": self.hosts_failed,
                        "hosts_detail": self.hosts_detail,
                        "files": files,
                    }
                ],
                schema=RUNS.schema,
            ),
        )
        self.committed = True
        _hook_kill_at("before-index")
        self._port.index_run(self.run_id, HOSTS.name in self._sinks)

    def _unpublish(self) -> None:
        """A write failed before the commit record: remove what this run published, so
        that raw readers see no run fleetcpu does not (we hold the lease: nobody else
        judges these files)."""
        layout = self._port.layout
        for sink in self._sinks.values():
            sink.discard()
            with contextlib.suppress(OSError):
                sink.final.unlink()
        with contextlib.suppress(OSError):
            journal.end(layout, self.run_id)

    def discard(self) -> None:
        """Drop everything not yet published (the writer itself failed: disk full...)."""
        self._closed = True
        for sink in self._sinks.values():
            sink.discard()
        if self._open is not None:
            self._open.discard()
            self._open = None
        self._release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit("complete")
            return
        # Keep what was added; the original exception goes on. A busy index
        # lock is not worth hiding a Ctrl-C for: the journal defers the index
        # update to the next reader.
        with contextlib.suppress(StoreLockedError):
            self.commit("interrupted")
