"""Stored rows -> the probe's own records. Pure: Arrow tables in, records out.

The inverse of ``outcome_rows.py``: what a probe said about a machine type comes back
as the ``MachineProbe`` it was, so the baseline computes on the same types
whether its input is a live probe or a year-old run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from ..outcome import ConnectionSpec
from ..probe.document import (
    CpuFacts,
    CpuModel,
    Expansion,
    FeatureWord,
    HostFacts,
    MachineInfo,
    MachineProbe,
    QueryFailure,
    Scalar,
    VcpuProps,
)
from ..vocabulary import Accel, DevKvm, KvmNested
from .index import BASE
from .views import AccelLatest, HostState, RunInfo

__all__ = [
    "Key",
    "T",
    "accel_slots",
    "columns",
    "connection",
    "facts_and_connections",
    "host_facts",
    "host_states",
    "machine_lists",
    "machine_probes",
    "pylist",
    "run_infos",
]

Key = tuple[str, str]
T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pylist(column: pa.ChunkedArray[Any]) -> list[Any]:
    """A column as Python values; times as aware UTC datetimes.

    Times are converted by hand: pyarrow's own conversion of a zoned
    timestamp imports pandas (a quarter of a second) only to look up "UTC".
    And each distinct time once: a column of 100,000 hosts holds a few run
    times, and the ``datetime`` objects are immutable, so rows share them.
    """
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        assert column.type.unit == "ms"
        encoded = column.cast(pa.int64()).combine_chunks().dictionary_encode()
        distinct = cast("list[int]", encoded.dictionary.to_pylist())  # nulls are not in it
        moments = [_EPOCH + timedelta(milliseconds=v) for v in distinct]
        return [None if i is None else moments[i] for i in encoded.indices.to_pylist()]
    return column.to_pylist()


def columns(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rows as dicts, converting column by column (far faster than ``to_pylist`` of rows)."""
    names = table.column_names
    cols = [pylist(table[name]) for name in names]
    for values in zip(*cols, strict=True):
        yield dict(zip(names, values, strict=True))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def host_facts(row: Mapping[str, Any]) -> HostFacts:
    return HostFacts(
        hostname=row["hostname"],
        kernel_release=row["kernel_release"],
        cpu=CpuFacts(
            vendor=row["cpu_vendor"],
            family=_opt_int(row["cpu_family"]),
            model=_opt_int(row["cpu_model"]),
            stepping=_opt_int(row["cpu_stepping"]),
            model_name=row["cpu_model_name"],
            microcode=row["microcode"],
        ),
        kvm_module=row["kvm_module"],
        kvm_nested=row["kvm_nested"] if row["kvm_nested"] is not None else KvmNested.UNKNOWN,
        dev_kvm=row["dev_kvm"] if row["dev_kvm"] is not None else DevKvm.MISSING,
        synthetic=row["synthetic"],
    )


def connection(row: Mapping[str, Any]) -> ConnectionSpec:
    return ConnectionSpec(
        transport=row["conn_transport"] or "unknown",
        address=row["conn_address"],
        port=row["conn_port"],
        user=row["conn_user"],
        python=row["conn_python"],
        qemu=row["conn_qemu"],
    )


_CPU_COLUMNS = ("cpu_vendor", "cpu_family", "cpu_model", "cpu_stepping", "cpu_model_name", "microcode")


def facts_and_connections(hosts: pa.Table) -> dict[str, tuple[HostFacts, ConnectionSpec]]:
    """``hosts`` rows -> host -> (``host_facts``, ``connection``), column by column.

    The records are the ones ``host_facts`` and ``connection`` build from a row
    dict; but a pool of 100,000 hosts holds a few hundred distinct CPUs
    (vendor, signature, microcode), so each ``CpuFacts`` is built once and
    shared, and no dict is made per row.
    """
    c = {name: pylist(hosts[name]) for name in hosts.column_names}
    cpus: dict[tuple[Any, ...], CpuFacts] = {}
    out: dict[str, tuple[HostFacts, ConnectionSpec]] = {}
    for i, key in enumerate(zip(*(c[n] for n in _CPU_COLUMNS), strict=True)):
        cpu = cpus.get(key)
        if cpu is None:
            vendor, family, model, stepping, model_name, microcode = key
            cpu = cpus[key] = CpuFacts(
                vendor=vendor,
                family=_opt_int(family),
                model=_opt_int(model),
                stepping=_opt_int(stepping),
                model_name=model_name,
                microcode=microcode,
            )
        nested, dev_kvm = c["kvm_nested"][i], c["dev_kvm"][i]
        out[str(c["host"][i])] = (
            HostFacts(
                hostname=c["hostname"][i],
                kernel_release=c["kernel_release"][i],
                cpu=cpu,
                kvm_module=c["kvm_module"][i],
                kvm_nested=nested if nested is not None else KvmNested.UNKNOWN,
                dev_kvm=dev_kvm if dev_kvm is not None else DevKvm.MISSING,
                synthetic=c["synthetic"][i],
            ),
            ConnectionSpec(
                transport=c["conn_transport"][i] or "unknown",
                address=c["conn_address"][i],
                port=c["conn_port"][i],
                user=c["conn_user"][i],
                python=c["conn_python"][i],
                qemu=c["conn_qemu"][i],
            ),
        )
    return out


def machine_lists(column: pa.ChunkedArray[Any]) -> list[tuple[MachineInfo, ...] | None]:
    """``hosts.qemu_machines`` -> per row, the QEMU's machine list (None: not recorded).

    Hosts of one QEMU build hold the same list of ~60 entries: each row's list is
    reduced to one text key in Arrow, and each distinct list is built once and
    shared, so 100,000 hosts of a few QEMUs cost a few lists, not six million records.
    """
    if column.num_chunks == 0 or len(column) == 0:
        return []
    lists = column.combine_chunks()
    assert isinstance(lists, pa.ListArray)
    # The entries the offsets span (null lists' spans included, so offsets stay valid).
    start, end = lists.offsets[0].as_py(), lists.offsets[-1].as_py()
    entries = cast("pa.StructArray", lists.values.slice(start, end - start))
    entry_text = pc.call_function(
        "binary_join_element_wise",
        [
            entries.field("name"),
            entries.field("alias"),
            entries.field("is_default").cast(pa.string()),
            entries.field("deprecated").cast(pa.string()),
            pa.scalar(_FIELD_SEP),
        ],
        options=pc.JoinOptions(null_handling="replace", null_replacement=_NULL),
    )
    offsets = pc.subtract(lists.offsets, pa.scalar(start, pa.int32()))
    texts = pa.ListArray.from_arrays(offsets, entry_text, mask=lists.is_null())
    key: Any = pc.binary_join(texts, _ITEM_SEP)
    codes = pc.dictionary_encode(key, null_encoding="mask")
    assert isinstance(codes, pa.DictionaryArray)
    indices = cast("list[int | None]", codes.indices.to_pylist())
    first: dict[int, int] = {}
    for row, code in enumerate(indices):
        if code is not None:
            first.setdefault(code, row)
    built = {
        code: tuple(
            MachineInfo(
                name=e["name"], alias=e["alias"], is_default=e["is_default"], deprecated=e["deprecated"]
            )
            for e in lists[row].as_py()
        )
        for code, row in first.items()
    }
    return [None if code is None else built[code] for code in indices]


def accel_slots(index: pa.Table, accel: str) -> list[AccelLatest | None]:
    """Per index row, its latest successful run under ``accel``; equal slots are one object
    (hosts of one CPU collected in one run share it)."""
    runs = pylist(index[f"{accel}_run"])
    times = pylist(index[f"{accel}_collected_at"])
    details = pylist(index[f"{accel}_detail_run"])
    digests = pylist(index[f"{accel}_cpu_digest"])
    shared: dict[tuple[Any, ...], AccelLatest] = {}
    out: list[AccelLatest | None] = []
    for key in zip(runs, times, details, digests, strict=True):
        if key[0] is None:
            out.append(None)
            continue
        slot = shared.get(key)
        if slot is None:
            slot = shared[key] = AccelLatest(*key)
        out.append(slot)
    return out


def host_states(index: pa.Table) -> list[HostState]:
    """Index rows -> records, column by column: no per-row dict on the hot path of ``hosts``."""
    c = {name: pylist(index[name]) for name in BASE}
    return [
        HostState(
            host=host,
            pool=pool,
            run=run,
            collected_at=when,
            status=status,
            stage=stage,
            error=error,
            error_code=code,
            accel=accel,
            qemu_version=qemu,
            cpu_digest=digest,
            detail_run=detail,
            kvm=kvm,
            tcg=tcg,
            declared_machine_types=tuple(declared or ()),
            abi_level=level,
        )
        for (
            host,
            pool,
            run,
            when,
            status,
            stage,
            error,
            code,
            accel,
            qemu,
            digest,
            detail,
            declared,
            level,
            kvm,
            tcg,
        ) in zip(
            c["host"],
            c["pool"],
            c["run_id"],
            c["collected_at"],
            c["status"],
            c["stage"],
            c["error"],
            c["error_code"],
            c["accel"],
            c["qemu_version"],
            c["cpu_digest"],
            c["detail_run"],
            c["declared_machine_types"],
            c["abi_level"],
            accel_slots(index, Accel.KVM),
            accel_slots(index, Accel.TCG),
            strict=True,
        )
    ]


def run_infos(runs: pa.Table) -> list[RunInfo]:
    """One RunInfo per run from its records in run, then part, order (``Store.table``'s):
    a run committed in parts sums its parts' hosts, ends when its last part was
    committed, and has its last part's status."""
    out: list[RunInfo] = []
    for row in columns(runs):
        last = out[-1] if out else None
        if last is not None and last.run_id == row["run_id"]:
            out[-1] = dataclasses.replace(
                last,
                finished_at=max(last.finished_at, row["finished_at"]),
                status=row["status"],
                hosts_ok=last.hosts_ok + row["hosts_ok"],
                hosts_failed=last.hosts_failed + row["hosts_failed"],
                hosts_detail=last.hosts_detail + row["hosts_detail"],
                parts=last.parts + 1,
            )
            continue
        out.append(
            RunInfo(
                run_id=row["run_id"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                command=row["command"],
                inventory=row["inventory"],
                fleetcpu_version=row["fleetcpu_version"],
                status=row["status"],
                hosts_ok=row["hosts_ok"],
                hosts_failed=row["hosts_failed"],
                hosts_detail=row["hosts_detail"],
            )
        )
    return out


def _props(text: str) -> dict[str, Scalar]:
    value = json.loads(text)
    return cast(dict[str, Scalar], value if isinstance(value, dict) else {})


_FIELD_SEP = "\x1e"
_ITEM_SEP = "\x1f"
_NULL = "\x00"


def _as_text(column: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    if pa.types.is_list(column.type):
        joined: Any = pc.binary_join(column, _ITEM_SEP)
        return cast("pa.ChunkedArray[Any]", joined)
    if pa.types.is_string(column.type):
        return column
    return column.cast(pa.string())


def _encoded(table: pa.Table, names: Sequence[str]) -> pa.DictionaryArray[Any, Any]:
    """Each row's content over ``names`` as a dictionary code, computed in Arrow.

    Names, feature lists and JSON never hold ASCII control characters, so
    joining on them is unambiguous.
    """
    key = pc.call_function(
        "binary_join_element_wise",
        [*(_as_text(table[name]) for name in names), pa.scalar(_FIELD_SEP)],
        options=pc.JoinOptions(null_handling="replace", null_replacement=_NULL),
    )
    encoded = cast("pa.ChunkedArray[Any]", pc.dictionary_encode(key)).combine_chunks()
    assert isinstance(encoded, pa.DictionaryArray)
    return encoded


def _grouped(
    table: pa.Table, names: Sequence[str], build: Callable[[dict[str, Any]], T]
) -> dict[Key, tuple[T, ...]]:
    """(host, machine type) -> ``build(row)`` of its rows, in stored (probe) order.

    Across a fleet, hosts of one CPU generation and QEMU version hold identical
    model, feature-word and expansion rows, and identical lists of them. So
    rows are reduced to codes in Arrow, each distinct row is built once, each
    distinct list of rows is assembled once, and hosts share the frozen
    records: reading 10,000 hosts costs what their distinct CPUs cost, plus
    one dictionary entry per host.
    """
    n = table.num_rows
    if n == 0:
        return {}
    groups = _encoded(table, ("host", "machine_type"))
    rows = _encoded(table, names)
    positions = pa.array(range(n), pa.int64())
    # Group by (host, machine type), keeping stored order inside each group.
    order = pc.sort_indices(
        pa.table({"g": groups.indices, "p": positions}), sort_keys=[("g", "ascending"), ("p", "ascending")]
    )
    g_sorted = groups.indices.take(order)
    r_sorted = rows.indices.take(order)
    changes = pc.indices_nonzero(pc.not_equal(g_sorted.slice(1), g_sorted.slice(0, n - 1)))
    starts = [0, *(int(i) + 1 for i in changes.to_pylist() if i is not None)]
    offsets = pa.array([*starts, n], pa.int32())
    lists = pa.ListArray.from_arrays(offsets, r_sorted.cast(pa.string()))
    joined: Any = pc.binary_join(lists, ",")
    list_codes = pc.dictionary_encode(pa.chunked_array([joined])).combine_chunks()
    assert isinstance(list_codes, pa.DictionaryArray)

    # One sample row per distinct content, built once.
    firsts = pa.table({"r": rows.indices, "p": positions}).group_by("r").aggregate([("p", "min")])
    samples = table.select(list(names)).take(firsts["p_min"])
    built = dict(zip(firsts["r"].to_pylist(), (build(r) for r in columns(samples)), strict=True))
    assembled = [
        tuple(built[int(code)] for code in text.split(","))
        for text in cast("list[str]", list_codes.dictionary.to_pylist())
    ]
    group_names = cast("list[str]", groups.dictionary.to_pylist())
    group_of = cast("list[int]", g_sorted.take(pa.array(starts, pa.int64())).to_pylist())
    list_of = cast("list[int]", list_codes.indices.to_pylist())
    out: dict[Key, tuple[T, ...]] = {}
    for g, lst in zip(group_of, list_of, strict=True):
        host, machine_type = group_names[g].split(_FIELD_SEP, 1)
        out[(host, machine_type)] = assembled[lst]
    return out


def _cpu_model(row: Mapping[str, Any]) -> CpuModel:
    return CpuModel(
        name=row["model"],
        unavailable_features=tuple(row["unavailable_features"]),
        alias_of=row["alias_of"],
        deprecated=row["deprecated"],
        migration_safe=row["migration_safe"],
        static=row["static"],
        typename=row["typename"],
        features=None if row["features"] is None else tuple(row["features"]),
    )


def _words(row: Mapping[str, Any]) -> tuple[FeatureWord | None, FeatureWord | None]:
    leaf, subleaf, register = row["leaf"], row["subleaf"], row["register"]
    supported, filtered = row["supported"], row["filtered"]
    return (
        None if supported is None else FeatureWord(leaf, subleaf, register, supported),
        None if filtered is None else FeatureWord(leaf, subleaf, register, filtered),
    )


def _expansion(row: Mapping[str, Any]) -> Expansion:
    features = dict.fromkeys(row["disabled"], False)
    features.update(dict.fromkeys(row["enabled"], True))
    return Expansion(model=row["model"], features=dict(sorted(features.items())), props=_props(row["props"]))


_MODEL_COLUMNS = (
    "model",
    "unavailable_features",
    "alias_of",
    "deprecated",
    "migration_safe",
    "static",
    "typename",
    "features",
)
_WORD_COLUMNS = ("leaf", "subleaf", "register", "supported", "filtered")
_EXPANSION_COLUMNS = ("model", "enabled", "disabled", "props")


def machine_probes(
    machines: pa.Table,
    feature_words: pa.Table,
    models: pa.Table,
    expansion: pa.Table,
) -> dict[str, dict[str, MachineProbe]]:
    """host -> machine type -> MachineProbe, machine types in stored (probe) order.

    Within a (host, machine type) the stored row order is the probe's order,
    and Parquet keeps it.
    """
    model_lists = _grouped(models, _MODEL_COLUMNS, _cpu_model)
    word_pairs = _grouped(feature_words, _WORD_COLUMNS, _words)
    static = expansion.filter(pc.equal(expansion["kind"], pa.scalar("static")))
    full = expansion.filter(pc.equal(expansion["kind"], pa.scalar("full")))
    statics = _grouped(static, _EXPANSION_COLUMNS, _expansion)
    fulls = _grouped(full, _EXPANSION_COLUMNS, _expansion)

    out: dict[str, dict[str, MachineProbe]] = {}
    for row in columns(machines):
        key = (row["host"], row["machine_type"])
        errors = tuple(
            QueryFailure(e["query"], e["error_class"], e["message"])
            for e in (json.loads(row["errors"]) if row["errors"] else [])
        )
        pairs = word_pairs.get(key, ())
        out.setdefault(row["host"], {})[row["machine_type"]] = MachineProbe(
            requested=row["requested"],
            machine_type=row["machine_type"],
            accel=row["accel"],
            cpu=row["cpu"],
            models=model_lists.get(key, ()),
            static_expansion=statics[key][0] if key in statics else None,
            full_expansion=fulls[key][0] if key in fulls else None,
            vcpu=VcpuProps(
                vendor=row["vendor"],
                family=row["family"],
                model=row["model"],
                stepping=row["stepping"],
                model_id=row["model_id"],
                level=row["level"],
                xlevel=row["xlevel"],
                phys_bits=row["phys_bits"],
            ),
            feature_words=tuple(w for w, _ in pairs if w is not None),
            filtered_features=tuple(f for _, f in pairs if f is not None),
            errors=errors,
        )
    return out
