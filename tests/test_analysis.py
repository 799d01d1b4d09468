"""The analysis API, the notebook and ``fleetcpu report``, on stores with real history.

The stores are built the way an air-gapped site builds them: the real probe
run against replay hosts (real CPUs from ``../shared/realdata``), documents
imported with ``fleetcpu import``, times spread over two days:

* pool ``prod`` (AMD): ``kvm17`` gets a microcode update between two runs
  (the EPYC 7601 captured before and after its IBPB microcode: ``ibpb``
  appears, and that host's newer kernel lost ``rdtscp`` under KVM);
  ``kvm18`` fails once after a good run; ``kvm19`` answers the same twice;
  ``kvm20`` never succeeded; ``kvm21`` got a microcode update that changed
  no feature (drift of the facts alone);
* pool ``solo``: one Intel host, one run.

Plus the edge cases the report and the notebook must survive: an empty
store, a one-host pool, a host with only failed runs, a single run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fleetcpu import analysis
from fleetcpu.analysis import plots
from fleetcpu.store import Store

from .conftest import REPO, invoke
from .test_baseline_replay import _shift, probe_doc

NOTEBOOK = REPO / "notebooks" / "fleet_overview.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"

PLAN = [
    ("prod", "kvm17", "EPYC-7601-32-Core", "0x8001227", timedelta(days=2), ()),
    ("prod", "kvm18", "Ryzen-7-1800X-Eight-Core", "0x8001137", timedelta(days=2), ()),
    ("prod", "kvm19", "Ryzen-9-3900X-12-Core", "0x8701013", timedelta(days=2), ()),
    (
        "prod",
        "kvm18",
        "Ryzen-7-1800X-Eight-Core",
        "0x8001137",
        timedelta(days=1),
        ("--qemu-binary", "/nonexistent"),
    ),
    (
        "prod",
        "kvm20",
        "Ryzen-7-1800X-Eight-Core",
        "0x8001137",
        timedelta(days=1),
        ("--qemu-binary", "/nonexistent"),
    ),
    ("prod", "kvm17", "EPYC-7601-32-Core-ibpb", "0x8001250", timedelta(hours=1), ()),
    ("prod", "kvm19", "Ryzen-9-3900X-12-Core", "0x8701013", timedelta(hours=1), ()),
    ("prod", "kvm21", "Ryzen-9-3900X-12-Core", "0x8701013", timedelta(hours=30), ()),
    ("prod", "kvm21", "Ryzen-9-3900X-12-Core", "0x8701021", timedelta(hours=3), ()),
    ("solo", "solo1", "Xeon-Gold-6130", "0xb000038", timedelta(hours=2), ()),
]


def _build(tmp: Path, plan: list[tuple[Any, ...]]) -> Path:
    path = tmp / "store"
    for i, (pool, host, capture, microcode, age, extra) in enumerate(plan):
        rc, text = probe_doc(
            tmp / f"h{i}", capture, "--accel", "kvm", *extra, microcode=microcode, hostname=host
        )
        assert rc == (10 if extra else 0), text
        doc = tmp / f"{i}-{host}.json"
        doc.write_text(_shift(text, age))
        res = invoke("import", "--store", str(path), "--pool", pool, "--host", host, str(doc))
        assert res.returncode == 0, res.stderr
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("analysis"), PLAN)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run: one Intel host in pool ``solo``."""
    return _build(tmp_path_factory.mktemp("single"), PLAN[-1:])


@pytest.fixture(scope="module")
def failed_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pool whose only host never succeeded."""
    return _build(tmp_path_factory.mktemp("failed"), [PLAN[4]])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pool the core refuses: an Intel and an AMD host (exit 23 for ``baseline``)."""
    return _build(
        tmp_path_factory.mktemp("mixed"),
        [
            ("mixed", "m-intel", "Xeon-Gold-6130", "0xb000038", timedelta(hours=1), ()),
            ("mixed", "m-amd", "Ryzen-9-3900X-12-Core", "0x8701013", timedelta(hours=1), ()),
        ],
    )


# --------------------------------------------------------------------------- the API


def test_latest_hosts_and_failures(store: Path) -> None:
    s = Store.open(store)
    latest = analysis.latest_hosts(s, "prod").set_index("host")
    assert list(latest.index) == ["kvm17", "kvm18", "kvm19", "kvm20", "kvm21"]
    assert latest.loc["kvm18", "status"] == "failed" and latest.loc["kvm18", "stage"] == "qemu"
    assert latest.loc["kvm18", "last_ok_kvm"] is not None
    assert pd.isna(latest.loc["kvm20", "last_ok_kvm"])
    fails = analysis.failures(s, "prod")
    assert list(fails["stage"]) == ["qemu", "qemu"] and list(fails["hosts"]) == [1, 1]
    assert analysis.failures(s, "solo").empty
    assert len(analysis.run_history(s)) == len(PLAN)


def test_coverage_is_what_each_member_offers(store: Path) -> None:
    data = analysis.load_pool(Store.open(store), "prod")
    assert data.problem is None and data.machine_type is not None
    assert [m.host for m in data.missing] == ["kvm20"]
    assert data.missing[0].code == "no-successful-probe"
    cov = analysis.coverage(data)
    assert list(cov.index) == ["kvm17", "kvm18", "kvm19", "kvm21"]
    for m in data.members:
        assert set(cov.columns[cov.loc[m.host]]) == set(m.offered)
    # The IBPB microcode gave kvm17 ibpb, but its host lost rdtscp: both now block.
    assert cov.loc["kvm17", "ibpb"] and not cov.loc["kvm17", "rdtscp"]
    counts = cov.sum().tolist()
    assert counts == sorted(counts, reverse=True), "common features first, blockers last"
    # The pool's CPU never has a feature some member lacks.
    base = analysis.blockers(data).baseline
    assert base is not None
    everywhere = set(cov.columns[cov.all(axis=0)])
    assert set(base.features) <= everywhere


def test_usability_names_the_blocking_features(store: Path) -> None:
    data = analysis.load_pool(Store.open(store), "prod")
    long = analysis.usability(data)
    by_member = {m.host: {c.name: c for c in m.models if c.alias_of is None} for m in data.members}
    assert len(long) == sum(len(v) for v in by_member.values())
    for row in long.itertuples():
        model = by_member[row.host][row.model]
        assert row.usable == (not model.unavailable_features)
        assert list(row.blocking) == list(model.unavailable_features)
    matrix = analysis.usability_matrix(data)
    assert matrix.shape == (4, long["model"].nunique()) and matrix.dtypes.eq(bool).all()
    counts = matrix.sum().tolist()
    assert counts == sorted(counts, reverse=True)
    assert not long[~long["usable"]].empty, "EPYC and Ryzen QEMU models differ per host"


def test_blockers_tables_are_what_the_cli_prints(store: Path) -> None:
    data = analysis.load_pool(Store.open(store), "prod")
    tables = analysis.blockers(data)
    res = invoke("blockers", "--store", str(store), "--pool", "prod", "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert tables.baseline is not None and tables.baseline.model == doc["baseline"]["model"]
    assert [(r.feature, r.reason, list(r.hosts)) for r in tables.features.itertuples()] == [
        (f["feature"], f["reason"], f["hosts"]) for f in doc["features"]
    ]
    assert [(r.model, list(r.hosts), r.by_some_hosts) for r in tables.models.itertuples()] == [
        (m["model"], m["hosts"], m["by_some_hosts"]) for m in doc["models"]
    ]
    assert [
        (r.group, list(r.hosts), list(r.features_gained), r.model_after, round(r.score, 4))
        for r in tables.groups.itertuples()
    ] == [
        (g["label"], g["hosts"], g["gain"]["features"], g["gain"]["model_after"], g["score"])
        for g in doc["groups"]
    ]
    assert len(tables.groups) == 3
    assert (tables.features["n_hosts"] == tables.features["hosts"].map(len)).all()
    assert "rdtscp" in set(tables.features["feature"])


def test_pool_summary(store: Path) -> None:
    summary = analysis.pool_summary(Store.open(store)).set_index("pool")
    assert list(summary.index) == ["prod", "solo"]
    prod = summary.loc["prod"]
    assert (prod["hosts"], prod["members"], prod["missing"], prod["latest_failed"]) == (5, 4, 1, 2)
    assert prod["vendors"] == "AuthenticAMD (4)"
    assert prod["machine_type"] in prod["machine_types"]
    res = invoke("baseline", "--store", str(store), "--pool", "prod", "--format", "json")
    doc = json.loads(res.stdout)
    assert prod["model"] == doc["model"] and prod["features"] == len(doc["features"])
    assert prod["problem"] is None
    solo = summary.loc["solo"]
    assert (solo["members"], solo["vendors"]) == (1, "GenuineIntel (1)")


def test_pool_problems_are_data_not_exceptions(store: Path, failed_only: Path) -> None:
    unknown = analysis.load_pool(Store.open(store), "nope")
    assert unknown.problem is not None and "unknown pool" in unknown.problem
    dead = analysis.load_pool(Store.open(failed_only), "prod")
    assert dead.problem is not None and [m.code for m in dead.missing] == ["no-successful-probe"]
    assert analysis.coverage(dead).empty and analysis.usability_matrix(dead).empty
    assert analysis.blockers(dead).baseline is None
    row = analysis.pool_summary(Store.open(failed_only)).iloc[0]
    assert row["members"] == 0 and row["model"] is None and "no member" in row["problem"]


def test_a_pool_the_core_refuses_is_a_problem_too(mixed: Path, tmp_path: Path) -> None:
    data = analysis.load_pool(Store.open(mixed), "mixed")
    assert data.problem is None and len(data.members) == 2, "the selection itself is fine"
    tables = analysis.blockers(data)
    assert tables.baseline is None and tables.problem is not None
    assert "mixes CPU vendors" in tables.problem
    row = analysis.summary_row(data, tables)
    assert row["model"] is None and row["problem"] == tables.problem
    assert analysis.summary_row(data)["problem"] == tables.problem
    assert invoke("baseline", "--store", str(mixed), "--pool", "mixed").returncode == 23
    out = tmp_path / "r.html"
    res = invoke("report", "--store", str(mixed), "--pool", "mixed", "-o", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "nothing to explain: the pool mixes CPU vendors" in text
    assert len(_images(text)) == 2, "coverage and usability still drawn"


def test_drift_is_one_row_per_change_beside_the_facts(store: Path) -> None:
    s = Store.open(store)
    changes = analysis.drift(s, "prod")
    assert list(changes["host"]) == ["kvm21", "kvm17"], "kvm19 answered the same twice: no drift"
    facts_only = changes.iloc[0]
    assert facts_only["changed"] == ["microcode"] and facts_only["microcode"] == "0x8701021"
    assert not (
        facts_only["features_added"]
        or facts_only["features_removed"]
        or facts_only["models_gained"]
        or facts_only["models_lost"]
    )
    row = changes.iloc[1]
    assert row["features_added"] == ["ibpb"] and row["features_removed"] == ["rdtscp"]
    assert "microcode" in row["changed"]
    assert (row["microcode_before"], row["microcode"]) == ("0x8001227", "0x8001250")
    assert row["collected_at"] > row["previous_at"]
    data = analysis.load_pool(s, "prod")
    models = analysis.usability(data)
    now_usable = set(models[(models["host"] == "kvm17") & models["usable"]]["model"])
    assert not set(row["models_gained"]) - now_usable
    assert not set(row["models_lost"]) & now_usable
    # Between two named runs, first against last: one row per host that differs.
    runs = [r.run_id for r in s.runs()]
    window = analysis.drift(s, since=runs[0], until=runs[-1], ends=True)
    assert list(window["host"]) == ["kvm21", "kvm17"]
    assert window.iloc[1]["features_removed"] == ["rdtscp"]
    assert analysis.drift(s, since=runs[-1], until=runs[-1], ends=True).empty
    assert list(analysis.drift(s, until=runs[-1], hosts=["kvm21"])["host"]) == ["kvm21"]
    assert analysis.drift(s, until=runs[0], hosts=["kvm21"]).empty
    hosts = s.table("hosts", columns=["host", "run_id"]).to_pandas()
    first21, last21 = sorted(hosts[hosts["host"] == "kvm21"]["run_id"])
    assert analysis.drift(s, since=last21, hosts=["kvm21"]).empty, "one record is no drift"
    between = analysis.drift(s, since=first21, until=last21, ends=True)
    assert list(between["host"]) == ["kvm21"] and between.iloc[0]["microcode_before"] == "0x8701013"
    assert analysis.drift(s, "solo").empty


# --------------------------------------------------------------------------- the figures


def test_figures_fold_identical_hosts() -> None:
    matrix = pd.DataFrame(
        [[True, False, True], [True, False, True], [True, True, True]],
        index=pd.Index(["a", "b", "c"], name="host"),
        columns=["x", "y", "z"],
    )
    folded = plots.fold_rows(matrix)
    assert list(folded.index) == ["a (+1)", "c"]
    fig = plots.plot_coverage(matrix)
    assert "2 features on every host not drawn" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["y"]


# --------------------------------------------------------------------------- the report


def _images(text: str) -> list[bytes]:
    sources = re.findall(r"<img [^>]*src='([^']*)'", text)
    out = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        out.append(base64.b64decode(src.split(",", 1)[1], validate=True))
    return out


def _self_contained(text: str) -> None:
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", text), "fetches from the network"
    assert "<script" not in text and "<link" not in text and "@import" not in text


def test_report_embeds_every_figure(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = invoke("report", "--store", str(store), "--pool", "prod", "-o", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    _self_contained(text)
    images = _images(text)
    assert len(images) == 5, "coverage, usability, blockers, drift, failures"
    for image in images:
        assert image.startswith(PNG) and len(image) > 5000
    titles = re.findall(r"<h2>([^<]*)</h2>", text)
    assert titles == [
        "Pool summary",
        "Hosts",
        "Feature coverage",
        "Model usability",
        "Blockers",
        "Drift",
        "Failures",
    ]
    doc = json.loads(invoke("baseline", "--store", str(store), "--pool", "prod", "--format", "json").stdout)
    assert f"-cpu {doc['cpu']}" in text.replace("&quot;", '"')
    assert "kvm20" in text and "no-successful-probe" in text
    assert "0x8001227" in text and "0x8001250" in text
    assert f"{out}: pool prod, 4 member(s), 5 figure(s)" in res.stderr


@pytest.mark.parametrize("case", ["empty-store", "one-host-pool", "single-run", "failed-only"])
def test_report_says_what_is_missing(
    case: str, store: Path, single_run: Path, failed_only: Path, tmp_path: Path
) -> None:
    where, pool, expect = {
        "empty-store": (tmp_path / "nothing", "prod", "is empty: run fleetcpu collect"),
        "one-host-pool": (store, "solo", "a one-member pool has no blockers"),
        "single-run": (single_run, "solo", "1 run stored: drift needs two runs"),
        "failed-only": (failed_only, "prod", "no member has usable kvm data"),
    }[case]
    out = tmp_path / "r.html"
    res = invoke("report", "--store", str(where), "--pool", pool, "-o", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    _self_contained(text)
    assert expect in text
    for image in _images(text):
        assert image.startswith(PNG)
    assert "missing data in:" in res.stderr


def test_report_history_bounds_drift_and_failures(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = invoke("report", "--store", str(store), "--pool", "prod", "-o", str(out), "--history", "90m")
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "changed between its successful runs in 1h 30m" in text
    assert "no host of the pool failed in the last 1h 30m" in text
    assert len(_images(text)) == 3


def test_report_unknown_pool_and_unwritable_output(store: Path, tmp_path: Path) -> None:
    res = invoke("report", "--store", str(store), "--pool", "nope", "-o", str(tmp_path / "r"))
    assert res.returncode == 20 and "unknown pool 'nope'" in res.stderr
    assert not (tmp_path / "r").exists()
    (tmp_path / "file").write_text("not a directory")
    res = invoke("report", "--store", str(store), "--pool", "prod", "-o", str(tmp_path / "file" / "r.html"))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: cannot write the report to ")
    assert len(res.stderr.strip().splitlines()) == 1
    assert (tmp_path / "file").read_text() == "not a directory"


# --------------------------------------------------------------------------- the notebook


def test_notebook_is_what_build_writes() -> None:
    """The committed notebook is generated from notebooks/build.py, never edited by hand."""
    sys.path.insert(0, str(REPO / "notebooks"))
    try:
        import build  # type: ignore[import-not-found]
        import nbformat
    finally:
        sys.path.pop(0)
    committed = nbformat.reads(NOTEBOOK.read_text(), as_version=4)
    assert committed == build.build()
    assert not [c for c in committed.cells if c.cell_type == "code" and c.outputs]


def _execute(store: Path, pool: str, tmp_path: Path) -> tuple[str, int]:
    """Run the notebook top to bottom in a real kernel: (its text output, images shown)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_before = dict(os.environ)
    # The kernel's temporaries (the empty-store demo builds one) go under tmp_path, not the
    # system's temp directory: the suite leaves nothing there.
    kernel_tmp = tmp_path / "kernel-tmp"
    kernel_tmp.mkdir(exist_ok=True)
    os.environ.update(FLEETCPU_STORE=str(store), FLEETCPU_POOL=pool, TMPDIR=str(kernel_tmp))
    try:
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(
        str(o.get("text", ""))
        + str(o.get("data", {}).get("text/plain", ""))
        + str(o.get("data", {}).get("text/html", ""))
        for o in outputs
    )
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    return text, images


def test_notebook_runs_top_to_bottom(store: Path, tmp_path: Path) -> None:
    text, images = _execute(store, "prod", tmp_path)
    assert "kvm17" in text and "rdtscp" in text and "ibpb" in text and "0x8001250" in text
    assert images == 5, "coverage, usability, blockers, drift, failures"


@pytest.mark.parametrize("case", ["one-host-pool", "single-run", "failed-only"])
def test_notebook_survives_thin_stores(
    case: str, store: Path, single_run: Path, failed_only: Path, tmp_path: Path
) -> None:
    where, pool, expect = {
        "one-host-pool": (store, "solo", "solo1"),
        "single-run": (single_run, "solo", "drift needs two runs"),
        "failed-only": (failed_only, "prod", "missing: pool 'prod': no member"),
    }[case]
    text, _ = _execute(where, pool, tmp_path)
    assert expect in text


def test_notebook_on_an_empty_store_probes_this_machine(tmp_path: Path) -> None:
    """An empty store is not an error: the demo store is this host, probed for real."""
    text, images = _execute(tmp_path / "empty", "", tmp_path)
    assert "empty; building a demo store" in text and "'local'" in text
    assert images >= 4
