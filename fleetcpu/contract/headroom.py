"""The headroom: what today's baseline would gain or lose over a pool's adopted CPU.

``status`` shows it per pool. Computing it needs one CPU record per distinct
CPU data among the pool's current members, and at 10,000 members spread over
a first run's parts, reading those records was half of ``status`` (0.56 s of
1.4 s). A collect run already holds every member it probed, decoded: so it
computes the headroom of each adopted pool at its end and stores it (the
``headroom`` table, a derived cache), and ``status`` takes the stored one
when the pool's current members are exactly that run's, under the same
adoption, headroom revision and fleetcpu version. In every other case (a
member collected by another run, one gone stale or failed, an import, an
older store) ``status`` computes it from the stored data, as before: the
cache can be missing, never wrong. The tests hold the two equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..baseline import Member, Policy
from ..baseline.choose import JudgingContext
from ..baseline.compute import judged_baseline
from ..baseline.member import member_from_probe, probe_vendor
from ..baseline.select import build_members
from ..errors import FleetcpuError
from ..probe.document import HostFacts, MachineProbe
from ..store import HostSnapshot, HostState, Store
from ..store.schema import HEADROOM
from ..store.snapshot import columns
from .adoption import Adoption
from .status import Headroom

__all__ = [
    "HEADROOM_REVISION",
    "HeadroomCollector",
    "compute_headroom",
    "distinct",
    "headroom_from_store",
    "members_sha256",
    "stored_headroom",
]

#: What a stored headroom means; raise it when computing it changes for the same data
#: (the members it is computed from, or how): ``status`` then computes it again.
HEADROOM_REVISION = 1


def members_sha256(hosts: Iterable[str]) -> str:
    """The identity of a set of current members: sha256 over their sorted names, one per line.

    Names suffice with the run: a member's data in one run is immutable, so
    "these hosts, all current as of run R" is exactly the data the headroom was
    computed from.
    """
    h = hashlib.sha256()
    for host in sorted(set(hosts)):
        h.update(host.encode())
        h.update(b"\n")
    return h.hexdigest()


def _usable(probe: MachineProbe | None) -> bool:
    return probe is not None and (probe.static_expansion is not None or probe.full_expansion is not None)


def compute_headroom(
    a: Adoption, members: Sequence[Member], context: JudgingContext | None = None
) -> Headroom:
    """Today's baseline of ``members`` (one per distinct CPU suffices), against ``a``."""
    if not members:
        return Headroom((), (), None, f"no member has current {a.accel} data on {a.machine_type}")
    try:
        b = judged_baseline(
            context or JudgingContext(), a.pool, a.machine_type, a.accel, members, Policy(), reasons=False
        )
    except FleetcpuError as exc:
        return Headroom((), (), None, exc.message)
    return Headroom(
        tuple(sorted(set(b.features) - a.features)), tuple(sorted(a.features - set(b.features))), b.cpu
    )


def distinct(snaps: Sequence[HostSnapshot], machine_type: str) -> list[HostSnapshot]:
    """One snapshot per distinct content the baseline's CPU depends on.

    The CPU is an intersection of offered sets, a model every member runs and a
    minimum of scalars: a repeated member changes only the reasons (who lacks
    what, how many of how many), which the headroom does not show. What a member
    is made of is its ``MachineProbe`` (the store hands hosts of one CPU digest
    the same object, so identity is the exact, cheap test), the vendor and the
    KVM nesting its facts add. 10,000 members of 144 CPUs then cost 144:
    the headroom went from 0.2 s to 0.03 s of a 10,000-host ``status``.
    """
    one: dict[tuple[int, str | None, str], HostSnapshot] = {}
    for s in snaps:
        one.setdefault((id(s.machines[machine_type]), s.facts.cpu.vendor, s.facts.kvm_nested), s)
    return list(one.values())


def _representatives(
    store: Store, a: Adoption, states: Sequence[HostState], fresh: set[str], snaps: dict[str, HostSnapshot]
) -> list[HostSnapshot]:
    """Snapshots enough for the headroom's CPU (see ``distinct``), not every member's.

    When every ``fresh`` member was read anyway, those; else one per distinct
    CPU data (the store's ``distinct_snapshots``). A probe that names no vendor
    of its own takes its host's facts', which hosts of one CPU data could
    differ in: then every such host is read (exact, and rare: QEMU names it),
    in place of that CPU's representative (a host given twice is refused by
    the baseline).
    """
    if fresh <= snaps.keys():
        return [snaps[h] for h in sorted(fresh)]
    reps = store.distinct_snapshots(sorted(fresh), a.accel)
    open_digests = {
        r.cpu_digest
        for r in reps
        if a.machine_type in r.machines and probe_vendor(r.machines[a.machine_type]) is None
    }
    if open_digests:
        more = [
            st.host
            for st in states
            if st.host in fresh and (slot := st.latest_ok(a.accel)) and slot.cpu_digest in open_digests
        ]
        every = store.snapshots(more, a.accel)
        reps = [r for r in reps if r.host not in every] + list(every.values())
    return reps


def headroom_from_store(
    store: Store,
    a: Adoption,
    states: Sequence[HostState],
    snaps: dict[str, HostSnapshot],
    fresh: set[str],
    context: JudgingContext,
) -> Headroom:
    """The headroom computed from the stored data of the ``fresh`` members."""
    usable = [
        s for s in _representatives(store, a, states, fresh, snaps) if _usable(s.machines.get(a.machine_type))
    ]
    return compute_headroom(a, build_members(distinct(usable, a.machine_type), a.machine_type), context)


def stored_headroom(
    store: Store, a: Adoption, states: Sequence[HostState], fresh: set[str], mine: set[str]
) -> Headroom | None:
    """The headroom a collect run stored for exactly these ``fresh`` members, or None.

    Taken only when every fresh member's latest run is one run R, R is among
    ``mine`` (the runs this fleetcpu version wrote, as the stored verdicts
    must be), and R stored a row for this pool, adoption and
    ``HEADROOM_REVISION`` whose members are exactly ``fresh``.
    """
    runs = {st.run for st in states if st.host in fresh}
    if len(runs) != 1 or not runs <= mine:
        return None
    key = members_sha256(fresh)
    for row in columns(store.table(HEADROOM.name, runs=runs)):
        if (
            row["pool"] == a.pool
            and row["adoption_id"] == a.adoption_id
            and row["revision"] == HEADROOM_REVISION
            and row["members"] == len(fresh)
            and row["members_sha256"] == key
        ):
            return Headroom(tuple(row["gain"]), tuple(row["lost"]), row["cpu"], row["problem"])
    return None


@dataclass
class _PoolMembers:
    """A collect run's current members of one adopted pool: every name, one probe per CPU."""

    hosts: list[str] = field(default_factory=list)
    reps: dict[tuple[int, str | None, str], Member] = field(default_factory=dict)


class HeadroomCollector:
    """Gathers, per adopted pool, the members a run judged current, for its headroom rows.

    Fed by ``ComplianceRecorder`` with what it judged from: the probe of the
    adopted machine type as the store keeps it, and the host's facts. Holds
    one ``Member`` per distinct content (``distinct``'s key), so 10,000
    members of 144 CPUs hold 144.
    """

    def __init__(self, adoptions: dict[str, Adoption]) -> None:
        self.adoptions = adoptions
        self._pools: dict[str, _PoolMembers] = {}

    def add(
        self,
        pool: str,
        host: str,
        qemu_version: str | None,
        collected_at: datetime,
        facts: HostFacts,
        probe: MachineProbe | None,
    ) -> None:
        """One member judged current (ok, under the adopted accelerator) in this run."""
        a = self.adoptions[pool]
        got = self._pools.setdefault(pool, _PoolMembers())
        got.hosts.append(host)
        if not _usable(probe):
            return
        assert probe is not None
        key = (id(probe), facts.cpu.vendor, facts.kvm_nested)
        if key not in got.reps:
            got.reps[key] = member_from_probe(host, a.accel, qemu_version, collected_at, facts, probe)

    def rows(self) -> list[dict[str, object]]:
        """One ``headroom`` row per pool with current members (``run_id`` is the writer's)."""
        out: list[dict[str, object]] = []
        context = JudgingContext()
        for pool in sorted(self._pools):
            got = self._pools[pool]
            a = self.adoptions[pool]
            h = compute_headroom(a, list(got.reps.values()), context)
            out.append(
                {
                    "pool": pool,
                    "adoption_id": a.adoption_id,
                    "revision": HEADROOM_REVISION,
                    "members_sha256": members_sha256(got.hosts),
                    "members": len(set(got.hosts)),
                    "gain": list(h.gain),
                    "lost": list(h.lost),
                    "cpu": h.cpu,
                    "problem": h.problem,
                }
            )
        return out
