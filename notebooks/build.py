"""Write ``fleet_overview.ipynb`` from the cells below, so the notebook is reviewed as code.

    python notebooks/build.py        # rewrites notebooks/fleet_overview.ipynb (outputs empty)

The notebook only calls ``fleetcpu.analysis`` (tested); it reads the store at
``$FLEETCPU_STORE`` (else the default location) and the pool in
``$FLEETCPU_POOL`` (else the first pool). On an empty store it builds a demo
store by probing this machine (``inventories/local.txt``), so it always runs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

CELLS = [
    (
        "markdown",
        """# Fleet CPU overview

What the store knows about the fleet: which hosts answer, what each CPU offers,
which models run where, what holds each pool back, and what changed on a host
over time. Every cell calls `fleetcpu.analysis`; nothing here is logic of its own.
`fleetcpu report --pool P -o report.html` renders the same figures for people
without Jupyter.""",
    ),
    (
        "code",
        """%matplotlib inline
import os

import pandas as pd

from fleetcpu import analysis
from fleetcpu.analysis import plots
from fleetcpu.analysis.demo import open_or_demo
from fleetcpu.store import resolve_location

pd.set_option("display.max_colwidth", 80)
store = open_or_demo(resolve_location(None))
pools = store.pools()
pool = os.environ.get("FLEETCPU_POOL") or pools[0]
print(f"store {store.root}: {len(store.runs())} run(s), pools {pools}; looking at {pool!r}")""",
    ),
    (
        "markdown",
        """## Pool summary

One row per pool: who is in it, what they run, and the CPU every member can run
(`model`, `cpu`); `problem` says why a pool has no answer.""",
    ),
    (
        "code",
        """summary = analysis.pool_summary(store)
summary""",
    ),
    (
        "markdown",
        """## Feature coverage

A row per group of identical hosts, a column per feature that differs between
them: a white cell is a feature that host cannot give a guest, so the pool cannot
have it.""",
    ),
    (
        "code",
        """data = analysis.load_pool(store, pool)
if data.problem:
    print("missing:", data.problem)
for m in data.missing:
    print(f"missing {m.host}: {m.code}: {m.message}")
cov = analysis.coverage(data)
plots.plot_coverage(cov, f"{pool}: features offered") if not cov.empty else \\
    plots.message_figure(f"no coverage to draw: {data.problem or 'no member data'}")""",
    ),
    (
        "markdown",
        """## Model usability

A column per QEMU CPU model usable on some hosts only: white means that host's
QEMU refuses it; the table lists the features each refusing host lacks.""",
    ),
    (
        "code",
        """models = analysis.usability_matrix(data)
usable = analysis.usability(data)
display(usable[~usable["usable"]].head(20))
plots.plot_usability(models, f"{pool}: CPU models usable") if not models.empty else \\
    plots.message_figure(f"no models to draw: {data.problem or 'no member data'}")""",
    ),
    (
        "markdown",
        """## Blockers

Left: each feature some member offers but the pool lacks, by how many hosts
block it (one blocker is cheap to fix). Right: what removing each group of
identical hosts would gain; the same numbers as `fleetcpu blockers`.""",
    ),
    (
        "code",
        """tables = analysis.blockers(data)
display(tables.groups.head(10))
plots.plot_blockers(tables.features, tables.groups, pool) if tables.baseline else \\
    plots.message_figure(f"no blockers to explain: {tables.problem}")""",
    ),
    (
        "markdown",
        """## Drift

One marker per change of a host between two successful runs: red lost features,
green gained, grey only QEMU/kernel/microcode changed. A microcode update that
removed TSX is one red marker labelled `-hle -rtm microcode a->b`.""",
    ),
    (
        "code",
        """changes = analysis.drift(store, pool)
if len(store.runs()) < 2:
    print("one run stored: drift needs two runs of the same host (collect again later)")
display(changes[["collected_at", "host", "features_removed", "features_added", "models_lost",
                 "models_gained", "changed", "microcode_before", "microcode"]].tail(20))
plots.plot_drift(changes)""",
    ),
    (
        "markdown",
        """## Where collection fails

The latest record of each host, and failed hosts per run by the stage that
failed: a growing bar is a fleet problem, not a host problem.""",
    ),
    (
        "code",
        """display(analysis.latest_hosts(store, pool))
plots.plot_failures(analysis.failures(store, pool))""",
    ),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in CELLS:
        maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(maker(source))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: the committed file equals what build() writes
    return nb


if __name__ == "__main__":
    nbformat.write(build(), Path(__file__).with_name("fleet_overview.ipynb"))
