"""A kill costs seconds, not the run: store layout 2 commits a run in parts.

Real processes killed for real: a ``fleetcpu collect`` over asyncssh hosts
SIGKILLed by this test at a moment of its choosing (its parts are committed by
time: hosts whose CPU data did not change write only ``hosts`` rows, so only
the 5 s rule makes parts), and a writer process SIGKILLed by the writer's own
test hook after its first parts (a first run: every host writes detail rows).
Afterwards the committed hosts are what ``fleetcpu hosts`` and the baseline
see, the digest dedup points only at rows that exist, and the next writer
sweeps only what no commit record lists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from fleetcpu.store import Store
from fleetcpu.store.layout import Layout, run_file_name

from .conftest import PYTHON, REPO, invoke
from .support.sshd import FakeFleet, fake_fleet_fixtures
from .test_store_robustness import write_run
from .test_store_support import (
    hidden_temporaries,
    ok_document,
    outcome,
    run_files,
    with_blocked_model,
    write_document,
)

KILL_HOSTS = 160


#: The kill tests collect from their own fleet: more hosts than the shared suites, no delay.
fleet, fresh = fake_fleet_fixtures(KILL_HOSTS, delay=0.0, net=6)


def _collect_args(fleet: FakeFleet, inventory: Path, store: Path, *extra: str) -> list[str]:
    return ["collect", str(inventory), "--store", str(store), *fleet.cli_args(), *extra]


def _env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""}


def _hosts_json(store: Path) -> dict[str, dict[str, object]]:
    res = invoke("hosts", "--store", str(store), "--format", "json")
    assert res.returncode == 0, res.stderr
    return {str(h["host"]): h for h in json.loads(res.stdout)}


def test_a_collect_killed_after_several_parts_keeps_them(fleet: FakeFleet, tmp_path: Path) -> None:
    """The kill test: figures printed (pytest -s) for the closing note."""
    store = tmp_path / "store"
    inventory = fleet.inventory(tmp_path / "inv")
    env = _env(tmp_path)
    fleet.delay = 0.0
    first = invoke(*_collect_args(fleet, inventory, store), env=env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    first_run = Store.open(store).runs()[-1].run_id
    first_records = set(store.glob("v1/runs/*/run-*.parquet"))

    # A repeat run, slow on purpose: ~6 hosts/s, 25 s in all; killed 2.5 s after its
    # second part appears (so the kill falls between parts, not on one).
    fleet.delay = 0.6
    full = dict(os.environ, **env)
    proc = subprocess.Popen(
        [PYTHON, "-m", "fleetcpu", *_collect_args(fleet, inventory, store, "--concurrency", "4")],
        cwd=REPO,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(set(store.glob("v1/runs/*/run-*.parquet")) - first_records) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "no second part"
            time.sleep(0.1)
        time.sleep(2.5)
        before_kill = fleet.bundles_ok
        killed_at = datetime.now(UTC)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        fleet.delay = 0.0
    assert proc.returncode == -signal.SIGKILL

    s = Store.open(store)
    killed = [r for r in s.runs() if r.run_id != first_run]
    assert len(killed) == 1, killed
    run = killed[0]
    records = s.table("runs", runs=[run.run_id]).to_pylist()
    assert len(records) >= 2, records  # parts by time: 5 s each
    assert {r["status"] for r in records} == {"partial"}
    assert run.status == "killed" and run.parts == len(records)
    committed = sorted(str(h) for h in s.table("hosts", runs=[run.run_id])["host"].to_pylist())
    assert len(committed) == run.hosts_ok + run.hosts_failed > 0
    # Every committed host points at the first run's CPU data: nothing changed.
    rows = s.table("hosts", runs=[run.run_id]).to_pylist()
    assert {r["detail_run"] for r in rows} == {first_run}

    # The next reader sees them: `hosts` and `baseline` of the committed hosts.
    latest = _hosts_json(store)
    assert {h for h, r in latest.items() if r["run"] == run.run_id} == set(committed)
    assert {h for h, r in latest.items() if r["run"] == first_run} == set(latest) - set(committed)
    base = invoke(
        "baseline", "--store", str(store), "--pool", "default", "--accel", "kvm", "--format", "json"
    )
    assert base.returncode == 0, base.stderr

    last_part = max(r["finished_at"] for r in records)
    lost_s = (killed_at - last_part).total_seconds()
    print(
        f"\nkill test: {len(records)} part(s) committed before the kill; "
        f"{len(committed)} host rows committed of ~{before_kill - KILL_HOSTS} probed by the "
        f"kill; {lost_s:.2f} s between the last committed part and the kill"
    )
    assert 0 <= lost_s <= 5.0 + 1.0 + 2.0  # 5 s rule, 1 s tick, scheduling on a shared machine

    # fsck names the killed run, damage none; then the next collect sweeps what it left.
    fsck = invoke("fsck", "--store", str(store))
    assert fsck.returncode in (0, 7), fsck.stdout
    assert f"killed      run {run.run_id}" in fsck.stdout
    again = invoke(*_collect_args(fleet, inventory, store), env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert hidden_temporaries(store) == []
    fsck = invoke("fsck", "--store", str(store))
    assert fsck.returncode == 0, fsck.stdout
    kept = Store.open(store).table("hosts", runs=[run.run_id])["host"].to_pylist()
    assert sorted(str(h) for h in kept) == committed


def test_a_first_run_killed_after_parts_keeps_their_cpu_data(tmp_path: Path) -> None:
    """Every host of a first run writes detail rows; the kill comes after the third part
    (flush_every=5, 15 hosts). The committed hosts' ``detail_run`` rows exist; the lost
    hosts are simply absent, and the next run stores their data afresh."""
    root = tmp_path / "store"
    killed = write_run(root, "k", 30, env={"FLEETCPU_TEST_HOOK_KILL_AFTER": "15"})
    assert killed.returncode == -9, killed.stderr
    run = killed.stdout.strip()
    store = Store.open(root)
    hosts = {r["host"]: r for r in store.table("hosts", runs=[run]).to_pylist()}
    assert sorted(hosts) == [f"k{i:03d}" for i in range(15)]
    ok = {h for h, r in hosts.items() if r["status"] == "ok"}
    assert all(hosts[h]["detail_run"] == run for h in ok)
    assert set(store.table("models", runs=[run])["host"].to_pylist()) == ok
    snaps = store.snapshots(sorted(hosts), "tcg")
    assert set(snaps) == ok and all(s.detail_run == run for s in snaps.values())
    assert [r.status for r in store.runs()] == ["killed"]

    # The same 30 hosts again: the 15 committed reuse the killed run's rows; the 15 lost
    # (and the failed ones) have no dangling reference.
    again = write_run(root, "k", 30, hours=1)
    assert again.returncode == 0, again.stderr
    second = again.stdout.strip()
    store = Store.open(root)
    rows = {r["host"]: r for r in store.table("hosts", runs=[second]).to_pylist()}
    for host, row in rows.items():
        if row["status"] != "ok":
            assert row["detail_run"] is None
        elif host in ok:
            assert row["detail_run"] == run, host
        else:
            assert row["detail_run"] == second, host
    snaps = store.snapshots(sorted(rows), "tcg")
    assert len(snaps) == sum(r["status"] == "ok" for r in rows.values())
    assert invoke("fsck", "--store", str(root)).returncode == 0


def test_a_part_is_written_once_the_oldest_result_waited_flush_seconds(tmp_path: Path) -> None:
    """The time rule, in the writer itself: checked at every add, and by ``flush_due``
    (what the collector calls every second) when no host arrives."""
    store = Store.create_or_open(tmp_path / "store")
    doc = ok_document()
    with store.run_writer(command="collect", flush_seconds=0.3) as w:
        for i in range(20):  # a small collect: one part, its last
            w.add(outcome(f"q{i:02d}", doc))
    assert [r.parts for r in store.runs()] == [1]

    with store.run_writer(command="collect", flush_seconds=0.3) as w:
        w.add(outcome("a", doc))
        time.sleep(0.35)
        w.add(outcome("b", doc))  # a has waited 0.35 s: a and b are part 1
        assert w.parts == 1 and w.hosts_committed == 2
        w.add(outcome("c", doc))
        w.flush_due()  # c has not waited yet
        assert w.parts == 1
        time.sleep(0.35)
        w.flush_due()  # no host arrived, but c waited: part 2
        assert w.parts == 2 and w.hosts_committed == 3
        run = w.run_id
    records = store.table("runs", runs=[run]).to_pylist()
    assert [(r["part"], r["status"], r["hosts_ok"]) for r in records] == [
        (1, "partial", 2),
        (2, "partial", 1),
        (3, "complete", 0),
    ]
    assert [f["table"] for f in records[2]["files"]] == []
    (info,) = [r for r in store.runs() if r.run_id == run]
    assert (info.status, info.parts, info.hosts_ok) == ("complete", 3, 3)


def test_collect_commits_a_part_while_a_slow_host_is_still_running(fleet: FakeFleet, tmp_path: Path) -> None:
    """The collector's tick: one host answers at once, the other hangs until its
    timeout; the first host's part is committed while the run is still going."""
    store = tmp_path / "store"
    fast, slow = fleet.hosts[0], fleet.hosts[1]
    slow.fault = "hang"
    inventory = fleet.inventory(tmp_path / "inv", [fast.name, slow.name])
    full = dict(os.environ, **_env(tmp_path))
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "fleetcpu",
            *_collect_args(fleet, inventory, store, "--timeout", "12", "--retries", "0"),
        ],
        cwd=REPO,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 11
        while time.monotonic() < deadline and not list(store.glob("v1/runs/*/run-*.parquet")):
            time.sleep(0.2)
        running = proc.poll() is None
        records = Store.open(store).table("runs").to_pylist() if store.exists() else []
        out, err = proc.communicate(timeout=60)
    finally:
        slow.fault = "ok"
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert running, (out, err)
    assert [(r["part"], r["status"], r["hosts_ok"]) for r in records] == [(1, "partial", 1)]
    assert proc.returncode == 5, (out, err)  # the slow host timed out
    (info,) = Store.open(store).runs()
    assert (info.status, info.parts, info.hosts_ok, info.hosts_failed) == ("complete", 2, 1, 1)


def test_damaged_parts_are_named_by_readers_and_fsck(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert write_run(root, "d", 12).returncode == 0  # 3 parts: 5 + 5 + 2 hosts
    store = Store.open(root)
    (run,) = [r.run_id for r in store.runs()]
    records = run_files(root, "runs", run)
    assert len(records) == 3
    assert invoke("fsck", "--store", str(root)).returncode == 0

    # A part's hosts file deleted: named by the rebuild, by fsck; exit 4.
    hosts2 = run_files(root, "hosts", run)[1]
    saved = hosts2.read_bytes()
    hosts2.unlink()
    Layout(root).index_file.unlink()
    res = invoke("hosts", "--store", str(root))
    assert res.returncode == 4 and str(hosts2) in res.stderr, res.stderr
    fsck = invoke("fsck", "--store", str(root))
    assert fsck.returncode == 4 and f"damaged     {hosts2}" in fsck.stdout
    hosts2.write_bytes(saved)

    # A part's record deleted: its hosts do not quietly vanish.
    saved = records[0].read_bytes()
    records[0].unlink()
    res = invoke("hosts", "--store", str(root))
    assert res.returncode == 4 and str(records[0]) in res.stderr, res.stderr
    assert "part 1" in res.stderr
    fsck = invoke("fsck", "--store", str(root))
    assert fsck.returncode == 4 and str(records[0]) in fsck.stdout, fsck.stdout
    records[0].write_bytes(saved)
    res = invoke("hosts", "--store", str(root), "--format", "json")
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 12
    assert invoke("fsck", "--store", str(root)).returncode == 0


def test_a_layout_1_store_is_written_as_before(tmp_path: Path) -> None:
    """A store created before parts (or with ``layout=1``) keeps one file per table per
    run, records without ``part``, and its marker: an older fleetcpu can still share it."""
    root = tmp_path / "store"
    Store.create_or_open(root, layout=1)
    doc = write_document(tmp_path / "doc.json", ok_document())
    for host in ("kvm01", "kvm02"):
        res = invoke("import", "--store", str(root), "--host", host, str(doc))
        assert res.returncode == 0, res.stderr
    assert json.loads((root / "fleetcpu-store.json").read_text())["layout"] == 1
    names = {p.name for p in root.glob("v1/*/date=*/*.parquet")}
    assert names and all(run_file_name(n) is not None and run_file_name(n)[1] is None for n in names)
    store = Store.open(root)
    assert [(r.status, r.parts) for r in store.runs()] == [("complete", 1)] * 2
    assert store.table("runs")["part"].null_count == 2
    assert invoke("fsck", "--store", str(root)).returncode == 0


def test_the_memory_bound_spills_row_groups_not_parts(tmp_path: Path) -> None:
    """20,000 detail rows bound memory; they do not cut a part (a first run of 10,000
    hosts would be ~70 parts, slow to read back): parts are cut by hosts and time."""
    store = Store.create_or_open(tmp_path / "store")
    doc = ok_document()
    rows_per_host = sum(len(mp.models) for mp in doc.machine_types)
    n = 20_000 // rows_per_host * 2 + 1  # past the bound twice
    with store.run_writer(command="collect", flush_seconds=600) as w:
        for i in range(n):
            w.add(outcome(f"h{i:04d}", with_blocked_model(doc, f"f{i}")))
        assert w.parts == 0  # spilled, not committed
    (run,) = store.runs()
    assert (run.parts, run.hosts_ok) == (1, n)
    (models,) = run_files(store.root, "models", run.run_id)
    assert pq.ParquetFile(models).num_row_groups >= 3
