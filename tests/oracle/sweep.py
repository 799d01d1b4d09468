"""virsh against fleetcpu on every same-vendor pair of captured hosts, not only libvirt's eight.

libvirt ships expected baselines for eight pairs; the captures hold ~40
hosts with a ``-json.xml``, so hundreds of pairs have no expected answer.
Debian's ``virsh`` can still give one. This sweep asks it for each pair
(hosts written as in ``virsh.py``) and counts, on the features virsh can
name, what virsh keeps that both hosts offer and we drop without a policy
reason, and what we keep that virsh drops. It takes ~20 s (one virsh run
per pair), so it is a tool, not part of the suite:

    python -m tests.oracle.sweep
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from dataclasses import dataclass

from fleetcpu.baseline import Member, compute_baseline

from ..support.realdata import CPU_MAP, CPUTESTDATA
from ..support.replay import members as replay
from ..support.replay.hosts import catalogue
from . import judge, virsh
from .cpu_map import GuestCpu, load


@dataclass(frozen=True)
class Host:
    name: str
    guest: GuestCpu
    member: Member
    definition: virsh.HostDefinition


def hosts() -> tuple[list[Host], list[str]]:
    """Every cputestdata host virsh can be told about, and why the others are left out."""
    new, old = load(CPU_MAP), load(virsh.SYSTEM_CPU_MAP)
    out, skipped = [], []
    for cap in catalogue():
        path = CPUTESTDATA / judge.host_file(cap.name)
        if cap.kind != "cputest" or not path.exists():
            continue
        guest = new.expand(path)
        try:
            definition = virsh.host_definition(cap.name, guest, new, old)
        except ValueError as e:
            skipped.append(f"{cap.name}: {e}")
            continue
        out.append(Host(cap.name, guest, replay.member(cap.name), definition))
    return out, skipped


def sweep() -> tuple[int, Counter[str], list[str]]:
    """(pairs asked, findings by kind and feature, hosts left out)."""
    old = load(virsh.SYSTEM_CPU_MAP)
    found: Counter[str] = Counter()
    every, skipped = hosts()
    pairs = 0
    for a, b in itertools.combinations(every, 2):
        if a.guest.vendor != b.guest.vendor:
            continue
        pairs += 1
        ours = compute_baseline("sweep", "pc-q35-replay", "kvm", [a.member, b.member])
        answer = virsh.baseline(a.definition.xml + b.definition.xml, features=True)
        if answer.error is not None:
            found[f"virsh errs: {answer.error}"] += 1
            continue
        theirs = old.to_qemu(set(answer.features))
        kept = set(ours.features)
        both = a.member.offered & b.member.offered
        policy = {blk.feature for blk in ours.blocked if blk.reason != judge.NOT_OFFERED}
        for f in sorted(theirs - kept):
            if f in both and f not in policy:
                found[f"virsh keeps, both offer, we drop without a policy reason: {f}"] += 1
        for f in sorted((kept & old.vocabulary) - theirs):
            found[f"we keep, virsh drops: {f}"] += 1
        unfaithful = [h.name for h in (a, b) if not h.definition.faithful]
        if unfaithful:
            found[f"virsh misreads {', '.join(unfaithful)}"] += 1
    return pairs, found, skipped


def main() -> int:
    if not virsh.available():
        sys.stderr.write("virsh (Debian's libvirt-clients) is not installed\n")
        return 2
    pairs, found, skipped = sweep()
    sys.stdout.write(f"virsh {virsh.version()}: {pairs} same-vendor pairs, {sum(found.values())} findings\n")
    for line in skipped:
        sys.stdout.write(f"  left out {line}\n")
    for what, count in found.most_common():
        sys.stdout.write(f"  {count:4d}  {what}\n")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
