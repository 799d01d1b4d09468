"""How the pool baseline scales with the pool: 10, 1,000 and 10,000 members of real CPUs.

    python benchmarks/baseline_bench.py [--sizes 10,1000,10000] [--repeat 5] [--no-store] [--quick]

``--quick``: 10 and 1,000 members, 3 repeats (well under a minute).
``benchmarks/fleet_bench.py`` measures the same at 1,000 to 100,000 hosts
through the real CLI.

Members come from the real CPUs of ``../shared/realdata`` through
``tests/support/replay/members.py`` (the stand-in's answers, decoded by the probe's
decoders): the catalogue's GenuineIntel cputestdata hosts (a pool has one
vendor and, for the store run, one machine type), cycled, each synthetic
member given a unique name. Four measurements per size, each the median of
``--repeat`` runs, with the peak of Python allocations (tracemalloc) during
one run:

* ``reference``: a plain ``frozenset.intersection`` over the same feature sets,
  measured in the same run: the floor any baseline has to pay;
* ``core, shared``: ``compute_baseline`` on members sharing their records,
  as ``select`` builds them from the store (hosts of one CPU digest share one
  frozen ``MachineProbe``);
* ``core, private``: every member with its own copies of its feature set and
  model list (no sharing at all: the worst case for the core's dedupe);
* ``store + core`` (unless ``--no-store``): a store written through the real
  ``RunWriter`` with one run of the whole pool, then ``select_members`` (index,
  snapshots, machine type) plus ``compute_baseline``, fresh ``Store`` each time.

Ratios against the reference are printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fleetcpu.baseline import Member, compute_baseline  # noqa: E402
from fleetcpu.baseline.select import select_members  # noqa: E402
from fleetcpu.outcome import ConnectionSpec, HostOutcome  # noqa: E402
from fleetcpu.probe.document import ProbeDocument, QemuInfo  # noqa: E402
from fleetcpu.store import Store  # noqa: E402
from tests.support.replay import members as replay  # noqa: E402
from tests.support.replay.hosts import catalogue  # noqa: E402

VENDOR = "GenuineIntel"


def real_cpus() -> list[str]:
    """The vendor's cputestdata hosts: all on the stand-in's one synthetic machine type."""
    return [c.name for c in catalogue() if c.kind == "cputest" and replay.member(c.name).vendor == VENDOR]


def pool(size: int, names: list[str], *, private: bool = False) -> list[Member]:
    out = []
    for i in range(size):
        m = replay.member(names[i % len(names)])
        m = dataclasses.replace(m, host=f"kvm{i:05d}-{m.host}")
        if private:
            # New containers (a tuple() of a tuple is the same object): nothing shared by identity.
            m = dataclasses.replace(m, offered=frozenset(set(m.offered)), models=(*m.models,))
        out.append(m)
    return out


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median seconds, peak MiB of Python allocations during one run)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def document(name: str, when: datetime) -> ProbeDocument:
    mp = replay.machine_probe(name)
    return ProbeDocument(
        status="ok",
        probe_version="bench",
        time=when.isoformat(),
        duration_s=0.1,
        host=replay.facts(name),
        accel="kvm",
        qemu=QemuInfo(
            binary="qemu-system-x86_64",
            version=replay.qemu_version(name),
            package="replay",
            kvm_present=True,
            kvm_enabled=True,
            machines=(),
        ),
        machine_types=(mp,),
    )


def store_of(size: int, names: list[str], root: Path) -> float:
    """Write one run of the whole pool through the real writer; returns the seconds it took."""
    when = datetime.now(UTC)
    docs = {n: document(n, when) for n in names}
    started = time.perf_counter()
    store = Store.create_or_open(root)
    with store.run_writer("bench", started_at=when) as writer:
        for i in range(size):
            name = names[i % len(names)]
            writer.add(
                HostOutcome(
                    host=f"kvm{i:05d}",
                    pool="bench",
                    collected_at=when,
                    document=docs[name],
                    connection=ConnectionSpec("bench"),
                )
            )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-store", action="store_true")
    parser.add_argument("--quick", action="store_true", help="10 and 1,000 members, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat = "10,1000", 3
    names = real_cpus()
    print(f"{len(names)} real {VENDOR} CPUs from the catalogue, cycled")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        shared = pool(size, names)
        private = pool(size, names, private=True)
        sets = [m.offered for m in shared]
        ref_t, ref_m = measure(lambda sets=sets: frozenset.intersection(*sets), args.repeat)
        core_t, core_m = measure(
            lambda p=shared: compute_baseline("bench", "pc-q35-0.0", "kvm", p), args.repeat
        )
        priv_t, priv_m = measure(
            lambda p=private: compute_baseline("bench", "pc-q35-0.0", "kvm", p), args.repeat
        )
        b = compute_baseline("bench", "pc-q35-0.0", "kvm", shared)
        row = {
            "size": size,
            "ref": (ref_t, ref_m),
            "shared": (core_t, core_m),
            "private": (priv_t, priv_m),
            "model": b.model,
            "features": len(b.features),
        }
        if not args.no_store:
            with tempfile.TemporaryDirectory(prefix="fleetcpu-bench-") as tmp:
                row["write"] = store_of(size, names, Path(tmp) / "store")

                def end_to_end(tmp: str = tmp) -> None:
                    chosen = select_members(Store.open(Path(tmp) / "store"), "bench")
                    compute_baseline("bench", chosen.machine_type, "kvm", chosen.members)

                row["store"] = measure(end_to_end, max(1, args.repeat // 2))
        rows.append(row)
        print(
            f"{size:>6} members: reference {ref_t * 1e3:9.2f} ms {ref_m:7.2f} MiB | "
            f"core shared {core_t * 1e3:9.2f} ms {core_m:7.2f} MiB | "
            f"core private {priv_t * 1e3:9.2f} ms {priv_m:7.2f} MiB"
            + (
                f" | store+core {row['store'][0] * 1e3:9.1f} ms {row['store'][1]:7.1f} MiB"
                f" (writing the run took {row['write']:.1f} s)"
                if "store" in row
                else ""
            )
            + f" -> {b.model} +{len(b.enable)} -{len(b.disable)}, {len(b.features)} features"
        )
    print("\nratios against the plain set intersection over the same feature sets:")
    for row in rows:
        ref_t = row["ref"][0]
        parts = [
            f"core shared x{row['shared'][0] / ref_t:,.0f}",
            f"core private x{row['private'][0] / ref_t:,.0f}",
        ]
        if "store" in row:
            parts.append(f"store+core x{row['store'][0] / ref_t:,.0f}")
        print(f"{row['size']:>6} members: " + ", ".join(parts))


if __name__ == "__main__":
    main()
