"""The latest-state index: one row per host, so "where is every host now" never scans history.

Why it exists: a year of hourly runs of 10,000 hosts is 87 million ``hosts``
rows; the latest state of each host is 10,000 of them. The index keeps, per
host, its latest record (failed or not) and, per accelerator, its latest
successful run and the run holding that run's CPU data, which is everything
the ``hosts`` command, the digest dedup and the baseline's member lookup need.

How it is merged: as a reduction that is associative and idempotent. Every
``hosts`` row and every index row is turned into *candidates* (slot
``latest``, and ``kvm``/``tcg`` for successful rows); the index is, per host
and slot, the candidate with the greatest run id. So merging a run twice, or
merging runs out of order (a slow writer that started earlier finishing
later), gives the same index, and an older run never regresses a host. The
same reduction rebuilds the index from history one day at a time.

Pure: tables in, tables out; ``store.py`` does the file I/O.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..vocabulary import Status
from .schema import INDEX, INDEX_ACCELS

__all__ = [
    "BASE",
    "CANDIDATE_SCHEMA",
    "LATEST",
    "SLOT",
    "candidates_from_hosts",
    "candidates_from_index",
    "empty_index",
    "merge",
    "pivot",
    "reduce",
]

#: Index columns that come straight from a ``hosts`` row: the candidate shape.
BASE = [
    "host",
    "pool",
    "run_id",
    "collected_at",
    "status",
    "stage",
    "error",
    "error_code",
    "accel",
    "qemu_version",
    "cpu_digest",
    "detail_run",
    "declared_machine_types",
    "abi_level",
]
SLOT = "slot"
LATEST = "latest"
_ACCEL_FIELDS = ("run", "collected_at", "detail_run", "cpu_digest")
_BASE_SCHEMA = pa.schema([INDEX.schema.field(n).with_nullable(True) for n in BASE])
CANDIDATE_SCHEMA = _BASE_SCHEMA.append(pa.field(SLOT, pa.string()))


def _with_slot(table: pa.Table, slot: str) -> pa.Table:
    table = table.select(BASE).cast(_BASE_SCHEMA)
    return table.append_column(SLOT, pa.array([slot] * table.num_rows, pa.string()))


def _is(column: pa.ChunkedArray[Any], value: str) -> pa.ChunkedArray[Any]:
    """Elementwise ``column == value``, null counting as False."""
    # Any: the stubs type comparisons as Array, but on a ChunkedArray they give one.
    eq: Any = pc.equal(column, pa.scalar(value, pa.string()))
    filled: pa.ChunkedArray[Any] = eq.fill_null(False)
    return filled


def _table(columns: dict[str, pa.ChunkedArray[Any] | pa.Array[Any]]) -> pa.Table:
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def candidates_from_hosts(hosts: pa.Table) -> pa.Table:
    """Rows of the ``hosts`` table (at least the BASE columns) as candidates."""
    parts = [_with_slot(hosts, LATEST)]
    ok = _is(hosts["status"], Status.OK)
    for accel in INDEX_ACCELS:
        mask = pc.and_(ok, _is(hosts["accel"], accel))
        parts.append(_with_slot(hosts.filter(mask), accel))
    return pa.concat_tables(parts)


def candidates_from_index(index: pa.Table) -> pa.Table:
    parts = [_with_slot(index, LATEST)]
    for accel in INDEX_ACCELS:
        have = index.filter(pc.is_valid(index[f"{accel}_run"]))
        n = have.num_rows
        cols: dict[str, pa.ChunkedArray[Any] | pa.Array[Any]] = {
            "host": have["host"],
            "pool": have["pool"],
            "run_id": have[f"{accel}_run"],
            "collected_at": have[f"{accel}_collected_at"],
            "status": pa.array([Status.OK.value] * n, pa.string()),
            "stage": pa.nulls(n, pa.string()),
            "error": pa.nulls(n, pa.string()),
            "error_code": pa.nulls(n, pa.string()),
            "accel": pa.array([accel] * n, pa.string()),
            "qemu_version": pa.nulls(n, pa.string()),
            "cpu_digest": have[f"{accel}_cpu_digest"],
            "detail_run": have[f"{accel}_detail_run"],
            "declared_machine_types": pa.nulls(n, pa.list_(pa.string())),
            "abi_level": pa.nulls(n, pa.string()),
        }
        parts.append(_with_slot(_table(cols), accel))
    return pa.concat_tables(parts)


def reduce(candidates: pa.Table) -> pa.Table:
    """Keep, per (host, slot), the candidate with the greatest run id."""
    if candidates.num_rows == 0:
        return candidates
    ordered = candidates.sort_by([("host", "ascending"), (SLOT, "ascending"), ("run_id", "descending")])
    n = ordered.num_rows
    first: pa.ChunkedArray[Any] | None = None
    for name in ("host", SLOT):
        col = ordered[name]
        prev = pa.chunked_array([pa.nulls(1, pa.string()), *col.slice(0, n - 1).chunks], pa.string())
        compared: Any = pc.not_equal(col, prev)
        differs: pa.ChunkedArray[Any] = compared.fill_null(True)
        first = differs if first is None else pc.or_(first, differs)
    assert first is not None
    return ordered.filter(first)


def pivot(candidates: pa.Table) -> pa.Table:
    """Reduced candidates -> the index table (INDEX schema, sorted by host)."""
    latest = candidates.filter(_is(candidates[SLOT], LATEST)).select(BASE).sort_by("host")
    # Arrow joins carry no list columns: join the scalars, put the list back by host order.
    declared = latest["declared_machine_types"]
    out = latest.drop_columns(["declared_machine_types"])
    for accel in INDEX_ACCELS:
        part = candidates.filter(_is(candidates[SLOT], accel))
        part = _table(
            {
                "host": part["host"],
                f"{accel}_run": part["run_id"],
                f"{accel}_collected_at": part["collected_at"],
                f"{accel}_detail_run": part["detail_run"],
                f"{accel}_cpu_digest": part["cpu_digest"],
            }
        )
        out = out.join(part, keys="host", join_type="left outer")
    out = out.sort_by("host")
    out = out.append_column("declared_machine_types", declared).select(INDEX.names)
    return pa.Table.from_arrays(
        [
            out[name].combine_chunks() if out.num_rows else pa.array([], INDEX.schema.field(name).type)
            for name in INDEX.names
        ],
        schema=INDEX.schema,
    )


def merge(index: pa.Table | None, hosts: pa.Table) -> pa.Table:
    """The index after folding in ``hosts`` rows (any runs, any order, repeats harmless)."""
    parts = [candidates_from_hosts(hosts)]
    if index is not None:
        parts.insert(0, candidates_from_index(index))
    return pivot(reduce(pa.concat_tables(parts)))


def empty_index() -> pa.Table:
    return INDEX.schema.empty_table()
