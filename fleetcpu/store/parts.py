"""One committed part of a run (store layout 2): its files, then its commit record, last.

Why parts: in layout 1 a run is one file per table, open until the end, so a
SIGKILL or a power cut loses the whole run (its flushed row groups sit in
temporaries without a Parquet footer). In layout 2 every flush of the run
writer is a part: one whole file per table that has rows,
``run-<id>-<part>.parquet``, closed, fsynced and published, then the part's
own commit record ``runs/.../run-<id>-<part>.parquet``, which lists exactly
those files with their rows, bytes and sha256. A part is visible to
fleetcpu's readers exactly when its record exists, so a kill loses only the
rows buffered since the last part.

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


def write_part(layout: Layout, facts: RunFacts, part: int, status: str, counts: Counts,
               tables: Sequence[tuple[TableSpec, list[dict[str, object]]]],
               before_record: Callable[[], None] = lambda: None) -> int:
    """Write, publish and commit part ``part`` of the run; returns its rows of data.

    ``tables`` in publishing order (detail tables before ``hosts``, whose
    ``detail_run`` points at them). On any failure this part's temporaries
    and published files are removed before the exception goes on: nothing
    of an uncommitted part stays visible, and earlier parts are untouched.
    """
    sinks: list[ParquetSink] = []
    files: list[dict[str, object]] = []
    published: list[Path] = []
    try:
        for spec, rows in tables:
            if not rows:
                continue
            sink = ParquetSink(layout.part_file(spec.name, facts.run_id, part), spec)
            sinks.append(sink)
            sink.write(pa.Table.from_pylist(rows, schema=spec.schema))
            sink.close()
            size, sha = sink.digest()
            files.append({"table": spec.name, "rows": sink.rows, "bytes": size, "sha256": sha,
                          "path": sink.final.relative_to(layout.data).as_posix()})
        for sink in sinks:
            sink.publish()
            published.append(sink.final)
        before_record()
        finished = datetime.now(UTC)
        write_table(layout.part_file(RUNS.name, facts.run_id, part), RUNS, pa.Table.from_pylist([{
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
            "part": part,
        }], schema=RUNS.schema))
    except BaseException:
        for sink in sinks:
            sink.discard()
        if layout.part_file(RUNS.name, facts.run_id, part).exists():
            raise  # the record is in (only its folder's fsync failed): the part is committed
        for path in published:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return sum(sink.rows for sink in sinks)
