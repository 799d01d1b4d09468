"""Store, baseline and blockers at fleet scale: 1,000, 10,000 and 100,000 hosts of real CPUs.

    python benchmarks/fleet_bench.py [--sizes 1000,10000,100000] [--runs 3] [--repeat 3]
                                     [--quick] [--keep DIR [--reuse]]

``--quick`` is 1,000 and 10,000 hosts, 2 runs, median of 2 (under a minute on 2
idle cores); the default adds 100,000 (several minutes: the first run of
100,000 hosts writes ~35 million detail rows through the real writer).
``--keep DIR --reuse`` measures the stores a previous ``--keep DIR`` run left,
without appending (no append figures then).

The fleet: the real CPUs of ``../shared/realdata`` (read at run time through
``tests/replay``, never copied): the GenuineIntel and AuthenticAMD
cputestdata hosts whose capture holds QEMU's model list (a real probe always
records one), each in eight variants as microcode and kernel updates make
them: with or without TSX (``hle``/``rtm`` gone, as the TAA microcode does;
a seeded feature where the CPU has no TSX) and with or without each of two
seeded features (a kernel hiding one). A dropped feature leaves
the host expansion and makes every model that needs it unusable, naming it
in ``unavailable_features``, as QEMU would. Hosts draw a CPU and a variant
(most as captured) from a seeded generator: about 150 distinct CPU
digests, whatever the size, and some 120 groups of identical CPU data for
``blockers`` in the big pool.

Pools: ``intel`` holds 99% of the hosts and ``amd`` 1% (a pool has one
vendor). The timed commands ask ``--pool intel``: the worst case, one pool
holding practically the whole fleet. A realistic 100,000-host fleet has
hundreds of pools; asking one of them costs the index read below plus that
pool's share of the rest, so ``amd`` (1%) is timed too.

Runs, through the real ``RunWriter``, an hour apart, the last one now: the
first writes every host's CPU data; each later run moves 1% of the hosts to
their next variant (a microcode update) and fails 2% at ``connect`` (their
previous data stays in use, with a notice).

Measured per size, each the median of ``--repeat``:

* appending: seconds per run and bytes on disk per host per run (every
  table's file of the run), the first run and a later one apart;
* the real CLI as fresh processes (``python -m fleetcpu ...``, reaped with
  ``wait4`` for peak RSS and CPU time): ``baseline --pool intel``,
  ``blockers --pool intel``, ``baseline --pool amd``, ``hosts``, and the
  start-up reference ``hosts`` on an empty store (interpreter, imports, exit
  21): the difference is the command's own work;
* in process, fresh ``Store`` each time: ``store.latest()``, ``select_members``
  (index, snapshots, members), ``compute_baseline``, ``explain_blockers``;
* references measured in the same run: ``pyarrow.parquet.read_table`` of the
  index (the plain read of the latest state) and ``frozenset.intersection``
  over the members' offered sets (the floor of any baseline).

Ratios are printed last, on CPU time (on a shared machine wall times of one
command varied 3x between runs, CPU times far less): against the references,
and growth per 10x hosts (linear is x10.0). The target lines give wall time,
what the issue's targets mean, with CPU time beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
from installed import compile_package  # noqa: E402 - benchmarks/installed.py, beside this script

sys.path.insert(0, str(REPO))

from fleetcpu.baseline import compute_baseline  # noqa: E402
from fleetcpu.baseline.select import select_members  # noqa: E402
from fleetcpu.contract.shell import ComplianceRecorder, adopted, plan_adoption, record_adoption  # noqa: E402
from fleetcpu.explain import explain_blockers  # noqa: E402
from fleetcpu.outcome import ConnectionSpec, HostOutcome  # noqa: E402
from fleetcpu.probe.document import (  # noqa: E402
    Expansion,
    MachineProbe,
    ProbeDocument,
    QemuInfo,
)
from fleetcpu.probe.features import TSX  # noqa: E402
from fleetcpu.store import Store  # noqa: E402
from fleetcpu.store.schema import COMPLIANCE, HEADROOM  # noqa: E402
from tests.support.contract_fleet import machine_list  # noqa: E402
from tests.support.replay import members as replay  # noqa: E402
from tests.support.replay.hosts import catalogue  # noqa: E402

SEED = 20261126
#: Variant k drops the union of the drop sets whose bit is set in k (see ``variants``).
VARIANTS = 8
#: Share of hosts per variant at the first run: most as captured, fewer updated.
WEIGHTS = (0.40, 0.20, 0.10, 0.10, 0.08, 0.05, 0.04, 0.03)
POOLS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}
CHANGED = 0.01
FAILED = 0.02


# --------------------------------------------------------------------------- the fleet
def real_cpus() -> dict[str, list[str]]:
    """vendor -> the catalogue's cputestdata CPUs of that vendor (one machine type) whose
    capture holds QEMU's model list: a real probe always records one."""
    out: dict[str, list[str]] = {}
    for c in catalogue():
        if c.kind != "cputest":
            continue
        mp = replay.machine_probe(c.name)
        vendor = mp.vcpu.vendor or ""
        if vendor in POOLS and mp.models:
            out.setdefault(vendor, []).append(c.name)
    return out


def _drop(mp: MachineProbe, gone: frozenset[str]) -> MachineProbe:
    """The probe of the same CPU with ``gone`` no longer offered, as QEMU would report it."""

    def exp(e: Expansion | None) -> Expansion | None:
        if e is None:
            return None
        return dataclasses.replace(e, features={k: v and k not in gone for k, v in e.features.items()})

    models = []
    for m in mp.models:
        lost = gone & set(m.features or ())
        if lost:
            m = dataclasses.replace(  # noqa: PLW2901
                m, unavailable_features=tuple(sorted({*m.unavailable_features, *lost})), features=None
            )
        models.append(m)
    return dataclasses.replace(
        mp,
        models=tuple(models),
        static_expansion=exp(mp.static_expansion),
        full_expansion=exp(mp.full_expansion),
    )


def variants(name: str, rng: random.Random) -> list[MachineProbe]:
    """Three drop sets, TSX (a microcode update; a seeded feature where the CPU has no
    TSX) and two seeded features (a kernel hiding one): variant k drops those whose
    bit is set in k, so variant 0 is the CPU as captured."""
    mp = replay.machine_probe(name)
    exp = mp.static_expansion or mp.full_expansion
    assert exp is not None
    offered = sorted(k for k, on in exp.features.items() if on)
    tsx = frozenset(TSX) & set(offered)
    drops = [tsx or frozenset({rng.choice(offered)})]
    for _ in range(2):
        drops.append(frozenset({rng.choice(sorted(set(offered).difference(*drops)))}))
    return [
        _drop(mp, frozenset().union(*(d for b, d in enumerate(drops) if k >> b & 1))) for k in range(VARIANTS)
    ]


def document(name: str, k: int, mp: MachineProbe, when: datetime) -> ProbeDocument:
    facts = replay.facts(name, microcode=hex(0x1000 + k))
    return ProbeDocument(
        status="ok",
        probe_version="bench",
        time=when.isoformat(),
        duration_s=0.1,
        host=facts,
        accel="kvm",
        qemu=QemuInfo(
            binary="qemu-system-x86_64",
            version=replay.qemu_version(name),
            package="replay",
            kvm_present=True,
            kvm_enabled=True,
            # The capture's own query-machines answer (hosts.qemu_machines).
            machines=machine_list(name),
        ),
        machine_types=(mp,),
    )


@dataclasses.dataclass
class Fleet:
    """Per host: its pool, CPU and variant; the documents, built once per (CPU, variant)."""

    pool: list[str]
    cpu: list[str]
    variant: list[int]
    docs: dict[tuple[str, int], ProbeDocument]


def fleet(size: int, cpus: dict[str, list[str]], when: datetime) -> Fleet:
    rng = random.Random(SEED)
    docs = {}
    for names in cpus.values():
        for name in names:
            for k, mp in enumerate(variants(name, rng)):
                docs[(name, k)] = document(name, k, mp, when)
    pool, cpu, variant = [], [], []
    for i in range(size):
        vendor = "AuthenticAMD" if i % 100 == 50 else "GenuineIntel"
        pool.append(POOLS[vendor])
        cpu.append(rng.choice(cpus[vendor]))
        variant.append(rng.choices(range(VARIANTS), WEIGHTS)[0])
    return Fleet(pool, cpu, variant, docs)


@dataclasses.dataclass
class Append:
    seconds: float
    cpu: float
    bytes: int
    detail_hosts: int


def run_bytes(root: Path, run_id: str) -> int:
    # Layout 2: the run's parts, run-<id>-<part>.parquet (layout 1: run-<id>.parquet).
    return sum(p.stat().st_size for p in (root / "v1").rglob(f"run-{run_id}*.parquet"))


def append_run(store: Store, f: Fleet, when: datetime, failed: set[int]) -> Append:
    t, c = time.perf_counter(), time.process_time()
    with store.run_writer("collect", "fleet.txt", started_at=when) as w:
        for i in range(len(f.pool)):
            host = f"kvm{i:06d}"
            doc = None if i in failed else f.docs[(f.cpu[i], f.variant[i])]
            w.add(
                HostOutcome(
                    host=host,
                    pool=f.pool[i],
                    collected_at=when,
                    document=doc,
                    connection=ConnectionSpec("ssh", f"{host}.example.com", 22, "root"),
                    stage="connect" if doc is None else None,
                    error="connection refused" if doc is None else None,
                )
            )
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    return Append(seconds, cpu, run_bytes(store.root, w.run_id), w.hosts_detail)


def judged(root: Path) -> bool:
    """Whether the store's newest collect holds verdicts (a collect after the adoption; the
    adoption's own run holds the verdicts judged at adoption, not a collect's)."""
    store = Store.open(root)
    newest = max((r for r in store.runs() if r.command == "collect"), key=lambda r: r.started_at).run_id
    return bool(store.table("compliance", runs=[newest]).num_rows)


def judged_run(root: Path, size: int, cpus: dict[str, list[str]]) -> bool:
    """A collect after the adoption: every host judged and its verdict stored with the run,
    as ``collect`` does (``ComplianceRecorder``); what ``status`` meets in steady state.
    Appended once: False when the newest run already holds verdicts."""
    if judged(root):
        return False
    store = Store.open(root)
    when = datetime.now(UTC)
    f = fleet(size, cpus, when)
    recorder = ComplianceRecorder.load(store)
    with store.run_writer("collect", "fleet.txt", started_at=when) as w:
        for i in range(len(f.pool)):
            host = f"kvm{i:06d}"
            outcome = HostOutcome(
                host=host,
                pool=f.pool[i],
                collected_at=when,
                document=f.docs[(f.cpu[i], f.variant[i])],
                connection=ConnectionSpec("ssh", f"{host}.example.com", 22, "root"),
            )
            w.add(outcome)
            rows = recorder.rows(outcome, w.run_id)
            if rows:
                w.add_rows(COMPLIANCE, rows)
        w.add_rows(HEADROOM, recorder.headroom_rows())  # as collect ends a whole run
    return True


def build(root: Path, size: int, runs: int, cpus: dict[str, list[str]], now: datetime) -> list[Append]:
    """``runs`` runs an hour apart, the last at ``now``; 1% change and 2% fail after the first."""
    f = fleet(size, cpus, now)
    rng = random.Random(SEED + size)
    store = Store.create_or_open(root)
    out = []
    for k in range(runs):
        failed: set[int] = set()
        if k:
            for i in rng.sample(range(size), max(1, int(size * CHANGED))):
                f.variant[i] = (f.variant[i] + 1) % VARIANTS
            failed = set(rng.sample(range(size), int(size * FAILED)))
        out.append(append_run(store, f, now - timedelta(hours=runs - 1 - k), failed))
    return out


# --------------------------------------------------------------------------- timing
@dataclasses.dataclass
class Proc:
    wall: float
    cpu: float
    rss_mib: float


#: Reaps the command in a lean process: a child forked from this benchmark (hundreds of
#: MiB) would report the fork's RSS as its peak (Linux counts the pre-exec image).
_LAUNCHER = """
import os, subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
wall = time.perf_counter() - t
print(os.waitstatus_to_exitcode(status), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
"""


def run_cli(argv: Sequence[str], expect: int = 0) -> Proc:
    """One fresh process, reaped with wait4: wall time, CPU time (user+sys), peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "fleetcpu", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    code, wall, cpu, rss = done.stdout.split()
    if int(code) != expect:
        raise RuntimeError(f"{argv}: exit {code}: {done.stderr[-2000:]}")
    return Proc(float(wall), float(cpu), int(rss) / 1024)


def median_proc(argv: Sequence[str], repeat: int, expect: int = 0) -> Proc:
    runs = [run_cli(argv, expect) for _ in range(repeat)]
    return Proc(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.rss_mib for r in runs),
    )


@dataclasses.dataclass
class Timed:
    wall: float
    cpu: float


def median_of(fn: Callable[[], object], repeat: int) -> Timed:
    """Median wall and CPU seconds (CPU time is what to trust on a shared machine), after
    one untimed call (lazy imports, first-use setup, page cache)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return Timed(statistics.median(walls), statistics.median(cpus))


def measure(root: Path, empty: Path, repeat: int, judge: Callable[[], bool]) -> dict[str, Any]:
    store_arg = ["--store", str(root)]
    out: dict[str, Any] = {}
    out["cli start"] = median_proc(["hosts", "--store", str(empty)], repeat, expect=21)
    out["cli baseline"] = median_proc(["baseline", "--pool", "intel", *store_arg], repeat)
    out["cli blockers"] = median_proc(["blockers", "--pool", "intel", *store_arg], repeat)
    out["cli hosts"] = median_proc(["hosts", *store_arg], repeat)
    out["cli baseline amd"] = median_proc(["baseline", "--pool", "amd", *store_arg], repeat)
    # The contract: adopt the pool's baseline once, then judge every member with `status`.
    store = Store.open(root)
    if "intel" not in adopted(store):
        record_adoption(
            store,
            plan_adoption(
                store,
                "intel",
                cpu=None,
                machine_type=None,
                accel="kvm",
                note="bench",
                max_age=timedelta(days=7),
            ),
        )
    # Right after the adoption no run has judged the members: status judges each from its data
    # (measured only then: a store kept from an earlier bench already holds a judged run).
    if not judged(root):
        out["cli status adopted"] = median_proc(["status", "--pool", "intel", *store_arg], repeat)
    # Then a collect judges every member and stores the verdicts, which status takes.
    judge()
    out["cli status"] = median_proc(["status", "--pool", "intel", *store_arg], repeat)
    out["cli status json"] = median_proc(
        ["status", "--pool", "intel", "--format", "json", *store_arg], repeat
    )

    index = Store.open(root).layout.index_file
    out["ref index"] = median_of(lambda: pq.read_table(index), repeat)
    out["latest"] = median_of(lambda: Store.open(root).latest(), repeat)
    out["select"] = median_of(lambda: select_members(Store.open(root), "intel"), repeat)
    chosen = select_members(Store.open(root), "intel")
    mt, members = chosen.machine_type, chosen.members
    sets = [m.offered for m in members]
    out["ref intersection"] = median_of(lambda: frozenset.intersection(*sets), repeat)
    out["compute"] = median_of(
        lambda: compute_baseline("intel", mt, "kvm", members, missing=chosen.missing, notices=chosen.notices),
        repeat,
    )
    out["explain"] = median_of(
        lambda: explain_blockers("intel", mt, "kvm", members, missing=chosen.missing, notices=chosen.notices),
        repeat,
    )
    out["members"] = len(members)
    out["missing"] = len(chosen.missing)
    out["distinct"] = len({id(m.offered) for m in members})
    out["index bytes"] = index.stat().st_size
    return out


# --------------------------------------------------------------------------- report
def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


CLI = (
    "cli start",
    "cli hosts",
    "cli baseline",
    "cli blockers",
    "cli baseline amd",
    "cli status adopted",
    "cli status",
    "cli status json",
)
INPROC = ("ref index", "latest", "select", "ref intersection", "compute", "explain")


def report(rows: list[dict[str, Any]]) -> None:
    print()
    for r in rows:
        n = r["size"]
        print(
            f"== {n:,} hosts ({r['members']:,} intel members used, {r['missing']} missing, "
            f"{r['distinct']} distinct offered sets)"
        )
        for k, a in enumerate(r["appends"]):
            print(
                f"  append {'first' if k == 0 else 'later'} run:    {a.seconds:7.2f} s wall "
                f"{a.cpu:7.2f} s cpu {a.bytes / n:8.0f} B/host ({a.detail_hosts:,} hosts wrote "
                "CPU data)"
            )
        if not r["appends"]:
            print("  append: store reused (--reuse), not timed")
        print(f"  index:               {r['index bytes'] / n:8.0f} B/host")
        for key in CLI:
            if key not in r:  # ``cli status adopted``: measured on a store's first bench only
                continue
            p = r[key]
            print(f"  {key + ':':<20} {ms(p.wall)} wall {ms(p.cpu)} cpu {p.rss_mib:7.1f} MiB peak")
        for key in INPROC:
            print(f"  {key + ':':<20} {ms(r[key].wall)} wall {ms(r[key].cpu)} cpu")
    print("\nratios (CPU time: steadier than wall time on a shared machine):")
    for r in rows:
        n = r["size"]
        start = r["cli start"].cpu
        print(
            f"  {n:>7,} hosts: latest() / pyarrow read of the index "
            f"x{r['latest'].cpu / r['ref index'].cpu:.1f}; compute_baseline / "
            f"frozenset.intersection x{r['compute'].cpu / r['ref intersection'].cpu:.0f}; "
            f"CLI minus start-up: hosts {r['cli hosts'].cpu - start:.2f} s, baseline "
            f"{r['cli baseline'].cpu - start:.2f} s, blockers "
            f"{r['cli blockers'].cpu - start:.2f} s, status {r['cli status'].cpu - start:.2f} s"
        )
    keys: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("cli hosts", lambda r: r["cli hosts"].cpu),
        ("cli baseline", lambda r: r["cli baseline"].cpu),
        ("cli blockers", lambda r: r["cli blockers"].cpu),
        ("cli baseline peak RSS", lambda r: r["cli baseline"].rss_mib),
        ("latest()", lambda r: r["latest"].cpu),
        ("select_members", lambda r: r["select"].cpu),
        ("compute_baseline", lambda r: r["compute"].cpu),
        ("explain_blockers", lambda r: r["explain"].cpu),
    ]
    if all(r["appends"] for r in rows):
        keys.insert(0, ("append later run", lambda r: r["appends"][-1].cpu))
    for a, b in itertools.pairwise(rows):
        factor = b["size"] / a["size"]
        growth = ", ".join(f"{name} x{get(b) / get(a):.1f}" for name, get in keys)
        print(f"  growth {b['size']:,}/{a['size']:,} (linear x{factor:.0f}): {growth}")
    for r in rows:
        target = {10_000: 1.0, 100_000: 10.0}.get(r["size"])
        if target is None:
            continue
        for key in ("cli hosts", "cli baseline", "cli blockers", "cli status"):
            p = r[key]
            print(
                f"  target {r['size']:,} hosts < {target:.0f} s, {key[4:]}: {p.wall:.2f} s wall "
                f"({p.cpu:.2f} s cpu) -> {'met' if p.wall < target else 'MISSED'}"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1,000 and 10,000 hosts, 2 runs")
    ap.add_argument("--keep", metavar="DIR", help="build the stores in DIR and keep them")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: measure the stores already in DIR, without appending",
    )
    args = ap.parse_args()
    compile_package()
    if args.quick:
        args.sizes, args.runs, args.repeat = "1000,10000", 2, 2
    if args.runs < 2:
        ap.error("--runs must be at least 2 (a first run and a later one)")
    if args.reuse and not args.keep:
        ap.error("--reuse needs --keep DIR")
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fleetcpu-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    cpus = real_cpus()
    print(
        f"fleet bench: {', '.join(f'{len(v)} {k}' for k, v in cpus.items())} real CPUs x "
        f"{VARIANTS} variants, {args.runs} runs, median of {args.repeat}; pyarrow "
        f"{pa.__version__}, {os.cpu_count()} CPUs"
    )
    now = datetime.now(UTC)
    rows = []
    try:
        empty = tmp / "empty"
        empty.mkdir(exist_ok=True)
        for size in (int(s) for s in args.sizes.split(",")):
            root = tmp / f"store-{size}"
            appends = []
            if not (args.reuse and (root / "fleetcpu-store.json").exists()):
                if root.exists():
                    shutil.rmtree(root)
                appends = build(root, size, args.runs, cpus, now)
                print(
                    f"{size:,} hosts: {args.runs} runs appended in {sum(a.seconds for a in appends):.1f} s",
                    flush=True,
                )
            judge = functools.partial(judged_run, root, size, cpus)
            rows.append({"size": size, "appends": appends, **measure(root, empty, args.repeat, judge)})
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
