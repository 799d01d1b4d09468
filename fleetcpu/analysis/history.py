"""The store's history as pandas tables: who answered, where collection broke, what drifted.

Drift is the question after an incident: "since when has kvm17 lacked TSX,
and what changed on it then?". One row is one host between two of its
successful records: the features and usable models it gained and lost, next
to the QEMU, kernel and microcode before and after. A microcode update that
removed ``hle``/``rtm`` is one row naming both. Only the CPU data of records
whose digest changed is read back, so years of unchanged hourly runs cost
the ``hosts`` rows alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..baseline.member import offered
from ..probe.records import MachineProbe
from ..store import Store
from ..store.schema import DETAIL_TABLES
from ..store.snapshot import columns as rows_of
from ..store.snapshot import machine_probes


def latest_hosts(store: Store, pool: str | None = None) -> pd.DataFrame:
    """One row per host: its latest record, and when it last succeeded per accelerator."""
    rows = [
        {
            "host": s.host, "pool": s.pool, "status": s.status, "stage": s.stage,
            "error": s.error, "accel": s.accel, "qemu_version": s.qemu_version,
            "collected_at": s.collected_at, "cpu_digest": s.cpu_digest,
            "last_ok_kvm": s.kvm.collected_at if s.kvm else None,
            "last_ok_tcg": s.tcg.collected_at if s.tcg else None,
        }
        for s in store.latest(pool)
    ]
    return pd.DataFrame(rows, columns=[
        "host", "pool", "status", "stage", "error", "accel", "qemu_version", "collected_at",
        "cpu_digest", "last_ok_kvm", "last_ok_tcg"])


def run_history(store: Store) -> pd.DataFrame:
    """One row per committed run: when, what, and how many hosts failed."""
    runs = store.table("runs").to_pandas()
    return runs.sort_values("run_id").reset_index(drop=True)


def failures(store: Store, pool: str | None = None) -> pd.DataFrame:
    """Failed host rows over history, counted per run and stage: where collection breaks."""
    hosts = store.table("hosts", columns=["run_id", "collected_at", "host", "pool", "status",
                                          "stage"]).to_pandas()
    failed = hosts[hosts["status"] == "failed"]
    if pool is not None:
        failed = failed[failed["pool"] == pool]
    return (failed.groupby(["run_id", "stage"]).agg(hosts=("host", "nunique"),
                                                    collected_at=("collected_at", "min"))
            .reset_index().sort_values(["run_id", "stage"]).reset_index(drop=True))


_FACTS = ("qemu_version", "kernel_release", "microcode")
_HOST_COLUMNS = ["run_id", "collected_at", "host", "pool", "status", "accel", "detail_run",
                 "cpu_digest", *_FACTS]
DRIFT_COLUMNS = [
    "host", "pool", "collected_at", "run_id", "previous_at", "previous_run", "machine_type",
    "features_added", "features_removed", "models_gained", "models_lost", "changed",
    *(f"{fact}_before" for fact in _FACTS), *_FACTS,
]


CpuState = tuple[str, frozenset[str], frozenset[str]]


def _pick(machines: Mapping[str, MachineProbe], machine_type: str | None) -> MachineProbe | None:
    """The machine type drift compares: the one asked for (resolved or alias), else the first probed."""
    if machine_type is not None:
        if machine_type in machines:
            return machines[machine_type]
        return next((mp for mp in machines.values() if mp.requested == machine_type), None)
    return next((mp for name, mp in machines.items() if name != "none"), None)


def _cpu_states(store: Store, wanted: Iterable[tuple[str, str]], machine_type: str | None
                ) -> dict[tuple[str, str], CpuState | None]:
    """(host, detail run) -> (machine type, offered features, usable named models), read per run."""
    by_run: dict[str, set[str]] = {}
    for host, run in wanted:
        by_run.setdefault(run, set()).add(host)
    out: dict[tuple[str, str], CpuState | None] = {}
    for run, hosts in sorted(by_run.items()):
        keep = pa.array(sorted(hosts))
        tables = [store.table(spec.name, runs=[run]) for spec in DETAIL_TABLES]
        tables = [t.filter(pc.is_in(t["host"], value_set=keep)) for t in tables]
        probes = machine_probes(*tables)
        for host in hosts:
            mp = _pick(probes.get(host, {}), machine_type)
            out[(host, run)] = None if mp is None else (
                mp.machine_type, offered(mp),
                frozenset(m.name for m in mp.models if m.alias_of is None and m.usable))
    return out


Record = dict[str, Any]


def _pairs(records: list[Record], since: str | None, until: str | None
           ) -> list[tuple[Record, Record]]:
    """(before, after) record pairs to compare: consecutive ones, or each host's state at two runs."""
    if since is None and until is None:
        return [(b, a) for b, a in itertools.pairwise(records) if b["host"] == a["host"]]
    start: dict[str, Record] = {}
    end: dict[str, Record] = {}
    for r in records:  # ordered by time within a host: the last assignment wins
        if since is None:
            start.setdefault(r["host"], r)  # no start given: from the host's first record
        elif r["run_id"] <= since:
            start[r["host"]] = r
        if until is None or r["run_id"] <= until:
            end[r["host"]] = r
    return [(start[h], end[h]) for h in sorted(start.keys() & end.keys())
            if start[h]["run_id"] != end[h]["run_id"]]



def _row(before: Record, after: Record, old: CpuState | None, new: CpuState | None
         ) -> Record | None:
    """One drift row, or None when neither the CPU data nor a fact changed."""
    changed = [fact for fact in _FACTS if before[fact] != after[fact]]
    f_old, f_new = (old[1], new[1]) if old and new else (frozenset(), frozenset())
    m_old, m_new = (old[2], new[2]) if old and new else (frozenset(), frozenset())
    if old and new and old[0] != new[0]:
        changed.append("machine_type")
    if not changed and f_old == f_new and m_old == m_new:
        return None
    row: Record = {
        "host": after["host"], "pool": after["pool"], "collected_at": after["collected_at"],
        "run_id": after["run_id"], "previous_at": before["collected_at"],
        "previous_run": before["run_id"], "machine_type": new[0] if new else None,
        "features_added": sorted(f_new - f_old), "features_removed": sorted(f_old - f_new),
        "models_gained": sorted(m_new - m_old), "models_lost": sorted(m_old - m_new),
        "changed": changed,
    }
    for fact in _FACTS:
        row[f"{fact}_before"] = before[fact]
        row[fact] = after[fact]
    return row


def drift(store: Store, pool: str | None = None, *, accel: str = "kvm",
          machine_type: str | None = None, since: str | None = None, until: str | None = None,
          hosts: Iterable[str] | None = None) -> pd.DataFrame:
    """What changed on each host, run to run: features and usable models, QEMU, kernel, microcode.

    Over all history by default: one row per successful record that differs
    from the host's previous successful record under ``accel`` (a change of
    CPU data or of a fact). With ``since`` and/or ``until`` (run ids), one row
    per host whose last record at or before ``since`` (else its first) differs
    from its last at or before ``until`` (else its latest): "what changed
    between last month's run and now".
    A host's first record is not drift and makes no row.

    ``pool`` keeps the hosts whose later record names it; ``machine_type``
    (resolved or alias) picks the machine type compared, else each record's
    first probed one, shown in ``machine_type``.
    """
    table = store.table("hosts", columns=_HOST_COLUMNS)
    ok = pc.and_(pc.equal(table["status"], pa.scalar("ok")),
                 pc.equal(table["accel"], pa.scalar(accel)))
    table = table.filter(ok)
    if hosts is not None:
        table = table.filter(pc.is_in(table["host"], value_set=pa.array(sorted(set(hosts)))))
    records = sorted(rows_of(table), key=lambda r: (r["host"], r["collected_at"], r["run_id"]))
    pairs = _pairs(records, since, until)
    if pool is not None:
        pairs = [(b, a) for b, a in pairs if a["pool"] == pool]
    wanted = {(r["host"], r["detail_run"]) for pair in pairs for r in pair
              if r["detail_run"] is not None}
    cpu = _cpu_states(store, wanted, machine_type)
    rows = [row for before, after in pairs
            if (row := _row(before, after, cpu.get((before["host"], before["detail_run"])),
                            cpu.get((after["host"], after["detail_run"])))) is not None]
    frame = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    return frame.sort_values(["collected_at", "host"]).reset_index(drop=True)
