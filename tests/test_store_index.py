"""The latest-state index and the digest dedup, on real files.

The index is derived data: whatever order runs arrive in, it must equal the
index rebuilt from history, never regress a host to an older run, and keep
each accelerator's latest successful data when a newer run failed.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fleetcpu.errors import NoUsableDataError, UnknownPoolError
from fleetcpu.store import Store
from fleetcpu.store.layout import Layout

from .test_store_support import (
    base_time,
    failed_document,
    ok_document,
    outcome,
    run_files,
    with_blocked_model,
    with_microcode,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.create_or_open(tmp_path / "store")


def _run(store: Store, hours: float, *outcomes_: object) -> str:
    when = base_time() + timedelta(hours=hours)
    with store.run_writer(command="collect", started_at=when) as w:
        for o in outcomes_:
            w.add(o)
    return w.run_id


def _index_rows(store: Store) -> list[dict[str, object]]:
    return pq.read_table(Layout(store.root).index_file).to_pylist()


def test_latest_keeps_newest_run_and_last_success_per_accel(store: Store) -> None:
    tcg, kvm = ok_document("tcg"), ok_document("kvm")
    t = base_time()
    r1 = _run(store, 0, outcome("a", kvm, when=t), outcome("b", tcg, when=t))
    r2 = _run(
        store,
        1,
        outcome("a", tcg, when=t + timedelta(hours=1)),
        outcome("b", None, stage="connect", error="timed out", when=t + timedelta(hours=1)),
    )
    states = {s.host: s for s in store.latest()}
    a, b = states["a"], states["b"]
    assert (a.run, a.accel, a.status) == (r2, "tcg", "ok")
    assert a.kvm is not None and a.kvm.run == r1 and a.kvm.detail_run == r1
    assert a.tcg is not None and a.tcg.run == r2
    assert (b.run, b.status, b.stage, b.error) == (r2, "failed", "connect", "timed out")
    assert b.tcg is not None and b.tcg.run == r1 and b.kvm is None
    # The baseline asks for kvm data: a has it (from r1), b never had any.
    snaps = store.snapshots(["a", "b"], "kvm")
    assert list(snaps) == ["a"] and snaps["a"].run == r1
    assert tuple(snaps["a"].machines.values()) == kvm.machine_types
    assert store.snapshots(["b"], "tcg")["b"].run == r1


def test_an_older_run_committed_later_never_regresses_a_host(store: Store) -> None:
    doc = ok_document()
    newer = _run(store, 5, outcome("a", doc, pool="new"))
    older = _run(store, 1, outcome("a", failed_document(), pool="old"), outcome("z", doc, pool="old"))
    states = {s.host: s for s in store.latest()}
    assert states["a"].run == newer and states["a"].pool == "new" and states["a"].ok
    assert states["z"].run == older
    assert store.pools() == ["new", "old"]


def test_index_rebuilt_from_history_equals_the_incremental_one(store: Store) -> None:
    tcg, kvm = ok_document("tcg"), ok_document("kvm")
    _run(store, 0, outcome("a", kvm), outcome("b", tcg, pool="dev"))
    _run(store, 30, outcome("a", None, stage="auth", error="denied"), outcome("c", tcg))
    _run(store, 2, outcome("b", with_microcode(tcg, "0xdead"), pool="dev"))
    _run(store, 50, outcome("c", with_blocked_model(tcg)))
    incremental = _index_rows(store)
    layout = Layout(store.root)
    layout.index_file.unlink()
    assert store.reindex() == 3
    assert _index_rows(store) == incremental
    # A missing index is rebuilt on the next read, without being asked.
    layout.index_file.unlink()
    assert [s.host for s in store.latest()] == ["b", "a", "c"]  # by pool, then host
    assert layout.index_file.exists()
    assert _index_rows(store) == incremental


def test_identical_data_is_stored_once_yet_read_back_whole(store: Store) -> None:
    doc = ok_document()
    r1 = _run(store, 0, outcome("a", doc), outcome("b", doc))
    # Same CPU data an hour later, but the host's facts moved (microcode): facts are
    # per run, CPU data is deduplicated.
    r2 = _run(store, 1, outcome("a", with_microcode(doc, "0x99")), outcome("b", doc))
    for table in ("machines", "feature_words", "models", "expansion"):
        assert len(run_files(store.root, table, r1)) == 1
        assert run_files(store.root, table, r2) == [], table
        assert not list(store.root.glob(f"v1/{table}/*/run-{r2}*")), table
    assert len(run_files(store.root, "hosts", r2)) == 1
    hosts = {(r["host"], r["run_id"]): r for r in store.table("hosts").to_pylist()}
    assert hosts[("a", r2)]["detail_run"] == r1
    assert hosts[("a", r2)]["cpu_digest"] == hosts[("a", r1)]["cpu_digest"]
    runs = {r.run_id: r for r in store.runs()}
    assert (runs[r1].hosts_detail, runs[r2].hosts_detail) == (2, 0)

    snaps = store.snapshots(["a", "b"], "tcg")
    assert snaps["a"].run == r2 and snaps["a"].detail_run == r1
    assert snaps["a"].facts.cpu.microcode == "0x99"
    assert tuple(snaps["a"].machines.values()) == doc.machine_types
    assert tuple(snaps["b"].machines.values()) == doc.machine_types


def test_pools_and_unknown_pool(store: Store) -> None:
    _run(store, 0, outcome("a", ok_document(), pool="prod"), outcome("b", None, pool="dev", stage="connect"))
    assert store.pools() == ["dev", "prod"]
    assert [s.host for s in store.latest("prod")] == ["a"]
    with pytest.raises(UnknownPoolError, match=r"'nope'.*dev, prod"):
        store.latest("nope")


def test_open_refuses_missing_and_empty_stores(tmp_path: Path) -> None:
    with pytest.raises(NoUsableDataError, match="store is empty"):
        Store.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoUsableDataError, match="store is empty"):
        Store.open(tmp_path / "empty")
    created = Store.create_or_open(tmp_path / "empty")
    assert Store.open(created.root).latest() == []


@pytest.mark.parametrize("layout", [1, 2])
def test_writer_flushes_row_groups_and_commits_on_exception(tmp_path: Path, layout: int) -> None:
    """Layout 1: every flush is a row group of the run's one open file; layout 2: a
    committed part of its own."""
    store = Store.create_or_open(tmp_path / "store", layout=layout)
    doc = ok_document()

    def interrupted_collect() -> None:
        with store.run_writer(command="collect", flush_every=3) as w:
            for i in range(8):
                ok = bool(i % 2)
                w.add(outcome(f"h{i:02d}", doc if ok else None, stage=None if ok else "connect"))
            raise KeyboardInterrupt  # Ctrl-C at host 8: the 8 hosts must survive

    with pytest.raises(KeyboardInterrupt):
        interrupted_collect()
    (run,) = store.runs()
    assert (run.status, run.hosts_ok, run.hosts_failed) == ("interrupted", 4, 4)
    hosts_files = run_files(store.root, "hosts", run.run_id)
    if layout == 1:
        (hosts_file,) = hosts_files
        assert pq.ParquetFile(hosts_file).num_row_groups == 3  # 3 + 3 + 2 hosts
    else:
        assert [pq.ParquetFile(f).metadata.num_rows for f in hosts_files] == [3, 3, 2]
        records = store.table("runs").to_pylist()
        assert [(r["part"], r["status"], r["hosts_ok"] + r["hosts_failed"]) for r in records] == [
            (1, "partial", 3),
            (2, "partial", 3),
            (3, "interrupted", 2),
        ]
        assert run.parts == 3
    assert len(store.latest()) == 8
    assert not list(store.root.rglob(".*.tmp"))
    writer = store.run_writer(command="collect")
    writer.commit()
    with pytest.raises(RuntimeError, match="already committed"):
        writer.add(outcome("late", doc))


def test_a_host_added_twice_to_one_run_is_a_bug(store: Store) -> None:
    with store.run_writer(command="collect") as w:
        w.add(outcome("a", ok_document()))
        with pytest.raises(ValueError, match="added twice"):
            w.add(outcome("a", ok_document()))
    assert len(store.table("hosts")) == 1


def test_a_run_with_no_hosts_is_recorded(store: Store) -> None:
    with store.run_writer(command="collect", inventory="empty.txt") as w:
        pass
    (run,) = store.runs()
    assert run.run_id == w.run_id and run.hosts_ok == run.hosts_failed == 0
    assert store.latest() == []
    assert os.listdir(Layout(store.root).pending_dir) == []


def test_a_cancelled_collector_task_keeps_its_hosts(store: Store) -> None:
    """The collector runs in asyncio: cancellation mid-run must commit what was added."""
    doc = ok_document()
    added = asyncio.Event()

    async def collect() -> None:
        with store.run_writer(command="collect") as w:
            for i in range(1000):
                w.add(outcome(f"h{i:04d}", doc))
                if i == 9:
                    added.set()
                await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(collect())
        await added.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (run,) = store.runs()
    assert run.status == "interrupted" and run.hosts_ok >= 10
    assert len(store.latest()) == run.hosts_ok
