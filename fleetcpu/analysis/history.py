"""The store's history as pandas tables: who answered, where collection broke, what drifted.

Drift is the question after an incident: "since when has kvm17 lacked TSX,
and what changed on it then?". One row is one host between two of its
successful records: the features and usable models it gained and lost, next
to the QEMU, kernel and microcode before and after. A microcode update that
removed ``hle``/``rtm`` is one row naming both. Runs are read one at a
time and only the CPU data of records that changed is read back, so years
of unchanged hourly runs cost one pass over the ``hosts`` rows, in memory
bounded by the number of hosts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..baseline.member import offered_from
from ..probe.document import Expansion
from ..store import Store
from ..store.schema import HOSTS
from ..store.snapshot import columns as rows_of
from ..vocabulary import Accel, Status

__all__ = [
    "DRIFT_COLUMNS",
    "CpuState",
    "Record",
    "drift",
    "failures",
    "latest_hosts",
    "run_history",
    "runs_since",
]


def latest_hosts(store: Store, pool: str | None = None) -> pd.DataFrame:
    """One row per host: its latest record, and when it last succeeded per accelerator."""
    rows = [
        {
            "host": s.host,
            "pool": s.pool,
            "status": s.status,
            "stage": s.stage,
            "error": s.error,
            "accel": s.accel,
            "qemu_version": s.qemu_version,
            "abi_level": s.abi_level,
            "collected_at": s.collected_at,
            "cpu_digest": s.cpu_digest,
            "last_ok_kvm": s.kvm.collected_at if s.kvm else None,
            "last_ok_tcg": s.tcg.collected_at if s.tcg else None,
        }
        for s in store.latest(pool)
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "host",
            "pool",
            "status",
            "stage",
            "error",
            "accel",
            "qemu_version",
            "abi_level",
            "collected_at",
            "cpu_digest",
            "last_ok_kvm",
            "last_ok_tcg",
        ],
    )


def run_history(store: Store) -> pd.DataFrame:
    """One row per committed run: when, what, and how many hosts failed."""
    runs = store.table("runs").to_pandas()
    return runs.sort_values("run_id").reset_index(drop=True)


def runs_since(store: Store, age: timedelta, now: datetime | None = None) -> str | None:
    """The first run id started within ``age`` of ``now``: the ``since`` of "the last 30 days"."""
    cutoff = (now or datetime.now(UTC)) - age
    recent = [r.run_id for r in store.runs() if r.started_at >= cutoff]
    return min(recent) if recent else None


def failures(store: Store, pool: str | None = None, *, since: str | None = None) -> pd.DataFrame:
    """Failed host rows per run and stage (runs from ``since`` on): where collection breaks."""
    runs = None if since is None else [r.run_id for r in store.runs() if r.run_id >= since]
    hosts = store.table(
        "hosts", columns=["run_id", "collected_at", "host", "pool", "status", "stage"], runs=runs
    )
    hosts = hosts.filter(pc.equal(hosts["status"], pa.scalar(Status.FAILED.value)))
    failed = hosts.to_pandas()
    if pool is not None:
        failed = failed[failed["pool"] == pool]
    return (
        failed.groupby(["run_id", "stage"])
        .agg(hosts=("host", "nunique"), collected_at=("collected_at", "min"))
        .reset_index()
        .sort_values(["run_id", "stage"])
        .reset_index(drop=True)
    )


_FACTS = ("qemu_version", "kernel_release", "microcode")
_HOST_COLUMNS = [
    "run_id",
    "collected_at",
    "host",
    "pool",
    "status",
    "accel",
    "detail_run",
    "cpu_digest",
    *_FACTS,
]
DRIFT_COLUMNS = [
    "host",
    "pool",
    "collected_at",
    "run_id",
    "previous_at",
    "previous_run",
    "machine_type",
    "features_added",
    "features_removed",
    "models_gained",
    "models_lost",
    "changed",
    *(f"{fact}_before" for fact in _FACTS),
    *_FACTS,
]


CpuState = tuple[str, frozenset[str], frozenset[str]]


def _pick(probed: list[tuple[str, str]], machine_type: str | None) -> str | None:
    """The machine type drift compares, from (resolved, requested) in probe order: the one
    asked for (resolved name or alias), else the first probed."""
    if machine_type is not None:
        return next((mt for mt, req in probed if machine_type in (mt, req)), None)
    return next((mt for mt, _ in probed if mt != "none"), None)


def _narrow(store: Store, name: str, run: str, hosts: set[str], columns: list[str]) -> list[Record]:
    return list(rows_of(store.run_table(name, run, columns=columns, hosts=hosts)))


def _cpu_states(
    store: Store, wanted: Iterable[tuple[str, str]], machine_type: str | None
) -> dict[tuple[str, str], CpuState | None]:
    """(host, detail run) -> (machine type, offered features, usable named models).

    Reads only the columns drift compares (not the per-model feature lists, the
    bulk of the CPU data) and only the row groups holding the wanted hosts: a
    run's detail files hold every host that changed then (the whole fleet, for
    its first run), and drift needs a handful.
    """
    by_run: dict[str, set[str]] = {}
    for host, run in wanted:
        by_run.setdefault(run, set()).add(host)
    out: dict[tuple[str, str], CpuState | None] = {}
    for run, hosts in sorted(by_run.items()):
        probed: dict[str, list[tuple[str, str]]] = {}
        for r in _narrow(store, "machines", run, hosts, ["host", "machine_type", "requested"]):
            probed.setdefault(r["host"], []).append((r["machine_type"], r["requested"]))
        chosen = {h: _pick(p, machine_type) for h, p in probed.items()}
        usable: dict[str, set[str]] = {}
        for r in _narrow(
            store, "models", run, hosts, ["host", "machine_type", "model", "usable", "alias_of"]
        ):
            if r["machine_type"] == chosen.get(r["host"]) and r["usable"] and not r["alias_of"]:
                usable.setdefault(r["host"], set()).add(r["model"])
        expansions: dict[str, dict[str, Expansion]] = {}
        for r in _narrow(
            store, "expansion", run, hosts, ["host", "machine_type", "kind", "model", "enabled", "disabled"]
        ):
            if r["machine_type"] == chosen.get(r["host"]):
                features = dict.fromkeys(r["disabled"], False)
                features.update(dict.fromkeys(r["enabled"], True))
                expansions.setdefault(r["host"], {})[r["kind"]] = Expansion(
                    model=r["model"], features=features
                )
        for host in hosts:
            mt = chosen.get(host)
            kinds = expansions.get(host, {})
            out[(host, run)] = (
                None
                if mt is None
                else (
                    mt,
                    offered_from(kinds.get("static"), kinds.get("full")),
                    frozenset(usable.get(host, ())),
                )
            )
    return out


Record = dict[str, Any]


def _differs(before: Record, after: Record) -> bool:
    return before["cpu_digest"] != after["cpu_digest"] or any(before[fact] != after[fact] for fact in _FACTS)


def _row(before: Record, after: Record, old: CpuState | None, new: CpuState | None) -> Record | None:
    """One drift row, or None when neither the CPU data nor a fact changed."""
    changed = [fact for fact in _FACTS if before[fact] != after[fact]]
    f_old, f_new = (old[1], new[1]) if old and new else (frozenset(), frozenset())
    m_old, m_new = (old[2], new[2]) if old and new else (frozenset(), frozenset())
    if old and new and old[0] != new[0]:
        changed.append("machine_type")
    if not changed and f_old == f_new and m_old == m_new:
        return None
    row: Record = {
        "host": after["host"],
        "pool": after["pool"],
        "collected_at": after["collected_at"],
        "run_id": after["run_id"],
        "previous_at": before["collected_at"],
        "previous_run": before["run_id"],
        "machine_type": new[0] if new else None,
        "features_added": sorted(f_new - f_old),
        "features_removed": sorted(f_old - f_new),
        "models_gained": sorted(m_new - m_old),
        "models_lost": sorted(m_old - m_new),
        "changed": changed,
    }
    for fact in _FACTS:
        row[f"{fact}_before"] = before[fact]
        row[fact] = after[fact]
    return row


def _records(store: Store, runs: Iterable[str], accel: str, hosts: set[str] | None) -> Iterator[Record]:
    """The successful ``accel`` records of ``hosts`` (None: all), run by run, oldest first."""
    ok, under = pa.scalar(Status.OK.value), pa.scalar(accel)
    for run in runs:
        # Empty for a verify run, which writes no hosts rows.
        table = store.run_table(HOSTS.name, run, columns=_HOST_COLUMNS, hosts=hosts)
        table = table.filter(pc.and_(pc.equal(table["status"], ok), pc.equal(table["accel"], under)))
        yield from rows_of(table)


def drift(
    store: Store,
    pool: str | None = None,
    *,
    accel: str = Accel.KVM,
    machine_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ends: bool = False,
    hosts: Iterable[str] | None = None,
) -> pd.DataFrame:
    """What changed on each host: features and usable models, next to QEMU, kernel, microcode.

    Reads the committed runs from ``since`` to ``until`` (run ids, inclusive;
    default: all), one run at a time, keeping one record per host: memory is
    bounded by the fleet, not by its history. By default one row per
    successful record that differs from the host's previous one in the window
    (CPU data or a fact); with ``ends``, one row per host comparing its first
    and last record in the window ("what changed between last month's run
    and now"). A host's first record is not drift and makes no row.

    ``pool`` keeps the hosts whose latest record names it; ``machine_type``
    (resolved or alias) picks the machine type compared, else each record's
    first probed one, shown in ``machine_type``. CPU data is read back only
    for the records that changed.
    """
    runs = [
        r.run_id
        for r in store.runs()
        if (since is None or r.run_id >= since) and (until is None or r.run_id <= until)
    ]
    wanted = set(hosts) if hosts is not None else None
    if pool is not None:
        members = {s.host for s in store.latest(pool)}
        wanted = members if wanted is None else wanted & members
    first: dict[str, Record] = {}
    last: dict[str, Record] = {}
    pairs: list[tuple[Record, Record]] = []
    for record in _records(store, runs, accel, wanted):
        host = record["host"]
        previous = last.get(host)
        if previous is None:
            first[host] = record
        elif not ends and _differs(previous, record):
            pairs.append((previous, record))
        last[host] = record
    if ends:
        pairs = [(first[h], last[h]) for h in sorted(first) if _differs(first[h], last[h])]
    cpu = _cpu_states(
        store,
        {(r["host"], r["detail_run"]) for pair in pairs for r in pair if r["detail_run"] is not None},
        machine_type,
    )
    rows = [
        row
        for before, after in pairs
        if (
            row := _row(
                before,
                after,
                cpu.get((before["host"], before["detail_run"])),
                cpu.get((after["host"], after["detail_run"])),
            )
        )
        is not None
    ]
    frame = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    return frame.sort_values(["collected_at", "host"]).reset_index(drop=True)
