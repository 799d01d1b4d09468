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

from fleetcpu.store import Store
from fleetcpu.store.layout import Layout

from .conftest import PYTHON, REPO
from .test_store_robustness import write_run
from .test_store_support import hidden_temporaries

# A writer that flushes FIRST hosts (flush_every=5), says its run id, waits for a line on
# stdin, then adds REST more hosts and commits.
SLOW_WRITER = """
import sys
from datetime import timedelta
from fleetcpu.store import Store
from tests.test_store_support import base_time, ok_document, outcome, with_blocked_model
root, first, rest, hours = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
store = Store.create_or_open(root)
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


def test_a_slow_live_run_survives_a_sweep_by_another_writer(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert write_run(root, "a", 4).returncode == 0
    with subprocess.Popen(
        [PYTHON, "-c", SLOW_WRITER, str(root), "10", "10", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO,
    ) as slow:
        assert slow.stdout is not None and slow.stdin is not None
        run = slow.stdout.readline().strip()
        temps = hidden_temporaries(root)
        assert any(run in p.name for p in temps), temps
        # Untouched for two hours, as a run that flushes every 500 hosts can be.
        _age(temps, 7200)
        # Another writer commits on the same UTC day, and sweeps.
        other = write_run(root, "b", 3, hours=2)
        assert other.returncode == 0, other.stderr
        assert all(p.exists() for p in temps), "the sweep deleted a live run's temporaries"
        slow.stdin.write("go\n")
        slow.stdin.flush()
        out, err = slow.communicate(timeout=120)
    assert slow.returncode == 0, err
    assert "committed" in out
    store = Store.open(root)
    assert run in {r.run_id for r in store.runs()}
    assert len(store.table("hosts", runs=[run])) == 20
    assert hidden_temporaries(root) == []


def test_a_run_killed_on_an_earlier_date_is_swept(tmp_path: Path) -> None:
    root = tmp_path / "store"
    killed = write_run(root, "k", 30, env={"FLEETCPU_TEST_HOOK_KILL_AFTER": "10"})
    assert killed.returncode == -9, killed.stderr
    run = killed.stdout.strip()
    assert any(run in p.name for p in hidden_temporaries(root))
    # Two days later (another date partition), a writer commits: the dead run's
    # temporaries go at once, whatever their mtime, because its lease is free.
    later = write_run(root, "n", 3, hours=48)
    assert later.returncode == 0, later.stderr
    assert hidden_temporaries(root) == []
    assert not (Layout(root).data / "leases" / run).exists()
