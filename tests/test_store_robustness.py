"""The store under crashes, concurrent writers, damaged and foreign files.

Each scenario uses real processes: a writer SIGKILLed at a test hook inside
the real writer, two real ``fleetcpu import`` processes racing, a lock held by
this test process. Afterwards pandas, pyarrow.dataset and DuckDB must all read
every table, every committed run must be whole, and damage must be reported
as one line naming the file, exit 4.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest

from fleetcpu.errors import StoreCorruptError
from fleetcpu.store import Store
from fleetcpu.store.layout import Layout, new_run_id

from .conftest import PYTHON, REPO, invoke
from .test_store_support import (
    base_time,
    hidden_temporaries,
    ok_document,
    outcome,
    run_file,
    visible_files,
    write_document,
)

TABLES = ("runs", "hosts", "machines", "feature_words", "models", "expansion")
DETAIL = ("machines", "feature_words", "models", "expansion")

# A writer process: N distinct hosts (3 of 4 ok), flushing every 5, into a store it
# creates in LAYOUT if absent.
WRITER = """
import sys
from datetime import timedelta
from fleetcpu.store import Store
from tests.test_store_support import base_time, ok_document, outcome, with_microcode, \\
    with_blocked_model
root, prefix, n, hours = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = Store.create_or_open(root, layout=int(sys.argv[5]))
doc = ok_document()
with store.run_writer(command="collect", inventory="fleet.txt",
                      started_at=base_time() + timedelta(hours=hours), flush_every=5) as w:
    print(w.run_id, flush=True)
    for i in range(n):
        # Distinct CPU data per host, so every host writes detail rows.
        d = with_blocked_model(doc, f"feat-{prefix}-{i}")
        w.add(outcome(f"{prefix}{i:03d}", d if i % 4 else None,
                      stage=None if i % 4 else "connect", error=None if i % 4 else "refused"))
"""


def write_run(
    root: Path, prefix: str, n: int, hours: float = 0, env: dict[str, str] | None = None, layout: int = 2
) -> subprocess.CompletedProcess[str]:
    """``layout``: of the store, if this run creates it."""
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run(
        [PYTHON, "-c", WRITER, str(root), prefix, str(n), str(hours), str(layout)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=full,
        check=False,
    )


def read_everywhere(root: Path) -> dict[str, int]:
    """Row counts per table as pandas, pyarrow.dataset and DuckDB see them; they must agree."""
    counts = {}
    for table in TABLES:
        path = root / "v1" / table
        n_pandas = len(pd.read_parquet(path))
        n_arrow = ds.dataset(path, format="parquet", partitioning="hive").count_rows()
        # DuckDB's own glob and hive handling, union_by_name as docs/store.md advises.
        n_duck = duckdb.execute(
            "SELECT count(*) FROM read_parquet($glob, union_by_name=true)",
            {"glob": f"{path}/*/*.parquet"},
        ).fetchall()[0][0]
        assert n_pandas == n_arrow == n_duck, (table, n_pandas, n_arrow, n_duck)
        counts[table] = n_pandas
    return counts


def assert_run_whole(store: Store, run_id: str, prefix: str, n: int) -> None:
    hosts = store.table("hosts", runs=[run_id]).to_pylist()
    assert sorted(r["host"] for r in hosts) == [f"{prefix}{i:03d}" for i in range(n)]
    ok = {r["host"] for r in hosts if r["status"] == "ok"}
    assert len(ok) == n - len(range(0, n, 4))
    for table in DETAIL:
        assert set(store.table(table, runs=[run_id])["host"].to_pylist()) == ok, table
    models = store.table("models", runs=[run_id])
    per_host = len(ok_document().machine_types[0].models)
    assert models.num_rows == per_host * len(ok)


def test_sigkill_mid_write_leaves_a_readable_store(tmp_path: Path) -> None:
    """Layout 1: a run's flushed row groups sit in temporaries until its end, so a kill
    loses the run (layout 2 keeps its committed parts: test_store_parts)."""
    root = tmp_path / "store"
    done = write_run(root, "a", 20, layout=1)
    assert done.returncode == 0, done.stderr
    complete_run = done.stdout.strip()
    before = read_everywhere(root)

    killed = write_run(root, "b", 40, hours=1, env={"FLEETCPU_TEST_HOOK_KILL_AFTER": "15"})
    assert killed.returncode == -9, killed.stderr
    killed_run = killed.stdout.strip()
    temps = hidden_temporaries(root)
    # Mid-write: row groups of the killed run sit in hidden temporaries, nothing else.
    assert {p.name for p in temps} >= {f".run-{killed_run}.parquet.tmp"}
    # ... and its lease, free now that its writer is dead: what lets a sweeper remove them.
    leases = {f for f in visible_files(root) if f.startswith("v1/leases/")}
    assert leases == {f"v1/leases/{killed_run}"}
    assert not any(killed_run in f for f in visible_files(root) - leases)

    assert read_everywhere(root) == before
    store = Store.open(root)
    assert [r.run_id for r in store.runs()] == [complete_run]
    assert_run_whole(store, complete_run, "a", 20)
    assert {s.run for s in store.latest()} == {complete_run}
    snaps = store.snapshots([f"a{i:03d}" for i in range(20)], "tcg")
    assert len(snaps) == 15

    # A later writer sweeps the dead run's temporaries (however young) and its lease.
    assert write_run(root, "c", 3, hours=2).returncode == 0
    assert hidden_temporaries(root) == []
    counts = read_everywhere(root)
    assert counts["runs"] == 2 and counts["hosts"] == 23


def test_killed_before_the_commit_record_is_invisible_then_rolled_back(tmp_path: Path) -> None:
    """Layout 1 (layout 2's last part: test_store_parts)."""
    root = tmp_path / "store"
    assert write_run(root, "a", 8, layout=1).returncode == 0
    killed = write_run(root, "b", 8, hours=1, env={"FLEETCPU_TEST_HOOK_KILL_AT": "before-runs"})
    assert killed.returncode == -9
    run = killed.stdout.strip()
    layout = Layout(root)
    # Its data files are whole and visible to raw readers, but it has no runs row:
    # the store's readers do not trust it.
    assert layout.run_file("hosts", run).exists() and not layout.run_file("runs", run).exists()
    read_everywhere(root)
    store = Store.open(root)
    assert len(store.runs()) == 1
    assert all(s.host.startswith("a") for s in store.latest())
    assert not any(str(r).startswith("b") for r in store.table("hosts")["host"].to_pylist())
    # An hour later, the next writer rolls the abandoned run back.
    old = time.time() - 7200
    os.utime(layout.pending_file(run), (old, old))
    assert write_run(root, "c", 2, hours=2).returncode == 0
    assert not any(run in f for f in visible_files(root))
    assert not layout.pending_file(run).exists()


def test_killed_after_the_commit_record_is_indexed_by_the_next_reader(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert write_run(root, "a", 4).returncode == 0
    killed = write_run(root, "b", 6, hours=1, env={"FLEETCPU_TEST_HOOK_KILL_AT": "before-index"})
    assert killed.returncode == -9
    run = killed.stdout.strip()
    layout = Layout(root)
    assert layout.pending_file(run).exists()
    res = invoke("hosts", "--store", str(root), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert {h["host"] for h in json.loads(res.stdout) if h["run"] == run} == {f"b{i:03d}" for i in range(6)}
    assert not layout.pending_file(run).exists()  # folded into the index for good
    assert_run_whole(Store.open(root), run, "b", 6)


@contextmanager
def held_lock(root: Path) -> Iterator[None]:
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def test_a_held_lock_delays_only_the_index_and_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    doc_file = write_document(tmp_path / "kvm01.json", ok_document())
    assert invoke("import", "--store", str(root), "--host", "first", str(doc_file)).returncode == 0
    with held_lock(root):
        res = invoke(
            "import",
            "--store",
            str(root),
            "--host",
            "second",
            str(doc_file),
            env={"FLEETCPU_STORE_LOCK_TIMEOUT": "0.3"},
        )
        assert res.returncode == 4
        assert "locked" in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        # Committed anyway; readers merge it in memory while the lock is held.
        store = Store.open(root)
        assert len(store.runs()) == 2
        assert {s.host for s in store.latest()} == {"first", "second"}
        assert os.listdir(Layout(root).pending_dir)
    assert {s.host for s in Store.open(root).latest()} == {"first", "second"}
    assert os.listdir(Layout(root).pending_dir) == []


def test_two_processes_importing_at_once(tmp_path: Path) -> None:
    root = tmp_path / "fresh" / "store"  # created by whichever process gets there first
    n = 12
    files: dict[str, list[str]] = {"alpha": [], "beta": []}
    for i in range(n):
        for j, host in enumerate(files):
            when = base_time() + timedelta(hours=2 * i + j)
            doc = ok_document()
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
            path = tmp_path / f"{host}-{i}.json"
            path.write_text(json.dumps({**doc.to_dict(), "time": stamp}))
            files[host].append(str(path))
    procs = []
    for k, host in enumerate(files):
        # Both write host "shared" (interleaved times) and one host of their own.
        for target in ("shared", f"own-{host}"):
            procs.append(
                subprocess.Popen(
                    [
                        PYTHON,
                        "-m",
                        "fleetcpu",
                        "import",
                        "--store",
                        str(root),
                        "--host",
                        target,
                        "--pool",
                        f"p{k}",
                        *files[host],
                    ],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = Store.open(root)
    runs = store.runs()
    assert len(runs) == 4 * n and all(r.status == "complete" for r in runs)
    hosts = store.table("hosts")
    assert hosts.num_rows == 4 * n
    assert sorted(map(str, hosts["run_id"].to_pylist())) == sorted(r.run_id for r in runs)
    latest = {s.host: s for s in store.latest()}
    assert set(latest) == {"shared", "own-alpha", "own-beta"}
    newest_shared = max(
        str(r)
        for r, h in zip(hosts["run_id"].to_pylist(), hosts["host"].to_pylist(), strict=True)
        if h == "shared"
    )
    assert latest["shared"].run == newest_shared
    assert latest["shared"].pool == "p1"  # beta's files are the later ones
    assert os.listdir(Layout(root).pending_dir) == []
    assert hidden_temporaries(root) == []
    read_everywhere(root)
    json.loads((root / "fleetcpu-store.json").read_text())


def _store_with_runs(tmp_path: Path) -> tuple[Store, str]:
    store = Store.create_or_open(tmp_path / "store")
    with store.run_writer(command="collect") as w:
        w.add(outcome("kvm01", ok_document()))
        w.add(outcome("kvm02", None, stage="connect", error="refused"))
    return store, w.run_id


def test_a_truncated_index_is_named(tmp_path: Path) -> None:
    store, _ = _store_with_runs(tmp_path)
    index = Layout(store.root).index_file
    index.write_bytes(index.read_bytes()[:100])
    res = invoke("hosts", "--store", str(store.root))
    assert res.returncode == 4
    assert str(index) in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1
    index.unlink()  # derived data: deleting it is the fix the message gives
    assert invoke("hosts", "--store", str(store.root)).returncode == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupted_history_file_is_named(tmp_path: Path, damage: str) -> None:
    store, run = _store_with_runs(tmp_path)
    layout = Layout(store.root)
    path = run_file(store.root, "hosts", run)
    data = path.read_bytes()
    path.write_bytes(
        {
            "truncated": data[: len(data) // 2],
            "garbage": b"PAR1" + os.urandom(len(data) - 8) + b"PAR1",
            "empty": b"",
        }[damage]
    )
    layout.index_file.unlink()  # the rebuild has to read the damaged file
    res = invoke("hosts", "--store", str(store.root))
    assert res.returncode == 4, res.stderr
    assert str(path) in res.stderr and "Traceback" not in res.stderr


def test_a_corrupted_detail_file_is_named_by_snapshots(tmp_path: Path) -> None:
    store, run = _store_with_runs(tmp_path)
    path = run_file(store.root, "models", run)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(StoreCorruptError, match=str(path)):
        store.snapshots(["kvm01"], "tcg")


def test_foreign_parquet_files_are_ignored_and_fsck_names_them(tmp_path: Path) -> None:
    """fleetcpu reads only the files commit records list: a stray changes no answer."""
    store, run = _store_with_runs(tmp_path)
    layout = Layout(store.root)
    day = run_file(store.root, "hosts", run).parent
    before = invoke("hosts", "--store", str(store.root)).stdout
    # Someone's own Parquet file dropped into the table directory.
    foreign = day / "part-0.parquet"
    pd.DataFrame({"host": ["x"], "cpu": ["y"]}).to_parquet(foreign)
    # One of ours, but of another table, under a run file name.
    stray = day / f"run-{new_run_id(base_time())}.parquet"
    shutil.copy(run_file(store.root, "models", run), stray)
    layout.index_file.unlink()
    res = invoke("hosts", "--store", str(store.root))
    assert (res.returncode, res.stdout) == (0, before), res.stderr
    assert store.reindex() == 2
    res = invoke("fsck", "--store", str(store.root))
    assert res.returncode == 7 and str(foreign) in res.stdout and str(stray) in res.stdout
    foreign.unlink()
    stray.unlink()
    assert invoke("fsck", "--store", str(store.root)).returncode == 0

    # An index replaced by a foreign file.
    pd.DataFrame({"a": [1]}).to_parquet(layout.index_file)
    res = invoke("hosts", "--store", str(store.root), "--format", "json")
    assert res.returncode == 4 and str(layout.index_file) in res.stderr
    assert store.reindex() == 2


def test_a_foreign_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    doc = write_document(tmp_path / "doc.json", ok_document())
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    for cmd in (["import", str(doc)], ["hosts"]):
        res = invoke(*cmd, "--store", str(home))
        assert res.returncode == 4, res.stderr
        assert str(home) in res.stderr and "not a fleetcpu store" in res.stderr
    assert sorted(os.listdir(home)) == ["notes.txt"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "fleetcpu-store.json").write_text(json.dumps({"format": "something.else"}))
    res = invoke("import", "--store", str(other), str(doc))
    assert res.returncode == 4 and "something.else" in res.stderr
    # A newer layout (3: this fleetcpu knows 1 and 2) is refused by readers and writers,
    # and so is anything that is not a layout number.
    for layout in (3, True, "2", None):
        newer = tmp_path / f"newer-{layout}"
        newer.mkdir()
        (newer / "fleetcpu-store.json").write_text(json.dumps({"format": "fleetcpu.store", "layout": layout}))
        for cmd in (["hosts"], ["import", str(doc)], ["fsck"]):
            res = invoke(*cmd, "--store", str(newer))
            assert res.returncode == 4, (layout, cmd, res.stderr)
            assert f"store layout {layout!r}" in res.stderr, res.stderr
            assert "reads layouts 1 and 2" in res.stderr
        assert os.listdir(newer) == ["fleetcpu-store.json"]
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    res = invoke("import", "--store", str(a_file), str(doc))
    assert res.returncode == 4 and "not a directory" in res.stderr


def test_pyarrow_never_sees_a_temporary(tmp_path: Path) -> None:
    """The premise of the atomic writes, checked against the real readers."""
    store, run = _store_with_runs(tmp_path)
    path = run_file(store.root, "hosts", run)
    (path.parent / f".{path.name}.tmp").write_bytes(b"half a file")
    read_everywhere(store.root)
    assert sys.modules["duckdb"] is duckdb
