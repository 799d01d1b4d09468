"""One pool as ``fleetcpu baseline`` sees it, as pandas tables: coverage, usability, blockers.

Every table here is computed from the same member selection as the CLI
(``select_members``: latest successful data per host, ``--max-age``, the
pool's machine type), so a number in a notebook or a report is the number
``fleetcpu baseline`` and ``fleetcpu blockers`` print. A pool that cannot be
computed (unknown, empty, every member failed or stale) is not an exception
here: ``PoolData.problem`` says why, and every table is then empty, so a
report still renders and says what is missing. A damaged or foreign store
is not a pool's problem: ``StoreError`` propagates (exit 4), as in every
other command, rather than becoming "0 member(s)".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from ..baseline.compute import compute_baseline
from ..baseline.select import DEFAULT_MAX_AGE, classify, select_members
from ..baseline.types import Baseline, Member, Missing, Notice, Policy
from ..errors import FleetcpuError, StoreError
from ..explain import explain_blockers
from ..store import HostState, Store
from ..vocabulary import Accel

__all__ = [
    "FEATURE_COLUMNS",
    "GROUP_COLUMNS",
    "MODEL_COLUMNS",
    "SUMMARY_COLUMNS",
    "BlockerTables",
    "PoolData",
    "blockers",
    "coverage",
    "load_pool",
    "pool_summary",
    "summary_row",
    "usability",
    "usability_matrix",
]


@dataclass(frozen=True)
class PoolData:
    """The members a pool's answer is computed from, and what is missing from it."""

    pool: str
    accel: str
    #: The machine type chosen as ``fleetcpu baseline`` would; None when nothing could be chosen.
    machine_type: str | None
    members: tuple[Member, ...]
    missing: tuple[Missing, ...]
    notices: tuple[Notice, ...]
    #: Every host whose latest record names the pool, failed or not.
    states: tuple[HostState, ...]
    policy: Policy = field(default_factory=Policy)
    #: Machine type -> how many members were probed with it.
    machine_types: tuple[tuple[str, int], ...] = ()
    #: Why there is nothing to compute on (one line), else None.
    problem: str | None = None


def load_pool(
    store: Store,
    pool: str,
    *,
    accel: str = Accel.KVM,
    machine_type: str | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> PoolData:
    """Select the pool's members exactly as the CLI does; a refusal becomes ``problem``."""
    now = now or datetime.now(UTC)
    policy = policy or Policy()
    try:
        states = tuple(store.latest(pool))
    except StoreError:
        raise
    except FleetcpuError as exc:
        return PoolData(pool, accel, None, (), (), (), (), policy, problem=str(exc))
    try:
        sel = select_members(store, pool, accel=accel, machine_type=machine_type, max_age=max_age, now=now)
    except StoreError:
        raise
    except FleetcpuError as exc:
        found = classify(states, accel, max_age, now)
        return PoolData(pool, accel, None, (), found.missing, found.notices, states, policy, problem=str(exc))
    return PoolData(
        pool, accel, sel.machine_type, sel.members, sel.missing, sel.notices, states, policy, sel.probed
    )


def coverage(data: PoolData) -> pd.DataFrame:
    """Hosts x features, True where the host offers the feature on the pool's machine type.

    Columns run from what every member offers to the rarest: the gaps on the
    right are what holds the pool back.
    """
    sets = {m.host: m.offered for m in sorted(data.members, key=lambda m: m.host)}
    counts = Counter(f for s in sets.values() for f in s)
    names = sorted(counts, key=lambda f: (-counts[f], f))
    frame = pd.DataFrame(
        [[f in s for f in names] for s in sets.values()],
        index=pd.Index(list(sets), name="host"),
        columns=names,
        dtype=bool,
    )
    frame.columns.name = "feature"
    return frame


def usability(data: PoolData) -> pd.DataFrame:
    """One row per host and named model: usable there, and if not, the features it lacks for it.

    Aliases are left out: they are the versioned model they resolve to.
    """
    rows = [
        {
            "host": m.host,
            "model": cm.name,
            "usable": cm.usable,
            "blocking": list(cm.unavailable_features),
            "deprecated": cm.deprecated,
        }
        for m in sorted(data.members, key=lambda m: m.host)
        for cm in m.models
        if cm.alias_of is None
    ]
    return pd.DataFrame(rows, columns=["host", "model", "usable", "blocking", "deprecated"])


def usability_matrix(data: PoolData) -> pd.DataFrame:
    """Hosts x models, True where usable; models usable on the most hosts first.

    A model a host's QEMU does not know counts as not usable there: it cannot
    be started on that host either. A member whose probe listed no models at
    all (some captures lack ``query-cpu-definitions``) is an all-False row:
    nothing says a named model would start there.
    """
    long = usability(data)
    hosts = pd.Index(sorted(m.host for m in data.members), name="host")
    if long.empty:
        return pd.DataFrame(index=hosts, columns=pd.Index([], name="model"), dtype=bool)
    wide = long.pivot(index="host", columns="model", values="usable").reindex(hosts)
    wide = wide.astype("boolean").fillna(False).astype(bool)
    counts = wide.sum()
    order = sorted(wide.columns, key=lambda name: (-int(counts[name]), str(name)))
    return wide[order]


@dataclass(frozen=True)
class BlockerTables:
    """``fleetcpu blockers`` as tables; all empty (and ``baseline`` None) when the pool has a problem."""

    baseline: Baseline | None
    #: Why there is no answer (the selection's or the core's refusal, one line), else None.
    problem: str | None
    #: feature, reason, hosts, n_hosts, message: every feature some member offers that the pool lacks.
    features: pd.DataFrame
    #: model, reasons, hosts, n_hosts, by_some_hosts: every model the pool does not get.
    models: pd.DataFrame
    #: group, hosts, n_hosts, features_gained, n_features, model_before, model_after,
    #: new_models, score: what the pool gains without each group of identical hosts.
    groups: pd.DataFrame


FEATURE_COLUMNS = ["feature", "reason", "hosts", "n_hosts", "message"]
MODEL_COLUMNS = ["model", "reasons", "hosts", "n_hosts", "by_some_hosts"]
GROUP_COLUMNS = [
    "group",
    "hosts",
    "n_hosts",
    "features_gained",
    "n_features",
    "model_before",
    "model_after",
    "new_models",
    "score",
]


def _no_blockers(problem: str) -> BlockerTables:
    return BlockerTables(
        None,
        problem,
        pd.DataFrame(columns=FEATURE_COLUMNS),
        pd.DataFrame(columns=MODEL_COLUMNS),
        pd.DataFrame(columns=GROUP_COLUMNS),
    )


def blockers(data: PoolData) -> BlockerTables:
    """The numbers of ``fleetcpu blockers --pool`` (same selection, same core), as frames.

    A pool the core refuses (mixed vendors) is a ``problem``, as for ``load_pool``.
    """
    if data.problem is not None or data.machine_type is None:
        return _no_blockers(data.problem or "no machine type")
    try:
        found = explain_blockers(
            data.pool,
            data.machine_type,
            data.accel,
            data.members,
            data.policy,
            missing=data.missing,
            notices=data.notices,
        )
    except FleetcpuError as exc:
        return _no_blockers(str(exc))
    features = pd.DataFrame(
        [(f.feature, f.reason, list(f.hosts), len(f.hosts), f.message) for f in found.features],
        columns=FEATURE_COLUMNS,
    )
    models = pd.DataFrame(
        [
            (m.model, sorted({b.reason for b in m.blocks}), list(m.hosts), len(m.hosts), m.by_some_hosts)
            for m in found.models
        ],
        columns=MODEL_COLUMNS,
    )
    groups = pd.DataFrame(
        [
            (
                w.label,
                list(w.hosts),
                len(w.hosts),
                list(w.features),
                len(w.features),
                w.model_before,
                w.model_after,
                list(w.new_models),
                w.score,
            )
            for w in found.groups
        ],
        columns=GROUP_COLUMNS,
    )
    return BlockerTables(found.baseline, None, features, models, groups)


def _counted(values: Sequence[str | None]) -> str:
    counts = Counter(v or "unknown" for v in values)
    return ", ".join(f"{k} ({n})" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


SUMMARY_COLUMNS = [
    "pool",
    "hosts",
    "members",
    "missing",
    "latest_failed",
    "vendors",
    "qemu_versions",
    "machine_types",
    "machine_type",
    "model",
    "features",
    "abi_level",
    "cpu",
    "custom",
    "warnings",
    "problem",
]


def summary_row(data: PoolData, tables: BlockerTables | None = None) -> dict[str, object]:
    """The pool at a glance: who is in it, what they run, and the answer (or why there is none).

    ``tables`` (``blockers`` of the same data) hold the answer already: a report
    needs both, and the full baseline is the costly part of each.
    """
    base: Baseline | None = None
    problem = data.problem
    if tables is not None:
        base, problem = tables.baseline, tables.problem
    elif problem is None and data.machine_type is not None:
        try:
            base = compute_baseline(
                data.pool,
                data.machine_type,
                data.accel,
                data.members,
                data.policy,
                missing=data.missing,
                notices=data.notices,
            )
        except FleetcpuError as exc:
            problem = str(exc)
    return {
        "pool": data.pool,
        "hosts": len(data.states),
        "members": len(data.members),
        "missing": len(data.missing),
        "latest_failed": sum(not s.ok for s in data.states),
        "vendors": _counted([m.vendor for m in data.members]),
        "qemu_versions": _counted([m.qemu_version for m in data.members]),
        "machine_types": ", ".join(f"{mt} ({n})" for mt, n in data.machine_types),
        "machine_type": data.machine_type,
        "model": base.model if base else None,
        "features": len(base.features) if base else None,
        "abi_level": base.abi_level if base else None,
        "cpu": base.cpu if base else None,
        "custom": base.custom if base else None,
        "warnings": len(base.warnings) if base else 0,
        "problem": problem,
    }


def pool_summary(
    store: Store,
    pools: Sequence[str] | None = None,
    *,
    accel: str = Accel.KVM,
    max_age: timedelta = DEFAULT_MAX_AGE,
    now: datetime | None = None,
) -> pd.DataFrame:
    """One row per pool: members, vendors, QEMU versions, machine types and the baseline model."""
    names = list(pools) if pools is not None else store.pools()
    rows = [summary_row(load_pool(store, p, accel=accel, max_age=max_age, now=now)) for p in names]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
