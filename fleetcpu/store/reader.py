"""Reading one stored Parquet file through the current schema of its table.

Why per file and through the current schema: an additive change (a new
nullable column) must leave every old file readable, with nulls in the new
column, and one damaged or foreign file must be named in a one-line error
(exit 4) rather than surface as a pyarrow traceback or, worse, be read as if
it were ours. A dataset scan would infer one schema from whichever file it
opened first and report errors without saying which file.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import StoreCorruptError, StoreForeignError
from .schema import META_TABLE, TableSpec

__all__ = ["conform", "empty", "hosts_by_row_group", "read_file", "row_group_of_hosts"]


def _open(path: Path, *, host_dictionary: bool = False) -> pq.ParquetFile:
    try:
        # host as dictionary: finding which row groups hold a host then reads the
        # column's small dictionary pages, not one string per row.
        return pq.ParquetFile(path, read_dictionary=["host"] if host_dictionary else None)
    except FileNotFoundError as exc:
        raise StoreCorruptError(f"{path}: missing (a committed run's file is gone)") from exc
    except (pa.ArrowException, OSError) as exc:
        raise StoreCorruptError(f"{path}: not a readable Parquet file ({exc})") from exc


def _check(path: Path, spec: TableSpec, file_schema: pa.Schema) -> None:
    meta = file_schema.metadata or {}
    table = meta.get(META_TABLE)
    if table is None:
        raise StoreForeignError(
            f"{path}: not a fleetcpu file (no fleetcpu.table metadata); remove it from the store"
        )
    if table != spec.name.encode():
        raise StoreForeignError(
            f"{path}: a fleetcpu {table.decode(errors='replace')!r} file where {spec.name!r} files belong"
        )
    for field in spec.schema:
        idx = file_schema.get_field_index(field.name)
        if idx < 0:
            if not field.nullable:
                raise StoreForeignError(
                    f"{path}: column {field.name!r} missing (required by {spec.name} schema {spec.version})"
                )
            continue
        found = file_schema.field(idx).type
        if pa.types.is_dictionary(found):  # read_dictionary: the stored type is its values'
            found = found.value_type
        if not found.equals(field.type):
            raise StoreForeignError(f"{path}: column {field.name!r} is {found}, expected {field.type}")


def _check_rows(path: Path, pf: pq.ParquetFile, rows: int | None) -> None:
    """A committed file holds exactly the rows its run's commit record says."""
    if rows is not None and pf.metadata.num_rows != rows:
        raise StoreCorruptError(
            f"{path}: {pf.metadata.num_rows} rows where its run's commit record says {rows}; "
            "the file was replaced or damaged"
        )


def _host_sets(path: Path, pf: pq.ParquetFile) -> list[set[str]]:
    out = []
    try:
        for i in range(pf.num_row_groups):
            column = pf.read_row_group(i, columns=["host"])["host"]
            out.append({str(h) for h in pc.unique(column.cast(pa.string())).to_pylist()})
    except (pa.ArrowException, OSError) as exc:
        raise StoreCorruptError(f"{path}: unreadable Parquet data ({exc})") from exc
    return out


def hosts_by_row_group(path: Path, spec: TableSpec) -> list[set[str]]:
    """The hosts each row group of the file holds: lets a reader pick the hosts whose
    rows are cheapest to read together."""
    _check(path, spec, _open(path).schema_arrow)
    return _host_sets(path, _open(path, host_dictionary=True))


def _wanted(hosts: Collection[str]) -> AbstractSet[str]:
    """``hosts`` as a set, without copying one: a reader of 200 parts is handed the same
    100,000-host set for each, and copying (or sorting) it per file was most of its time."""
    return hosts if isinstance(hosts, (set, frozenset)) else set(hosts)


def _member_mask(column: pa.ChunkedArray[Any], hosts: AbstractSet[str]) -> pa.ChunkedArray[Any]:
    """Per row, is its host in ``hosts``? Matched on each chunk's small dictionary (a part
    holds ~500 hosts) by Python set lookups, then spread by its indices: no hash table of
    the wanted hosts is built per file, and no row is decoded to a string."""
    chunks = []
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray):
            names = cast("list[str | None]", chunk.dictionary.to_pylist())
            chunks.append(pa.array([n in hosts for n in names], pa.bool_()).take(chunk.indices))
        else:
            value_set = pa.array(sorted(hosts), pa.string())
            chunks.append(pc.is_in(chunk, value_set=value_set))
    return pa.chunked_array(chunks, pa.bool_())


def _row_groups_with(path: Path, pf: pq.ParquetFile, hosts: AbstractSet[str]) -> list[int]:
    """The row groups holding any of ``hosts``: one read of the (dictionary) host column,
    not one read per row group; a 100,000-host run file has hundreds of them."""
    try:
        column = pf.read(columns=["host"])["host"]
        # A first run of 100,000 hosts has ~10 million model rows, never decoded here.
        mask: Any = _member_mask(column, hosts)
    except (pa.ArrowException, OSError) as exc:
        raise StoreCorruptError(f"{path}: unreadable Parquet data ({exc})") from exc
    # Matches up to each row group's end, in two vectorised calls, not one call per group.
    groups: list[int] = []
    ends: list[int] = []
    total = 0
    for i in range(pf.num_row_groups):
        rows = pf.metadata.row_group(i).num_rows
        if rows:
            total += rows
            groups.append(i)
            ends.append(total - 1)
    if not groups:
        return []
    seen = pc.cumulative_sum(mask.cast(pa.int64()).fill_null(0))
    upto = cast("list[int]", seen.take(pa.array(ends, pa.int64())).to_pylist())
    return [g for k, g in enumerate(groups) if upto[k] > (upto[k - 1] if k else 0)]


def row_group_of_hosts(path: Path, spec: TableSpec, *, rows: int | None = None) -> dict[str, int]:
    """host -> the first row group of the file holding it (one read of the host column)."""
    pf = _open(path)
    _check(path, spec, pf.schema_arrow)
    _check_rows(path, pf, rows)
    try:
        hosts = pf.read(columns=["host"])["host"].to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise StoreCorruptError(f"{path}: unreadable Parquet data ({exc})") from exc
    out: dict[str, int] = {}
    start = 0
    for i in range(pf.num_row_groups):
        rows = pf.metadata.row_group(i).num_rows
        for host in hosts[start : start + rows]:
            out.setdefault(str(host), i)
        start += rows
    return out


def read_file(
    path: Path,
    spec: TableSpec,
    *,
    columns: Sequence[str] | None = None,
    hosts: Collection[str] | None = None,
    rows: int | None = None,
) -> pa.Table:
    """The file's rows as ``spec``'s schema (or the given columns of it), optionally
    only the given hosts (reading only the row groups that hold them). Columns an
    older file lacks come back as nulls. ``rows``: what the commit record says the
    file holds, checked against its footer."""
    # Opened once: host as dictionary when filtering by host (_check reads through it).
    pf = _open(path, host_dictionary=hosts is not None)
    file_schema = pf.schema_arrow
    _check(path, spec, file_schema)
    _check_rows(path, pf, rows)
    wanted = list(columns) if columns is not None else spec.names
    if hosts is not None and "host" not in wanted:
        wanted.append("host")
    present = [name for name in wanted if file_schema.get_field_index(name) >= 0]
    wanted_hosts = _wanted(hosts) if hosts is not None else None
    try:
        if wanted_hosts is None:
            table = pf.read(columns=present)
        else:
            table = pf.read_row_groups(_row_groups_with(path, pf, wanted_hosts), columns=present)
    except (pa.ArrowException, OSError) as exc:
        raise StoreCorruptError(f"{path}: unreadable Parquet data ({exc})") from exc
    if wanted_hosts is not None:
        table = table.filter(_member_mask(table["host"], wanted_hosts))
        table = table.set_column(
            table.schema.get_field_index("host"), "host", table["host"].cast(pa.string())
        )
    return conform(table, spec, wanted if columns is None else list(columns))


def conform(table: pa.Table, spec: TableSpec, names: Sequence[str]) -> pa.Table:
    """Exactly ``names`` of ``spec``, in that order, nulls for absent columns, no metadata."""
    arrays = []
    fields = []
    for name in names:
        field = spec.schema.field(name)
        if name in table.column_names:
            arrays.append(table[name])
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
        fields.append(field)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def empty(spec: TableSpec, names: Sequence[str] | None = None) -> pa.Table:
    schema = spec.schema if names is None else pa.schema([spec.schema.field(n) for n in names])
    return schema.empty_table()
