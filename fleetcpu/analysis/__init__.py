"""pandas views of the store for notebooks, ``fleetcpu report`` and ad-hoc questions.

The notebooks in ``notebooks/`` and the report only call these: a rule
written into a notebook cell drifts from the product, a function here is
tested. Pool tables come from the CLI's own member selection, so they show
the numbers ``fleetcpu baseline`` and ``fleetcpu blockers`` print; history
tables read the store's committed runs through its current schema.

* the pool: ``load_pool`` -> ``PoolData``; ``coverage`` (hosts x features),
  ``usability`` / ``usability_matrix`` (hosts x models, with the blocking
  features), ``blockers`` (``BlockerTables``), ``pool_summary`` (members,
  vendors, QEMU versions, machine types, the baseline model);
* history: ``latest_hosts``, ``run_history``, ``failures``, ``drift``;
* figures (matplotlib, imported on first use): ``fleetcpu.analysis.plots``.
"""

from .history import drift, failures, latest_hosts, run_history, runs_since
from .pool import (
    BlockerTables,
    PoolData,
    blockers,
    coverage,
    load_pool,
    pool_summary,
    summary_row,
    usability,
    usability_matrix,
)

__all__ = [
    "BlockerTables",
    "PoolData",
    "blockers",
    "coverage",
    "drift",
    "failures",
    "latest_hosts",
    "load_pool",
    "pool_summary",
    "run_history",
    "runs_since",
    "summary_row",
    "usability",
    "usability_matrix",
]
