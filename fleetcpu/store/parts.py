"""One committed part of a run (store layout 2): its files, then its commit record, last.

Why parts: in layout 1 a run is one file per table, open until the end, so a
SIGKILL or a power cut loses the whole run (its flushed row groups sit in
temporaries without a Parquet footer). In layout 2 every flush of the run
writer is a part: one whole file per table that has rows,
``run-<id>-<part>.parquet``, closed, fsynced and published, then the part's
own commit record ``runs/.../run-<id>-<part>.parquet``, which lists exactly
those files with their rows, bytes and sha256. A part is visible to
fleetcpu's readers exactly when its record exists, so a kill loses only the
rows added since the last part (parts are cut every 500 hosts or 5 s; the
writer's 20,000-row memory bound only adds row groups to the part's files).

Every record but the last says ``partial``; the last says ``complete`` or
``interrupted``. On an object store the same holds with nothing renamed: the
part's files are written under their final names and the record is created
last (docs/store.md).

This module writes one part; ``RunWriter`` decides when.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from .. import __version__
from .atomic import ParquetSink, write_table
from .layout import Layout
from .schema import RUNS, TableSpec

__all__ = ["FLUSH_SECONDS", "Counts", "OpenPart", "RunFacts"]

#: No result waits in memory longer than this while a run is written (plus the
#: collector's 1 s tick): what a kill can lose.
FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class RunFacts:
    """What every record of one run repeats."""

    run_id: str
    started_at: datetime
    command: str
    inventory: str | None


@dataclass(frozen=True)
class Counts:
    """Hosts in one part; a run's totals are the sums over its parts."""

    ok: int = 0
    failed: int = 0
    detail: int = 0


class OpenPart:
    """The part being written: one hidden file per table, a row group per spill.

    Why row groups within a part: the writer spills its buffers every 20,000
    detail rows to bound memory (a first run gives each host ~300 rows), but
    a part per spill made a first run of 10,000 hosts ~70 parts, and reading
    them back cost the baseline 0.7 s. So parts are cut by hosts and time
    only (500 hosts or 5 s: what a kill can lose), and a spill is a row group
    of the part's still-hidden files, as layout 1 does for a whole run.
    """

    def __init__(self, layout: Layout, run_id: str, part: int) -> None:
        self.layout = layout
        self.run_id = run_id
        self.part = part
        self._sinks: dict[str, ParquetSink] = {}
        self._published: list[Path] = []

    def append(self, spec: TableSpec, rows: list[dict[str, object]]) -> None:
        """A row group of ``rows`` into the part's file of ``spec`` (opened on first use)."""
        sink = self._sinks.get(spec.name)
        if sink is None:
            sink = ParquetSink(self.layout.part_file(spec.name, self.run_id, self.part), spec)
            self._sinks[spec.name] = sink
        sink.write(pa.Table.from_pylist(rows, schema=spec.schema))

    def commit(
        self,
        facts: RunFacts,
        status: str,
        counts: Counts,
        order: Sequence[str],
        before_record: Callable[[], None] = lambda: None,
    ) -> None:
        """Close, publish (in ``order``: detail tables before the ``hosts`` rows whose
        ``detail_run`` points at them) and record the part. On any failure this part's
        temporaries and published files are removed before the exception goes on:
        nothing of an uncommitted part stays visible, and earlier parts are untouched."""
        layout = self.layout
        record = layout.part_file(RUNS.name, facts.run_id, self.part)
        try:
            files: list[dict[str, object]] = []
            sinks = [self._sinks[name] for name in order if name in self._sinks]
            for sink in sinks:
                sink.close()
                size, sha = sink.digest()
                files.append(
                    {
                        "table": sink.spec.name,
                        "rows": sink.rows,
                        "bytes": size,
                        "sha256": sha,
                        "path": sink.final.relative_to(layout.data).as_posix(),
                    }
                )
            for sink in sinks:
                sink.publish()
                self._published.append(sink.final)
            before_record()
            finished = datetime.now(UTC)
            write_table(
                record,
                RUNS,
                pa.Table.from_pylist(
                    [
                        {
                            "run_id": facts.run_id,
                            "started_at": facts.started_at,
                            "finished_at": max(finished, facts.started_at),
                            "command": facts.command,
                            "inventory": facts.inventory,
                            "fleetcpu_version": __version__,
                            "status": status,
                            "hosts_ok": counts.ok,
                            "hosts_failed": counts.failed,
                            "hosts_detail": counts.detail,
                            "files": files,
                            "part": self.part,
                        }
                    ],
                    schema=RUNS.schema,
                ),
            )
        except BaseException:
            if not record.exists():  # else only its folder's fsync failed: it is committed
                self.discard()
            raise

    def discard(self) -> None:
        """Drop the part: its temporaries and whatever of it was published."""
        for sink in self._sinks.values():
            sink.discard()
        for path in self._published:
            with contextlib.suppress(OSError):
                path.unlink()
