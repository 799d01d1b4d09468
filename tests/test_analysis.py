"""The analysis helpers and the notebook, on a store with real history.

The store is built the way an air-gapped site would build it: the real probe
run against replay hosts, documents imported with ``fleetcpu import``, times
spread over two days. ``kvm17`` gets a microcode update between two runs
(the EPYC 7601 captured before and after its IBPB microcode: ``ibpb``
appears, and that host's newer kernel lost ``rdtscp`` under KVM), ``kvm18``
fails once, and the notebook is executed top to bottom by a real Jupyter
kernel.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fleetcpu import analysis
from fleetcpu.store import Store

from .conftest import REPO, run_cli
from .test_baseline_replay import _shift, probe_doc

NOTEBOOK = REPO / "notebooks" / "fleet-overview.ipynb"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("analysis")
    path = tmp / "store"
    plan = [
        ("kvm17", "EPYC-7601-32-Core", "0x8001227", timedelta(days=2), ()),
        ("kvm18", "Ryzen-7-1800X-Eight-Core", "0x8001137", timedelta(days=2), ()),
        ("kvm19", "Ryzen-9-3900X-12-Core", "0x8701013", timedelta(days=2), ()),
        ("kvm18", "Ryzen-7-1800X-Eight-Core", "0x8001137", timedelta(days=1),
         ("--qemu-binary", "/nonexistent")),
        ("kvm17", "EPYC-7601-32-Core-ibpb", "0x8001250", timedelta(hours=1), ()),
        ("kvm19", "Ryzen-9-3900X-12-Core", "0x8701013", timedelta(hours=1), ()),
    ]
    for i, (host, capture, microcode, age, extra) in enumerate(plan):
        rc, text = probe_doc(tmp / f"h{i}", capture, "--accel", "kvm", *extra, microcode=microcode,
                             hostname=host)
        assert rc == (10 if extra else 0), text
        doc = tmp / f"{i}-{host}.json"
        doc.write_text(_shift(text, age))
        res = run_cli("import", "--store", str(path), "--pool", "prod", "--host", host, str(doc))
        assert res.returncode == 0, res.stderr
    return path


def test_latest_hosts_and_failures(store: Path) -> None:
    s = Store.open(store)
    latest = analysis.latest_hosts(s).set_index("host")
    assert list(latest.index) == ["kvm17", "kvm18", "kvm19"]
    assert latest.loc["kvm18", "status"] == "failed" and latest.loc["kvm18", "stage"] == "qemu"
    assert latest.loc["kvm18", "last_ok_kvm"] is not None
    fails = analysis.failures(s)
    assert list(fails["stage"]) == ["qemu"] and list(fails["hosts"]) == [1]
    assert len(analysis.run_history(s)) == 6


def test_feature_and_model_matrices(store: Path) -> None:
    s = Store.open(store)
    matrix = analysis.feature_matrix(s, "prod")
    assert list(matrix.index) == ["kvm17", "kvm18", "kvm19"]
    assert matrix.all(axis=0).iloc[0] and "fpu" in matrix.columns
    # The IBPB microcode gave kvm17 ibpb, but its host lost rdtscp: both now block.
    assert matrix.loc["kvm17", "ibpb"] and not matrix.loc["kvm17", "rdtscp"]
    assert matrix.loc["kvm19", "rdtscp"]
    counts = matrix.sum().tolist()
    assert counts == sorted(counts, reverse=True), "common features first, blockers last"
    summary = analysis.pool_summary(s, "prod").set_index("feature")
    assert summary.loc["rdtscp", "lacking"] == ["kvm17"]
    assert summary.loc["fpu", "lacking"] == [] and summary.loc["fpu", "hosts_offering"] == 3
    models = analysis.model_matrix(s, "prod")
    assert models.shape[0] == 3 and models.dtypes.eq(bool).all()


def test_feature_changes_show_the_microcode_update(store: Path) -> None:
    s = Store.open(store)
    changes = analysis.feature_changes(s, "kvm17")
    assert len(changes) == 2
    first, update = changes.iloc[0], changes.iloc[1]
    assert first["first"] and first["microcode"] == "0x8001227"
    assert update["added"] == ["ibpb"] and update["removed"] == ["rdtscp"]
    assert update["microcode"] == "0x8001250"
    assert update["collected_at"] > first["collected_at"]
    assert analysis.feature_changes(s, "kvm19").shape[0] == 1, "identical runs are no change"


def test_notebook_is_what_build_writes() -> None:
    """The committed notebook is generated from notebooks/build.py, never edited by hand."""
    sys.path.insert(0, str(REPO / "notebooks"))
    try:
        import build  # type: ignore[import-not-found]
        import nbformat
    finally:
        sys.path.pop(0)
    assert nbformat.reads(NOTEBOOK.read_text(), as_version=4) == build.build()


def test_notebook_runs_top_to_bottom(store: Path, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(FLEETCPU_STORE=str(store), FLEETCPU_POOL="prod", FLEETCPU_HOST="kvm17",
                      MPLBACKEND="Agg")
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "kvm17" in text and "rdtscp" in text and "ibpb" in text
    assert "-cpu " in text
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if o.get("output_type") == "error"]
