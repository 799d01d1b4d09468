"""The I/O shell: which stored data of which hosts the pool's baseline is computed from.

Members are the hosts whose *latest* record names the pool (a host moved to
another pool leaves this one at its next run). Each contributes its latest
successful probe made with the pool's accelerator: a TCG probe says what
QEMU can emulate, not what a KVM guest gets, so it never stands in for KVM
data (and KVM data never for TCG). A member whose data cannot be used is
reported in ``missing`` with a stable code, never silently dropped:

* ``stale``: its latest good data is older than ``--max-age``;
* ``probed-under-tcg`` (``probed-under-kvm`` for a TCG pool): it only has
  data from the other accelerator;
* ``no-successful-probe``: it never produced CPU data.

A member whose latest run failed, or fell back to the other accelerator,
but whose good data is recent enough is used, with a warning naming the
failure and the age of the data used: one flaky SSH session should not
shrink a pool's answer, but nobody should be surprised either.

``classify`` is pure (index records in, decisions out); ``select_members``
reads the store and builds the ``Member`` records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import NoUsableDataError
from ..probe.document import MachineProbe
from ..speed import paused_gc
from ..store import HostSnapshot, HostState, Store
from ..vocabulary import Accel
from .machine import choose_machine_type
from .member import member_from_probe, vendor
from .types import Member, Missing, Notice

DEFAULT_MAX_AGE = timedelta(days=7)
ACCELS = Accel.values()


@dataclass(frozen=True)
class Classified:
    """Which members' data is used (their index records), which are missing, what to warn about."""

    usable: tuple[HostState, ...]
    missing: tuple[Missing, ...]
    notices: tuple[Notice, ...]


@dataclass(frozen=True)
class Selection:
    """Everything the pure core needs for one pool, plus what the selection itself found."""

    pool: str
    accel: str
    machine_type: str
    members: tuple[Member, ...]
    missing: tuple[Missing, ...]
    notices: tuple[Notice, ...]
    #: Every machine type the usable members were probed with, and on how many of them
    #: (commonest first): the choices ``--machine-type`` has, for reports.
    probed: tuple[tuple[str, int], ...] = ()


def age_text(age: timedelta) -> str:
    """``3d 4h``, ``5h 12m``, ``40s``: ages in messages, to the useful precision."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _failure(state: HostState) -> str:
    stage = state.stage or "unknown stage"
    return f"failed at {stage}: {state.error or state.error_code or 'no message'}"


def classify(states: Sequence[HostState], accel: str, max_age: timedelta, now: datetime) -> Classified:
    """Decide, per member, from its index record alone: use its data, or report it missing."""
    if accel not in ACCELS:
        raise ValueError(f"accel must be one of {', '.join(ACCELS)}, not {accel!r}")
    other = Accel.TCG if accel == Accel.KVM else Accel.KVM
    usable: list[HostState] = []
    missing: list[Missing] = []
    notices: list[Notice] = []
    for state in sorted(states, key=lambda s: s.host):
        slot = state.latest_ok(accel)
        if slot is None:
            alt = state.latest_ok(other)
            if alt is not None:
                why = (
                    "TCG shows what QEMU emulates, not what KVM guests get"
                    if accel == Accel.KVM
                    else "KVM data says nothing about what TCG emulates"
                )
                missing.append(
                    Missing(
                        state.host,
                        f"probed-under-{other}",
                        f"only {other} data (latest {_when(alt.collected_at)}), no successful {accel} "
                        f"probe: {why}",
                    )
                )
            else:
                latest = "" if state.ok else f"; latest run {_failure(state)}"
                missing.append(
                    Missing(state.host, "no-successful-probe", f"no successful probe is stored{latest}")
                )
            continue
        age = now - slot.collected_at
        if age > max_age:
            missing.append(
                Missing(
                    state.host,
                    "stale",
                    f"latest successful {accel} probe is {age_text(age)} old ({_when(slot.collected_at)}),"
                    f" older than --max-age {age_text(max_age)}",
                )
            )
            continue
        usable.append(state)
        if slot.run == state.run:
            continue
        if not state.ok:
            notices.append(
                Notice(
                    "latest-run-failed",
                    f"{state.host}: latest run ({_when(state.collected_at)}) {_failure(state)}; using "
                    f"its {accel} data of {_when(slot.collected_at)} ({age_text(age)} old)",
                    hosts=(state.host,),
                )
            )
        elif state.accel != accel:
            notices.append(
                Notice(
                    "latest-run-other-accel",
                    f"{state.host}: latest run ({_when(state.collected_at)}) ran under "
                    f"{state.accel}, not {accel}; using its {accel} data of "
                    f"{_when(slot.collected_at)} ({age_text(age)} old)",
                    hosts=(state.host,),
                )
            )
    return Classified(tuple(usable), tuple(missing), tuple(notices))


def _missing_text(missing: Sequence[Missing]) -> str:
    return "; ".join(f"{m.host} ({m.code}: {m.message})" for m in missing[:5]) + (
        f"; and {len(missing) - 5} more" if len(missing) > 5 else ""
    )


def _declared(usable: Sequence[HostState]) -> tuple[str, ...]:
    """The pool's machine types as declared by the newest inventory any member was collected with."""
    declaring = [s for s in usable if s.declared_machine_types]
    if not declaring:
        return ()
    return max(declaring, key=lambda s: (s.collected_at, s.run)).declared_machine_types


def build_members(snapshots: Sequence[HostSnapshot], machine_type: str) -> tuple[Member, ...]:
    """One ``Member`` per snapshot for ``machine_type``; hosts sharing records share members' sets.

    The store hands hosts of one CPU digest the same frozen ``MachineProbe``,
    so its reduction (offered set, vocabulary, scalars) is computed once and
    the members share it: the core's dedupe is then free.
    """
    shared: dict[int, Member] = {}
    out = []
    for snap in snapshots:
        probe: MachineProbe = snap.machines[machine_type]
        proto = shared.get(id(probe))
        if proto is None:
            proto = shared[id(probe)] = member_from_probe(
                snap.host, snap.accel, snap.qemu_version, snap.collected_at, snap.facts, probe
            )
        # Built directly: dataclasses.replace inspects the fields on every call, a
        # second of CPU at 100,000 members.
        out.append(
            Member(
                host=snap.host,
                accel=snap.accel,
                qemu_version=snap.qemu_version,
                collected_at=snap.collected_at,
                vendor=vendor(probe, snap.facts),
                microcode=snap.facts.cpu.microcode,
                kvm_nested=snap.facts.kvm_nested,
                models=proto.models,
                offered=proto.offered,
                vocabulary=proto.vocabulary,
                scalars=proto.scalars,
                feature_words=proto.feature_words,
            )
        )
    return tuple(out)


def select_members(
    store: Store,
    pool: str,
    *,
    accel: str = Accel.KVM,
    machine_type: str | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
    strict: bool = False,
    now: datetime | None = None,
) -> Selection:
    """Read the pool's members from the store. Raises UnknownPoolError (20),
    NoUsableDataError (21: no usable member, or any missing with ``strict``),
    NoCommonMachineTypeError (22)."""
    with paused_gc():  # fleetcpu.speed: ~0.1 s of CPU on 10,000 hosts
        return _select(store, pool, accel, machine_type, max_age, strict, now or datetime.now(UTC))


def _select(
    store: Store,
    pool: str,
    accel: str,
    machine_type: str | None,
    max_age: timedelta,
    strict: bool,
    now: datetime,
) -> Selection:
    """``select_members``, run with the collector paused."""
    states = store.latest(pool)  # UnknownPoolError when no host names the pool
    found = classify(states, accel, max_age, now)
    snapshots = store.snapshots([s.host for s in found.usable], accel)
    missing = list(found.missing)
    usable = []
    for state in found.usable:
        if state.host in snapshots:
            usable.append(state)
        else:
            missing.append(
                Missing(
                    state.host, "no-successful-probe", f"no CPU data stored for its successful {accel} run"
                )
            )
    if not usable:
        raise NoUsableDataError(
            f"pool {pool!r}: no member has usable {accel} data"
            + (f": {_missing_text(missing)}" if missing else "")
        )
    probed = {s.host: {mt: mp.requested for mt, mp in snapshots[s.host].machines.items()} for s in usable}
    chosen, machine_notices = choose_machine_type(probed, explicit=machine_type, declared=_declared(usable))
    with_cpu = []
    for state in usable:
        probe = snapshots[state.host].machines[chosen]
        if probe.static_expansion is None and probe.full_expansion is None:
            # A launch that answered no host expansion says nothing a guest could be offered;
            # counting it as "offers nothing" would silently empty the pool's CPU.
            failed = "; ".join(f"{e.query}: {e.message}" for e in probe.errors[:2])
            missing.append(
                Missing(
                    state.host,
                    "no-successful-probe",
                    f"its {accel} probe of {chosen} recorded no host CPU expansion"
                    + (f" ({failed})" if failed else ""),
                )
            )
        else:
            with_cpu.append(state)
    missing.sort(key=lambda m: m.host)
    if strict and missing:
        raise NoUsableDataError(
            f"pool {pool!r}: --strict and {len(missing)} member(s) missing: {_missing_text(missing)}"
        )
    if not with_cpu:
        raise NoUsableDataError(
            f"pool {pool!r}: no member has usable {accel} data on {chosen}: {_missing_text(missing)}"
        )
    members = build_members([snapshots[s.host] for s in with_cpu], chosen)
    counts: dict[str, int] = {}
    for types in probed.values():
        for mt in types:
            counts[mt] = counts.get(mt, 0) + 1
    return Selection(
        pool=pool,
        accel=accel,
        machine_type=chosen,
        members=members,
        missing=tuple(missing),
        notices=(*found.notices, *machine_notices),
        probed=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


__all__ = [
    "ACCELS",
    "DEFAULT_MAX_AGE",
    "Classified",
    "Selection",
    "age_text",
    "build_members",
    "classify",
    "select_members",
]
