"""How ``fleetcpu blockers`` scales: 10, 1,000 and 10,000 members of real CPUs.

    python benchmarks/explain_bench.py [--sizes 10,1000,10000] [--repeat 3] [--quick]

``--quick``: 10 and 1,000 members, one repeat (well under a minute).

Members as in ``baseline_bench.py``: the catalogue's GenuineIntel cputestdata
hosts (33 real CPUs through the stand-in), cycled, each with a unique name.
Per size, the median of ``--repeat`` runs and the peak of Python
allocations during one run, for:

* ``baseline``: ``compute_baseline`` alone (what ``fleetcpu baseline`` pays);
* ``blockers, shared``: ``explain_blockers`` on members sharing their
  records, as the store hands them (one baseline on every member, then one
  what-if per group of identical CPU data on one representative each);
* ``blockers, private``: every member with its own copies (worst case for
  the identity caches);
* ``naive what-ifs`` (sizes up to 1,000): one full ``compute_baseline`` per
  group on all remaining *members*, what the representatives avoid.

Ratios are printed last: blockers against the baseline alone measured in
the same run (what explaining costs on top of the answer), and the naive
what-ifs against blockers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from baseline_bench import measure, pool, real_cpus  # noqa: E402

from fleetcpu.baseline import Member, compute_baseline  # noqa: E402
from fleetcpu.explain import explain_blockers  # noqa: E402
from fleetcpu.explain.groups import group_members  # noqa: E402

MT = "pc-q35-0.0"


def naive(members: list[Member]) -> None:
    for g in group_members(members):
        hosts = set(g.hosts)
        compute_baseline("p", MT, "kvm", [m for m in members if m.host not in hosts])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 and 1,000 members, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat = "10,1000", 1
    names = real_cpus()
    print(f"{len(names)} real CPUs cycled; median of {args.repeat}; peak Python allocations")
    print(
        f"{'members':>8} {'groups':>6}  {'baseline':>16}  {'blockers, shared':>18}  "
        f"{'blockers, private':>18}  {'naive what-ifs':>14}"
    )
    ratios = []
    for size in (int(s) for s in args.sizes.split(",")):
        shared = pool(size, names)
        private = pool(size, names, private=True)
        groups = len(group_members(shared))
        base = measure(lambda m=shared: compute_baseline("p", MT, "kvm", m), args.repeat)
        ours = measure(lambda m=shared: explain_blockers("p", MT, "kvm", m), args.repeat)
        worst = measure(lambda m=private: explain_blockers("p", MT, "kvm", m), args.repeat)
        naive_t = measure(lambda m=shared: naive(m), 1)[0] if size <= 1000 else None
        slow = f"{naive_t * 1000:>11.0f} ms" if naive_t is not None else f"{'-':>14}"
        print(
            f"{size:>8} {groups:>6}  {base[0] * 1000:>7.0f} ms {base[1]:>5.1f} MiB  "
            f"{ours[0] * 1000:>7.0f} ms {ours[1]:>6.1f} MiB  "
            f"{worst[0] * 1000:>7.0f} ms {worst[1]:>6.1f} MiB  {slow}"
        )
        ratios.append(
            f"{size:>8} members: blockers / baseline x{ours[0] / base[0]:.1f}, "
            f"private / shared x{worst[0] / ours[0]:.1f}"
            + (f", naive what-ifs / blockers x{naive_t / ours[0]:.1f}" if naive_t is not None else "")
        )
    print("\nratios (against the baseline alone, measured in the same run):")
    print("\n".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
