"""Write ``fleet-overview.ipynb`` from the cells below, so the notebook is reviewed as code.

    python notebooks/build.py        # rewrites notebooks/fleet-overview.ipynb (outputs empty)

The notebook only calls ``fleetcpu.analysis`` (tested); it reads the store at
``$FLEETCPU_STORE`` (else the default location) and the pool in
``$FLEETCPU_POOL`` (else the first pool).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

CELLS = [
    ("markdown", """# Fleet CPU overview

What the store knows about the fleet: which hosts answer, what each CPU offers,
which models run where, what holds each pool back, and what changed on a host
over time. Every cell calls `fleetcpu.analysis`; nothing here is logic of its own."""),
    ("code", """import os

import pandas as pd

from fleetcpu import analysis
from fleetcpu.store import Store, resolve_location

pd.set_option("display.max_colwidth", 80)
store = Store.open(resolve_location(None))
pools = store.pools()
pool = os.environ.get("FLEETCPU_POOL") or pools[0]
print(f"store {store.root}: pools {pools}; looking at {pool!r}")"""),
    ("markdown", "## Latest state of every host"),
    ("code", "analysis.latest_hosts(store)"),
    ("markdown", "## Where collection fails, run by run"),
    ("code", """fails = analysis.failures(store)
analysis.plot_failures(fails)
fails.tail(20)"""),
    ("markdown", """## What each host of the pool offers

Green is offered. Features every host offers are on the left; the white gaps on
the right are the blockers."""),
    ("code", """matrix = analysis.feature_matrix(store, pool)
analysis.plot_matrix(matrix, title=f"{pool}: offered features")
matrix.sum().sort_values().head(15)"""),
    ("markdown", "## Which CPU models are usable where"),
    ("code", """models = analysis.model_matrix(store, pool)
models.loc[:, models.any()].T.head(30)"""),
    ("markdown", "## The features the pool loses, and who blocks them"),
    ("code", """summary = analysis.pool_summary(store, pool)
summary[summary["hosts_offering"] < summary["hosts"]].head(30)"""),
    ("markdown", """## The pool's CPU

The same computation as `fleetcpu baseline --pool`."""),
    ("code", """from fleetcpu.baseline import compute_baseline
from fleetcpu.baseline.select import select_members

sel = select_members(store, pool, accel="kvm")
b = compute_baseline(pool, sel.machine_type, "kvm", sel.members, missing=sel.missing,
                     notices=sel.notices)
print("-cpu", b.cpu)
print("-cpu", b.custom)
pd.DataFrame([(w.code, w.feature, ", ".join(w.hosts)) for w in b.warnings],
             columns=["warning", "feature", "hosts"])"""),
    ("markdown", """## What changed on one host over time

One row per change of the CPU a host offers, with the microcode, kernel and
QEMU of that moment: "since when has this host lacked TSX, and why?\""""),
    ("code", """host = os.environ.get("FLEETCPU_HOST") or matrix.index[0]
analysis.feature_changes(store, host)"""),
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
    nbformat.write(build(), Path(__file__).with_name("fleet-overview.ipynb"))
