"""pandas views of the store for notebooks and ad-hoc questions.

The notebooks in ``notebooks/`` only call these: a rule written into a
notebook cell drifts from the product, a function here is tested. Every
frame is built from the store's public readers (``latest``, ``snapshots``,
``table``), so it sees committed runs only, through the current schema.

Questions it answers, the ones operators ask after an incident:
which hosts failed and where (``failures``), which CPU does each host offer
(``feature_matrix``), which models run where (``model_matrix``), what a
microcode or kernel update took away and when (``feature_changes``), and how
the pool's answer is made up (``pool_summary``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .baseline.member import offered, offered_from
from .probe.records import Expansion
from .store import Store

if TYPE_CHECKING:  # matplotlib is optional: imported only by the plotting helpers
    from matplotlib.axes import Axes


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


def _pool_probes(store: Store, pool: str, machine_type: str | None, accel: str
                 ) -> tuple[str, dict[str, Any]]:
    hosts = [s.host for s in store.latest(pool)]
    snaps = store.snapshots(hosts, accel)
    if machine_type is None:
        common = set.intersection(*(set(s.machines) for s in snaps.values())) if snaps else set()
        if not common:
            raise ValueError(f"pool {pool!r}: no machine type probed on every host; pass one")
        machine_type = max(common)
    return machine_type, {h: s.machines[machine_type] for h, s in snaps.items()
                          if machine_type in s.machines}


def feature_matrix(store: Store, pool: str, machine_type: str | None = None,
                   accel: str = "kvm") -> pd.DataFrame:
    """Hosts x features, True where the host offers the feature (what a guest could get there).

    Columns are sorted so the features every host offers come first and the
    rare ones last: the blockers are on the right.
    """
    _, probes = _pool_probes(store, pool, machine_type, accel)
    sets = {host: offered(mp) for host, mp in sorted(probes.items())}
    names = sorted(set().union(*sets.values()), key=lambda f: (-sum(f in s for s in sets.values()), f))
    return pd.DataFrame([[f in s for f in names] for s in sets.values()],
                        index=pd.Index(list(sets), name="host"), columns=names)


def model_matrix(store: Store, pool: str, machine_type: str | None = None,
                 accel: str = "kvm") -> pd.DataFrame:
    """Hosts x non-alias CPU models, True where QEMU says the model is usable on that host."""
    _, probes = _pool_probes(store, pool, machine_type, accel)
    usable = {host: {m.name: m.usable for m in mp.models if m.alias_of is None}
              for host, mp in sorted(probes.items())}
    frame = pd.DataFrame.from_dict(usable, orient="index").fillna(False).astype(bool)
    frame.index.name = "host"
    counts = {str(name): int(n) for name, n in frame.sum().items()}
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return frame[[name for name, _ in order]]


def pool_summary(store: Store, pool: str, machine_type: str | None = None,
                 accel: str = "kvm") -> pd.DataFrame:
    """Per feature: how many hosts offer it and which lack it (the blockers), rarest gaps first."""
    matrix = feature_matrix(store, pool, machine_type, accel)
    total = len(matrix)
    rows = []
    for feature in matrix.columns:
        lacking = sorted(matrix.index[~matrix[feature]])
        rows.append({"feature": feature, "hosts_offering": total - len(lacking),
                     "hosts": total, "lacking": lacking})
    return pd.DataFrame(rows, columns=["feature", "hosts_offering", "hosts", "lacking"])


def feature_changes(store: Store, host: str, machine_type: str | None = None,
                    accel: str = "kvm") -> pd.DataFrame:
    """Every change of a host's offered features over history, with the facts of the moment.

    This is the "since when has kvm17 lacked TSX?" question: one row per
    successful run whose CPU data differed from the previous one, with the
    features added and removed and the microcode, kernel and QEMU then.
    """
    hosts = store.table("hosts", columns=[
        "run_id", "collected_at", "host", "status", "accel", "detail_run", "microcode",
        "kernel_release", "qemu_version"]).to_pandas()
    mine = hosts[(hosts["host"] == host) & (hosts["status"] == "ok") & (hosts["accel"] == accel)]
    mine = mine.sort_values("run_id")
    detail_runs = sorted(set(mine["detail_run"].dropna()))
    exp = store.table("expansion", runs=detail_runs).to_pandas()
    exp = exp[exp["host"] == host]
    if machine_type is None and not exp.empty:
        machine_type = max(exp["machine_type"])
    exp = exp[exp["machine_type"] == machine_type]
    by_run: dict[str, frozenset[str]] = {}
    for run, group in exp.groupby("run_id"):
        kinds = {row["kind"]: _expansion(row) for _, row in group.iterrows()}
        by_run[str(run)] = offered_from(kinds.get("static"), kinds.get("full"))
    rows: list[dict[str, Any]] = []
    previous: frozenset[str] | None = None
    for _, row in mine.iterrows():
        current = by_run.get(str(row["detail_run"]))
        if current is None or current == previous:
            continue
        rows.append({
            "run_id": row["run_id"], "collected_at": row["collected_at"],
            "added": sorted(current - previous) if previous is not None else sorted(current),
            "removed": sorted(previous - current) if previous is not None else [],
            "microcode": row["microcode"], "kernel_release": row["kernel_release"],
            "qemu_version": row["qemu_version"], "first": previous is None,
        })
        previous = current
    return pd.DataFrame(rows, columns=["run_id", "collected_at", "added", "removed", "microcode",
                                       "kernel_release", "qemu_version", "first"])


def _expansion(row: pd.Series) -> Expansion:
    features = dict.fromkeys(row["disabled"], False)
    features.update(dict.fromkeys(row["enabled"], True))
    return Expansion(model=str(row["model"]), features=features)


def plot_matrix(matrix: pd.DataFrame, ax: Axes | None = None, title: str = "") -> Axes:
    """A host x feature (or model) heat map: white gaps are what holds the pool back."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.12 * matrix.shape[1]),
                                      max(2.0, 0.3 * matrix.shape[0])))
    ax.imshow(matrix.to_numpy(dtype=float), aspect="auto", cmap="Greens", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_yticks(range(len(matrix.index)), labels=[str(i) for i in matrix.index])
    step = max(1, matrix.shape[1] // 60)
    ticks: Sequence[int] = range(0, matrix.shape[1], step)
    ax.set_xticks(list(ticks), labels=[str(matrix.columns[i]) for i in ticks], rotation=90,
                  fontsize=6)
    ax.set_title(title)
    return ax


def plot_failures(frame: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Failed hosts per run, stacked by stage."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    if frame.empty:
        ax.set_title("no failed hosts")
        return ax
    pivot = frame.pivot_table(index="collected_at", columns="stage", values="hosts",
                              aggfunc="sum", fill_value=0)
    pivot.plot(kind="bar", stacked=True, ax=ax, width=0.8)
    ax.set_ylabel("failed hosts")
    return ax
