"""Reading the latest state of a large fleet must not depend on how much history the store holds.

    python benchmarks/store_bench.py [--hosts 10000] [--history 365] [--quick] [--keep DIR]

Builds a synthetic store of ``--hosts`` hosts from a real probe document
(tests/golden/probe-kvm-q35.json; 64 CPU variants, 20 pools):

* run 1, a year ago, through the real ``RunWriter``: every host writes its
  CPU data (the expensive first run);
* ``--history`` runs spread over the year, written straight with pyarrow as
  copies of run 1's ``hosts`` rows (each run is a full 10,000-row ``hosts``
  file pointing at run 1's detail rows, exactly what the writer produces when
  nothing changed), then ``Store.reindex()`` over all of it;
* the latest run, now, through the real ``RunWriter``: 1% of hosts changed
  CPU data, 2% failed.

Then it times, each as the median of several cold-object reads (fresh
``Store``; the OS page cache is warm, as it is for an operator):
``store.latest()`` with only 2 runs stored and again with the whole history,
against a plain ``pandas.read_parquet`` of the one index file measured in the
same run; ``store.snapshots`` of every host (what the baseline reads); and the
``fleetcpu hosts --format json`` command end to end. Ratios are printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fleetcpu.outcome import ConnectionSpec, HostOutcome
from fleetcpu.probe.document import ProbeDocument
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.store import Store
from fleetcpu.store.atomic import write_table
from fleetcpu.store.layout import new_run_id
from fleetcpu.store.schema import HOSTS, RUNS

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "probe-kvm-q35.json"
VARIANTS = 64
POOLS = 20


def load_document() -> ProbeDocument:
    if GOLDEN.exists():
        return document_from_json(GOLDEN.read_text(), str(GOLDEN))
    out = subprocess.run(
        [sys.executable, "-m", "fleetcpu.probe"], capture_output=True, text=True, check=True, cwd=REPO
    )
    return document_from_json(out.stdout, "probe")


def variant(doc: ProbeDocument, k: int) -> ProbeDocument:
    """Another CPU: one more model blocked (as a microcode update would) and its own microcode."""
    mp = doc.machine_types[0]
    models = list(mp.models)
    i = k % len(models)
    models[i] = dataclasses.replace(models[i], unavailable_features=(f"feat-{k}",))
    cpu = dataclasses.replace(doc.host.cpu, microcode=hex(0x1000 + k))
    return dataclasses.replace(
        doc,
        host=dataclasses.replace(doc.host, cpu=cpu),
        machine_types=(dataclasses.replace(mp, models=tuple(models)), *doc.machine_types[1:]),
    )


def outcome(i: int, doc: ProbeDocument | None, when: datetime) -> HostOutcome:
    host = f"kvm{i:05d}"
    return HostOutcome(
        host=host,
        pool=f"pool{i % POOLS:02d}",
        collected_at=when,
        document=doc,
        connection=ConnectionSpec("ssh", f"{host}.example.com", 22, "root"),
        stage=None if doc is not None else "connect",
        error=None if doc is not None else "connection refused",
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(fn: Callable[[], object], n: int) -> float:
    fn()  # warm-up: imports, page cache
    return statistics.median(timed(fn) for _ in range(n))


def run_bytes(root: Path, run_id: str) -> int:
    # Layout 2: the run's parts, run-<id>-<part>.parquet (layout 1: run-<id>.parquet).
    return sum(p.stat().st_size for p in (root / "v1").rglob(f"run-{run_id}*.parquet"))


def write_history(store: Store, template: pa.Table, first: datetime, last: datetime, count: int) -> None:
    """``count`` runs between ``first`` and ``last``: full hosts files, nothing changed."""
    step = (last - first) / (count + 1)
    n = template.num_rows
    for k in range(1, count + 1):
        when = first + step * k
        run_id = new_run_id(when)
        stamp = pa.array([when] * n, HOSTS.schema.field("collected_at").type)
        table = template.set_column(
            template.schema.get_field_index("run_id"), "run_id", pa.array([run_id] * n, pa.string())
        )
        table = table.set_column(table.schema.get_field_index("collected_at"), "collected_at", stamp)
        write_table(store.layout.run_file("hosts", run_id), HOSTS, table.cast(HOSTS.schema))
        write_table(
            store.layout.run_file("runs", run_id),
            RUNS,
            pa.Table.from_pylist(
                [
                    {
                        "run_id": run_id,
                        "started_at": when,
                        "finished_at": when + timedelta(minutes=2),
                        "command": "collect",
                        "inventory": "fleet.txt",
                        "fleetcpu_version": "bench",
                        "status": "complete",
                        "hosts_ok": n,
                        "hosts_failed": 0,
                        "hosts_detail": 0,
                    }
                ],
                schema=RUNS.schema,
            ),
        )


@dataclasses.dataclass
class Built:
    root: Path
    first_run: str
    latest_run: str
    t_first: float
    t_latest: float


def build(root: Path, hosts: int, now: datetime) -> Built:
    """The first run (a year ago) and the latest run (now), through the real writer."""
    base = load_document()
    docs = [variant(base, k) for k in range(VARIANTS)]
    year_ago = now - timedelta(days=365)
    store = Store.create_or_open(root)
    with store.run_writer(command="collect", inventory="fleet.txt", started_at=year_ago) as w:
        t_first = time.perf_counter()
        for i in range(hosts):
            w.add(outcome(i, docs[i % VARIANTS], year_ago))
    t_first = time.perf_counter() - t_first
    first_run = w.run_id
    changed = [variant(base, VARIANTS + i) for i in range(hosts // 100 + 1)]
    with store.run_writer(command="collect", inventory="fleet.txt", started_at=now) as w:
        t_latest = time.perf_counter()
        for i in range(hosts):
            if i % 50 == 7:
                doc = None  # 2% failed
            elif i % 100 == 3:
                doc = changed[i // 100]  # 1% changed CPU data
            else:
                doc = docs[i % VARIANTS]
            w.add(outcome(i, doc, now))
    t_latest = time.perf_counter() - t_latest
    return Built(root, first_run, w.run_id, t_first, t_latest)


@dataclasses.dataclass
class History:
    root: Path
    runs: int
    hosts_rows: int
    t_write: float
    t_reindex: float
    latest_2: float
    latest_h: float
    pandas_2: float
    pandas_h: float


def with_history(root: Path, built: Built, now: datetime, args: argparse.Namespace) -> History:
    """A copy of the store plus a year of history; then reads of the two, alternating,
    so machine noise hits both alike."""
    history_root = root.parent / "store-with-history"
    if history_root.exists():
        shutil.rmtree(history_root)
    shutil.copytree(root, history_root)
    hstore = Store.open(history_root)
    template = hstore.table("hosts", runs=[built.first_run])
    year_ago = now - timedelta(days=365)
    t_write = timed(lambda: write_history(hstore, template, year_ago, now, args.history))
    t_reindex = timed(hstore.reindex)
    small_index = Store.open(root).layout.index_file
    big_index = hstore.layout.index_file
    readers: dict[str, Callable[[], object]] = {
        "latest_2": lambda: Store.open(root).latest(),
        "latest_h": lambda: Store.open(history_root).latest(),
        "pandas_2": lambda: pd.read_parquet(small_index),
        "pandas_h": lambda: pd.read_parquet(big_index),
    }
    samples: dict[str, list[float]] = {name: [] for name in readers}
    for fn in readers.values():
        fn()  # warm-up
    for _ in range(args.repeat):
        for name, fn in readers.items():
            samples[name].append(timed(fn))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return History(
        root=history_root,
        runs=len(hstore.runs()),
        hosts_rows=hstore.table("hosts", columns=["host"]).num_rows,
        t_write=t_write,
        t_reindex=t_reindex,
        **medians,
    )


def measure(args: argparse.Namespace, root: Path) -> int:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    built = build(root, args.hosts, now)
    store = Store.open(root)

    hist = with_history(root, built, now, args)
    root = hist.root
    index_file = Store.open(root).layout.index_file

    t_pool = median_of(lambda: Store.open(root).latest("pool07"), args.repeat)
    states = Store.open(root).latest()
    assert len(states) == args.hosts
    assert {s.run for s in states} == {built.latest_run}
    all_hosts = [s.host for s in states]
    t_snap = median_of(lambda: Store.open(root).snapshots(all_hosts, "kvm"), max(3, args.repeat // 2))
    snaps = Store.open(root).snapshots(all_hosts, "kvm")
    assert len(snaps) == args.hosts
    detail_runs = {s.detail_run for s in snaps.values()}
    digests = {s.cpu_digest for s in snaps.values()}

    cli = [sys.executable, "-m", "fleetcpu", "hosts", "--format", "json", "--store", str(root)]
    t_cli = median_of(lambda: subprocess.run(cli, capture_output=True, check=True), 3)
    t_py = median_of(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 3)

    n = args.hosts
    first_bytes = run_bytes(root, built.first_run)
    latest_bytes = run_bytes(root, built.latest_run)
    changed = pc.sum(
        pc.equal(store.table("hosts", runs=[built.latest_run])["detail_run"], built.latest_run)
    ).as_py()
    print(
        f"append first run (all {n} hosts write CPU data): {built.t_first:.2f} s, "
        f"{built.t_first / n * 1e3:.2f} ms/host, {first_bytes / n / 1024:.2f} KiB/host"
    )
    print(
        f"append hourly run ({changed} hosts changed, 2% failed): {built.t_latest:.2f} s, "
        f"{built.t_latest / n * 1e3:.2f} ms/host, {latest_bytes / n:.0f} B/host"
    )
    print(
        f"history: {hist.runs} runs, {hist.hosts_rows:,} hosts rows (written in "
        f"{hist.t_write:.1f} s); reindex from all of it: {hist.t_reindex:.2f} s"
    )
    print(f"index: {index_file.stat().st_size / 1024:.0f} KiB for {n} hosts")
    print(
        f"latest(), 2 runs stored:       {hist.latest_2 * 1e3:7.1f} ms "
        f"(pandas.read_parquet of the index: {hist.pandas_2 * 1e3:.1f} ms)"
    )
    print(
        f"latest(), {hist.runs} runs stored:     {hist.latest_h * 1e3:7.1f} ms "
        f"(pandas.read_parquet of the index: {hist.pandas_h * 1e3:.1f} ms)"
    )
    print(f"latest('pool07'):              {t_pool * 1e3:7.1f} ms")
    print(
        f"snapshots(all hosts, kvm):     {t_snap * 1e3:7.1f} ms "
        f"({len(digests)} distinct CPUs in {len(detail_runs)} detail runs)"
    )
    print(
        f"fleetcpu hosts --format json:  {t_cli * 1e3:7.1f} ms end to end "
        f"(python -c pass: {t_py * 1e3:.0f} ms)"
    )
    print("ratios:")
    print(
        f"  latest() with {hist.runs} runs / with 2 runs: {hist.latest_h / hist.latest_2:.2f}x "
        "(independent of history if ~1)"
    )
    print(
        f"  latest() / pandas.read_parquet(index): {hist.latest_h / hist.pandas_h:.2f}x "
        "(the rest is building typed records)"
    )
    print(f"  latest() for {n} hosts: {hist.latest_h:.3f} s (target < 1 s)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument(
        "--history", type=int, default=365, help="runs of history to add between the first and the latest run"
    )
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="2,000 hosts, 60 history runs")
    ap.add_argument("--keep", metavar="DIR", help="build the store in DIR and keep it")
    args = ap.parse_args()
    if args.quick:
        args.hosts, args.history, args.repeat = 2_000, 60, 5
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fleetcpu-bench-"))
    root = tmp / "store"
    if root.exists():
        shutil.rmtree(root)
    print(
        f"store bench: {args.hosts} hosts, {POOLS} pools, {VARIANTS} CPU variants, "
        f"{args.history} history runs, pyarrow {pa.__version__}, pandas {pd.__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    try:
        return measure(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
