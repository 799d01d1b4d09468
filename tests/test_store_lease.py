"""The temp sweep never deletes a live run's files: staleness is proven by the run's lease.

Real processes: a slow writer that has flushed row groups into its hidden
temporaries and then waits (its files untouched for "two hours": their mtime
is set back), a second writer committing on the same UTC day meanwhile, and a
writer SIGKILLed mid-write on an earlier UTC date. The lease (``flock`` on
``v1/leases/<run_id>`` held for the writer's life) is what tells them apart.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from fleetcpu.store import Store
from fleetcpu.store.layout import Layout, part_name

from .conftest import PYTHON, REPO, run_cli
from .test_store_robustness import TABLES, write_run
from .test_store_support import hidden_temporaries, run_files

# A writer that flushes FIRST hosts (flush_every=5), says its run id, waits for a line on
# stdin, then adds REST more hosts and commits; into a store it creates in LAYOUT.
SLOW_WRITER = """
import sys
from datetime import timedelta
from fleetcpu.store import Store
from tests.test_store_support import base_time, ok_document, outcome, with_blocked_model
root, first, rest, hours = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
store = Store.create_or_open(root, layout=int(sys.argv[5]))
with store.run_writer(command="collect", inventory="fleet.txt",
                      started_at=base_time() + timedelta(hours=hours), flush_every=5) as w:
    for i in range(first):
        w.add(outcome(f"slow{i:03d}", with_blocked_model(ok_document(), f"f{i}")))
    print(w.run_id, flush=True)
    sys.stdin.readline()
    for i in range(first, first + rest):
        w.add(outcome(f"slow{i:03d}", with_blocked_model(ok_document(), f"f{i}")))
print("committed", flush=True)
"""


def _age(paths: list[Path], seconds: float) -> None:
    old = time.time() - seconds
    for p in paths:
        os.utime(p, (old, old))


@pytest.mark.parametrize("layout", [1, 2])
def test_a_slow_live_run_survives_a_sweep_by_another_writer(tmp_path: Path, layout: int) -> None:
    """Layout 1: the live run's row groups sit in temporaries; layout 2: in committed
    parts that readers already see (the run reads as partial while it lives)."""
    root = tmp_path / "store"
    assert write_run(root, "a", 4, layout=layout).returncode == 0
    with subprocess.Popen(
        [PYTHON, "-c", SLOW_WRITER, str(root), "10", "10", "1", str(layout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as slow:
        assert slow.stdout is not None and slow.stdin is not None
        run = slow.stdout.readline().strip()
        if layout == 1:
            temps = hidden_temporaries(root)
            assert any(run in p.name for p in temps), temps
        else:
            assert hidden_temporaries(root) == []
            temps = list(root.rglob(f"run-{run}-*.parquet"))
            assert len(temps) == 2 * 6, temps  # 2 parts: hosts, runs and 4 detail tables
            (live,) = [r for r in Store.open(root).runs() if r.run_id == run]
            assert (live.status, live.parts, live.hosts_ok) == ("partial", 2, 10)
            assert {s.host for s in Store.open(root).latest() if s.run == run} == {
                f"slow{i:03d}" for i in range(10)
            }
        # Untouched for two hours, as a run that flushes every 500 hosts can be.
        _age(temps, 7200)
        # Another writer commits on the same UTC day, and sweeps.
        other = write_run(root, "b", 3, hours=2)
        assert other.returncode == 0, other.stderr
        assert all(p.exists() for p in temps), "the sweep deleted a live run's files"
        slow.stdin.write("go\n")
        slow.stdin.flush()
        out, err = slow.communicate(timeout=120)
    assert slow.returncode == 0, err
    assert "committed" in out
    store = Store.open(root)
    (done,) = [r for r in store.runs() if r.run_id == run]
    # Layout 2: four parts of 5 hosts, then the last record (no rows left) saying complete.
    assert (done.status, done.parts) == ("complete", 1 if layout == 1 else 5)
    assert len(store.table("hosts", runs=[run])) == 20
    assert hidden_temporaries(root) == []


def test_a_run_killed_on_an_earlier_date_is_swept(tmp_path: Path) -> None:
    """Layout 1: killed mid-write, its temporaries go."""
    root = tmp_path / "store"
    killed = write_run(root, "k", 30, env={"FLEETCPU_TEST_HOOK_KILL_AFTER": "10"}, layout=1)
    assert killed.returncode == -9, killed.stderr
    run = killed.stdout.strip()
    assert any(run in p.name for p in hidden_temporaries(root))
    # Two days later (another date partition), a writer commits: the dead run's
    # temporaries go at once, whatever their mtime, because its lease is free.
    later = write_run(root, "n", 3, hours=48)
    assert later.returncode == 0, later.stderr
    assert hidden_temporaries(root) == []
    assert not (Layout(root).data / "leases" / run).exists()


def test_a_run_killed_after_parts_keeps_them_and_loses_only_its_unrecorded_files(tmp_path: Path) -> None:
    """Layout 2: killed between part 3's files and its record. Parts 1 and 2 are
    committed: the sweep two days later keeps them and removes only part 3's files."""
    root = tmp_path / "store"
    killed = write_run(root, "k", 30, env={"FLEETCPU_TEST_HOOK_KILL_AT": "before-record-3"})
    assert killed.returncode == -9, killed.stderr
    run = killed.stdout.strip()
    layout = Layout(root)
    committed = {p for t in TABLES for p in run_files(root, t, run)}
    assert len(committed) == 2 * 6
    unrecorded = set(root.rglob(f"run-{run}-*.parquet")) - committed
    assert {p.name for p in unrecorded} == {part_name(run, 3)}
    assert len(unrecorded) == 5  # hosts and the 4 detail tables; no record
    _age([*committed, *unrecorded, layout.lease_file(run)], 7200)
    later = write_run(root, "n", 3, hours=48)
    assert later.returncode == 0, later.stderr
    assert all(p.exists() for p in committed)
    assert not any(p.exists() for p in unrecorded)
    assert not layout.lease_file(run).exists() and not layout.pending_file(run).exists()
    store = Store.open(root)
    (k,) = [r for r in store.runs() if r.run_id == run]
    assert (k.status, k.parts, k.hosts_ok + k.hosts_failed) == ("killed", 2, 10)
    assert {s.host for s in store.latest() if s.run == run} == {f"k{i:03d}" for i in range(10)}
    assert run_cli("fsck", "--store", str(root)).returncode == 0
