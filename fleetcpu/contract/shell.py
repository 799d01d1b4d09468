"""The contract's I/O shell: adoptions in and out of the store, verdicts per run, pool status.

Everything here reads or writes; the rule itself (``judge``), the states,
the records and the renderings are pure and live beside it. Why verdicts
are written inside the collect or import run rather than after it: they
commit with the data they judge, so a stored run never lacks its verdicts
and a crashed run leaves neither.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__
from ..baseline import Policy, compute_baseline
from ..baseline.choose import JudgingContext
from ..baseline.require import meet
from ..baseline.select import age_text, select_members
from ..errors import NonCompliantError, RequirementUnmetError, UsageError
from ..outcome import HostOutcome
from ..probe.abi_level import Requirement, level_of
from ..probe.document import HostFacts
from ..speed import paused_gc
from ..store import HostSnapshot, HostState, Store
from ..store.atomic import write_bytes
from ..store.outcome_rows import unique_machines
from ..store.schema import ADOPTIONS, COMPLIANCE, RUNS
from ..store.snapshot import columns
from ..vocabulary import Accel
from .adoption import Adoption, change_lines, from_baseline, from_row, lowers, to_row
from .cpu_string import CpuString, parse_cpu
from .headroom import HeadroomCollector, headroom_from_store, stored_headroom
from .judge import COMPLIANT, RULE_REVISION, UNDECIDED, HostCpu, Judge
from .states import (
    FAILED,
    NON_COMPLIANT,
    STALE,
    TCG_ONLY,
    Compliance,
    carry,
    changes_since,
    counts_against,
    from_verdict,
)
from .states import from_row as compliance_from_row
from .states import to_row as compliance_row
from .status import PoolStatus

__all__ = [
    "ComplianceRecorder",
    "Plan",
    "adopted",
    "host_cpu",
    "offending_message",
    "plan_adoption",
    "pool_statuses",
    "record_adoption",
    "summary_lines",
    "write_textfile",
]


def adopted(store: Store) -> dict[str, Adoption]:
    """Each pool's current adoption: its latest row (the table is append-only)."""
    runs = store.runs_with(ADOPTIONS.name)
    if not runs:
        return {}
    out: dict[str, Adoption] = {}
    for row in sorted(
        store.table(ADOPTIONS.name, runs=runs).to_pylist(), key=lambda r: str(r["adoption_id"])
    ):
        out[str(row["pool"])] = from_row(row)
    return out


def host_cpu(snap: HostSnapshot) -> HostCpu:
    """A stored host, as the rule reads it. Its QEMU's machine list is what proves an
    adopted machine type gone (an empty or unrecorded list proves nothing, as at collect)."""
    return HostCpu(snap.host, snap.accel, snap.machines, snap.qemu_machines or None, snap.facts.cpu.vendor)


# --------------------------------------------------------------------------- adopt
@dataclass(frozen=True)
class Plan:
    adoption: Adoption
    previous: Adoption | None
    lines: tuple[str, ...]
    #: The members judged at adoption (stored with it: the start of "since when").
    verdicts: tuple[Compliance, ...] = ()

    @property
    def lowers(self) -> bool:
        return lowers(self.previous, self.adoption)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _expected(cpu: CpuString, machine_type: str, snaps: Sequence[HostSnapshot]) -> frozenset[str] | None:
    """The features ``cpu`` gives a guest, from the first member whose QEMU recorded the model."""
    if cpu.custom:
        return cpu.enabled
    for snap in sorted(snaps, key=lambda s: s.host):
        probe = snap.machines.get(machine_type)
        if probe is None:
            continue
        by_name = {m.name: m for m in probe.models}
        entry = by_name.get(cpu.model)
        if entry is None:
            continue
        own = entry.features
        if own is None and entry.alias_of is not None and entry.alias_of in by_name:
            own = by_name[entry.alias_of].features
        if own is not None:
            return (frozenset(own) - cpu.disabled) | cpu.enabled
    return None


def plan_adoption(
    store: Store,
    pool: str,
    *,
    cpu: str | None,
    machine_type: str | None,
    accel: str,
    note: str | None,
    max_age: timedelta,
    now: datetime | None = None,
    require: Requirement | None = None,
) -> Plan:
    """What ``adopt`` would record, and the change from the previous adoption.

    Default: today's baseline. ``cpu``: the operator's string, accepted only when every
    member with usable data provably starts it with the same features (else exit 26,
    naming each member and why); a malformed string is exit 2. ``require``: the CPU must
    hold those features (else exit 27, nothing recorded); the adopted feature set then
    holds them, so a member that loses one later is judged non-compliant (26) like any loss.
    """
    require = require or Requirement()
    now = now or datetime.now(UTC)
    parsed = parse_cpu(cpu) if cpu is not None else None
    if parsed is not None and parsed.model in ("host", "max"):
        raise UsageError(
            f"--cpu {cpu}: host-passthrough gives each host its own CPU; it cannot be a pool's contract"
        )
    chosen = select_members(store, pool, accel=accel, machine_type=machine_type, max_age=max_age, now=now)
    slots = {s.host: s.latest_ok(accel) for s in store.latest(pool)}
    hosts = tuple(sorted(m.host for m in chosen.members))
    runs = tuple(sorted({slot.run for h in hosts if (slot := slots.get(h)) is not None}))
    previous = adopted(store).get(pool)
    if parsed is None:
        b = compute_baseline(
            pool,
            chosen.machine_type,
            accel,
            chosen.members,
            Policy(),
            missing=chosen.missing,
            notices=chosen.notices,
        )
        meet(b, chosen.members, require)
        adoption = from_baseline(
            b,
            adoption_id="",
            adopted_at=now,
            adopted_by=_who(),
            note=note,
            runs=runs,
            previous=previous.adoption_id if previous else None,
        )
    else:
        found = list(store.snapshots(hosts, accel).values())
        expected = _expected(parsed, chosen.machine_type, found)
        if expected is None:
            raise NonCompliantError(
                f"--cpu {cpu}: no member's QEMU recorded what {parsed.model} holds on "
                f"{chosen.machine_type}, so the features it gives cannot be known; not adopted"
            )
        short = sorted(require.features - expected)
        if short:
            raise RequirementUnmetError(
                f"--cpu {cpu} does not meet --require {require.text()}: it gives the guest "
                f"{level_of(expected) or 'below x86-64-v1'}, without "
                + ", ".join(f"{n} ({require.why[n]})" if require.why[n] != n else n for n in short)
                + "; add them to the string (every member must offer them) or adopt the baseline; "
                "nothing stored"
            )
        rule = Judge(parsed, chosen.machine_type, accel, expected)
        refused = [(s.host, v) for s in found if (v := rule(host_cpu(s))).state != COMPLIANT]
        if refused:
            shown = "; ".join(f"{h}: {v.state}, {v.detail}" for h, v in refused[:10])
            more = f"; and {len(refused) - 10} more" if len(refused) > 10 else ""
            raise NonCompliantError(
                f"--cpu {cpu}: {len(refused)} of {len(found)} member(s) "
                f"cannot be shown to start it on {chosen.machine_type}: "
                f"{shown}{more}; not adopted"
            )
        vendor = parsed.prop("vendor")
        adoption = Adoption(
            "",
            now,
            _who(),
            pool,
            chosen.machine_type,
            accel,
            "operator",
            parsed.text,
            parsed.model,
            expected,
            hosts,
            runs,
            vendor=vendor,
            note=note,
            previous=previous.adoption_id if previous else None,
        )
    if require:
        adoption = dataclasses.replace(adoption, required=require.asked)
    snaps = store.snapshots(hosts, accel)
    rule = Judge(parse_cpu(adoption.cpu), adoption.machine_type, accel, adoption.features)
    verdicts = []
    for host in hosts:
        snap = snaps.get(host)
        if snap is None:
            continue
        make = functools.partial(
            Compliance,
            host=host,
            pool=pool,
            adoption_id="",
            machine_type=adoption.machine_type,
            collected_at=snap.collected_at,
            run_id=snap.run,
            microcode=snap.facts.cpu.microcode,
            kernel_release=snap.facts.kernel_release,
            qemu_version=snap.qemu_version,
        )
        verdicts.append(carry(None, from_verdict(rule(host_cpu(snap)), make)))
    lines = change_lines(previous, adoption)
    if chosen.missing:
        lines.append(
            f"{len(chosen.missing)} member(s) without usable data were not consulted: "
            + ", ".join(m.host for m in chosen.missing[:10])
        )
    return Plan(adoption, previous, tuple(lines), tuple(verdicts))


def record_adoption(store: Store, plan: Plan) -> Adoption:
    """Append the adoption as a run of its own (command ``adopt``); its id is the run's."""
    with store.run_writer(command="adopt", started_at=plan.adoption.adopted_at) as writer:
        adoption = dataclasses.replace(plan.adoption, adoption_id=writer.run_id)
        writer.add_rows(ADOPTIONS, [to_row(adoption)])
        writer.add_rows(
            COMPLIANCE,
            [compliance_row(dataclasses.replace(c, adoption_id=writer.run_id)) for c in plan.verdicts],
        )
    return adoption


# --------------------------------------------------------------------------- every run
class ComplianceRecorder:
    """Judges each outcome of a collect or import run against its pool's adoption.

    Built once per command: it reads the adoptions and each member's previous
    verdict (from the runs the index names as hosts' latest: one file in an
    hourly collect), so a run's cost per host is one memoised judgement.
    """

    def __init__(self, adoptions: dict[str, Adoption], previous: dict[str, Compliance]) -> None:
        self.adoptions = adoptions
        self.previous = previous
        self.judged: list[Compliance] = []
        #: The current members per adopted pool, for the run's ``headroom`` rows (collect's).
        self.headroom = HeadroomCollector(adoptions)
        self._rules = {
            pool: Judge(parse_cpu(a.cpu), a.machine_type, a.accel, a.features)
            for pool, a in adoptions.items()
        }

    @classmethod
    def load(cls, store: Store) -> ComplianceRecorder:
        adoptions = adopted(store)
        if not adoptions:
            return cls({}, {})
        # Each host's latest verdict: in its latest run, or in its pool's adopt run.
        runs = {s.run for s in store.latest() if s.pool in adoptions}
        runs |= {a.adoption_id for a in adoptions.values()}
        previous: dict[str, Compliance] = {}
        if runs:
            table = store.table(COMPLIANCE.name, runs=runs)
            for row in sorted(table.to_pylist(), key=lambda r: str(r["run_id"])):
                previous[str(row["host"])] = compliance_from_row(row)
        return cls(adoptions, previous)

    @property
    def active(self) -> bool:
        return bool(self.adoptions)

    def judge(self, outcome: HostOutcome, run_id: str) -> Compliance | None:
        """The verdict for this outcome (None: its pool has no adopted CPU)."""
        a = self.adoptions.get(outcome.pool)
        if a is None:
            return None
        doc = outcome.document
        facts = doc.host if doc is not None else None
        make = _maker(
            a,
            outcome.host,
            outcome.pool,
            outcome.collected_at,
            run_id,
            facts,
            doc.qemu.version if doc is not None and doc.qemu else None,
        )
        if not outcome.ok or doc is None:
            stage = outcome.failure_stage or "unknown stage"
            error = outcome.error or (doc.error if doc is not None else None) or "no message"
            now = make(state=FAILED, detail=f"latest run failed at {stage}: {error}")
        elif doc.accel != a.accel:
            now = make(
                state=TCG_ONLY,
                detail=f"its probe ran under {doc.accel}, not "
                f"{a.accel}" + (f" ({doc.accel_reason})" if doc.accel_reason else ""),
            )
        else:
            # What the store keeps, so that judging the stored data again gives this verdict
            # (status takes it): the first probe per machine type, whatever its accelerator
            # (the rule says "undecided" for one probed under another).
            machines = {mp.machine_type: mp for mp in unique_machines(doc.machine_types)}
            listed = doc.qemu.machines if doc.qemu is not None and doc.qemu.machines else None
            verdict = self._rules[outcome.pool](
                HostCpu(outcome.host, a.accel, machines, listed, doc.host.cpu.vendor)
            )
            now = from_verdict(verdict, make)
            self.headroom.add(
                outcome.pool,
                outcome.host,
                doc.qemu.version if doc.qemu else None,
                outcome.collected_at,
                doc.host,
                machines.get(a.machine_type),
            )
        now = carry(self.previous.get(outcome.host), now)
        self.previous[outcome.host] = now
        self.judged.append(now)
        return now

    def rows(self, outcome: HostOutcome, run_id: str) -> list[dict[str, object]]:
        c = self.judge(outcome, run_id)
        return [] if c is None else [compliance_row(c)]

    def headroom_rows(self) -> list[dict[str, object]]:
        """The run's ``headroom`` rows: for the end of a whole collect run (not an
        interrupted one, whose members are a chance subset; not an import, one host
        per run), so ``status`` can take them (``contract.headroom``)."""
        return self.headroom.rows()


def _maker(
    a: Adoption,
    host: str,
    pool: str,
    collected_at: datetime,
    run_id: str,
    facts: HostFacts | None,
    qemu_version: str | None,
) -> Callable[..., Compliance]:
    """A member's ``Compliance`` with everything but the verdict filled in: collect's and
    status's verdicts carry the same context, so it is spelt once."""
    return functools.partial(
        Compliance,
        host=host,
        pool=pool,
        adoption_id=a.adoption_id,
        machine_type=a.machine_type,
        collected_at=collected_at,
        run_id=run_id,
        microcode=facts.cpu.microcode if facts is not None else None,
        kernel_release=facts.kernel_release if facts is not None else None,
        qemu_version=qemu_version,
    )


def summary_lines(judged: Iterable[Compliance], limit: int = 20) -> list[str]:
    """The collect/import summary's compliance part: counts per pool, then who fails and why."""
    by_pool: dict[str, list[Compliance]] = {}
    for c in judged:
        by_pool.setdefault(c.pool, []).append(c)
    out = []
    for pool in sorted(by_pool):
        members = by_pool[pool]
        counts: dict[str, int] = {}
        for c in members:
            counts[c.state] = counts.get(c.state, 0) + 1
        out.append(
            f"compliance: pool {pool} (adopted {members[0].adoption_id}): "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        )
        bad = [c for c in members if c.state == NON_COMPLIANT]
        for c in bad[:limit]:
            what = ", ".join(c.lacking) if c.lacking else c.detail
            since = (
                f"compliant until run {c.last_compliant_run}"
                if c.last_compliant_run
                else "never compliant in the store"
            )
            changed = changes_since(c)
            out.append(
                f"  non-compliant: {c.host}: {c.reason}: {what}; {since}"
                + (f"; since then: {', '.join(changed)}" if changed else "")
            )
        if len(bad) > limit:
            out.append(f"  ... and {len(bad) - limit} more non-compliant host(s)")
    return out


def offending_message(judged: Iterable[Compliance], strict: bool) -> str | None:
    """The exit-26 line of a collect or import run, None when no verdict counts against it.

    Only ``non-compliant`` counts, unless ``strict`` (then every state but ``compliant``:
    failed, tcg-only, undecided; a run's fresh data is never stale). The line is the one
    it always was without ``strict``; with it, each host says its state.
    """
    latest: dict[str, Compliance] = {}
    for c in judged:
        latest[c.host] = c  # an import of several files about one host: its last verdict
    bad = [c for _h, c in sorted(latest.items()) if counts_against(c.state, strict)]
    if not bad:
        return None
    if strict:
        shown = ", ".join(f"{c.host} ({c.state})" for c in bad[:10])
        what = "cannot be shown to run their pool's adopted CPU"
    else:
        shown = ", ".join(c.host for c in bad[:10])
        what = "cannot run their pool's adopted CPU"
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    return f"{len(bad)} host(s) {what}: {shown}{more}"


# --------------------------------------------------------------------------- status
def _judge_states(
    rule: Judge,
    a: Adoption,
    states: Sequence[HostState],
    snaps: dict[str, HostSnapshot],
    stored: dict[str, Compliance],
    max_age: timedelta,
    now: datetime,
) -> list[Compliance]:
    out = []
    for st in states:
        snap = snaps.get(st.host)
        slot = st.latest_ok(a.accel)
        current = slot is not None and st.ok and st.accel == a.accel and now - slot.collected_at <= max_age
        if current and st.host in stored:
            out.append(stored[st.host])
            continue
        if current and snap is not None:
            # The common case, 99% of a large pool: built directly, not through a
            # ``functools.partial`` per member (a second at 100,000 members).
            v = rule(host_cpu(snap))
            out.append(
                Compliance(
                    host=st.host,
                    pool=st.pool,
                    state=v.state,
                    adoption_id=a.adoption_id,
                    machine_type=a.machine_type,
                    collected_at=st.collected_at,
                    reason=v.reason,
                    lacking=v.lacking,
                    extra=v.extra,
                    detail=v.detail,
                    microcode=snap.facts.cpu.microcode,
                    kernel_release=snap.facts.kernel_release,
                    qemu_version=snap.qemu_version,
                    run_id=st.run,
                )
            )
            continue
        facts = snap.facts if snap is not None else None
        make = _maker(
            a,
            st.host,
            st.pool,
            st.collected_at,
            st.run,
            facts,
            snap.qemu_version if snap else st.qemu_version,
        )
        if not st.ok:
            older = (
                f"; its {a.accel} data of {slot.collected_at:%Y-%m-%dT%H:%MZ} is not judged as current"
                if slot is not None
                else "; no successful probe is stored"
            )
            out.append(
                make(
                    state=FAILED,
                    detail=f"latest run failed at "
                    f"{st.stage or 'unknown stage'}: {st.error or st.error_code}" + older,
                )
            )
        elif st.accel != a.accel or slot is None:
            out.append(make(state=TCG_ONLY, detail=f"its latest probe ran under {st.accel}, not {a.accel}"))
        elif now - slot.collected_at > max_age:
            out.append(
                make(
                    state=STALE,
                    detail=f"its latest data is "
                    f"{age_text(now - slot.collected_at)} old, older than "
                    f"--max-age {age_text(max_age)}",
                )
            )
        elif snap is None:
            out.append(make(state=UNDECIDED, detail="no CPU data stored for its successful run"))
        else:
            out.append(from_verdict(rule(host_cpu(snap)), make))
    return out


#: The verdicts a status may take from the store as they are: the rule's own answers.
_RULE_STATES = frozenset({COMPLIANT, NON_COMPLIANT, UNDECIDED})

_VERDICT_COLUMNS = (
    "run_id",
    "host",
    "collected_at",
    "adoption_id",
    "state",
    "reason",
    "lacking",
    "extra",
    "detail",
    "microcode",
    "kernel_release",
    "qemu_version",
    "rule",
)


def _runs_of_this_version(store: Store, runs: set[str]) -> set[str]:
    """Those of ``runs`` this fleetcpu version wrote: a stored verdict or headroom is taken
    only from these (belt and braces: a release may change what collect hands the rule)."""
    if not runs:
        return set()
    info = store.table(RUNS.name, columns=["run_id", "fleetcpu_version"], runs=runs)
    return {
        str(run)
        for run, version in zip(info["run_id"].to_pylist(), info["fleetcpu_version"].to_pylist(), strict=True)
        if version == __version__
    }


def _stored_verdicts(
    store: Store, a: Adoption, judgeable: Sequence[HostState], mine: set[str]
) -> dict[str, Compliance]:
    """Each member's verdict as its latest run stored it, where judging again must give it.

    Every collect and import judges each member against the adopted CPU and
    stores the verdict with the data (``ComplianceRecorder``). The rule is a
    function of that data and the adoption, so a verdict stored by the run
    that is still the member's latest, against this very adoption, by this
    rule (``RULE_REVISION``, stored with the verdict) and this fleetcpu
    version (belt and braces: a release may change what collect hands the
    rule), with CPU data stored, is what judging the stored data again gives.
    Taking it spares reading 10,000 members' records: most of ``status``'s
    time. A member without such a verdict (adopted since its run, another
    rule or version, a verdict from before compliance v2, two verdicts in one
    run, failed or stale) is judged from its data as before.
    """
    latest = {st.host: st for st in judgeable if (slot := st.latest_ok(a.accel)) and slot.detail_run}
    runs = {st.run for st in latest.values()} & mine
    if not runs:
        return {}
    table = store.table(COMPLIANCE.name, columns=_VERDICT_COLUMNS, runs=runs)
    table = table.filter(pc.equal(table["adoption_id"], pa.scalar(a.adoption_id, pa.string())))
    out: dict[str, Compliance] = {}
    twice: set[str] = set()
    for row in columns(table):
        st = latest.get(row["host"])
        if (
            st is None
            or row["run_id"] != st.run
            or row["collected_at"] != st.collected_at
            or row["state"] not in _RULE_STATES
            or row["rule"] != RULE_REVISION
        ):
            continue
        if st.host in out:
            twice.add(st.host)  # an import of several documents of one host: judge its data
            continue
        # As the judging below builds it: the history fields (``carry``) are collect's, not status's.
        out[st.host] = Compliance(
            host=st.host,
            pool=st.pool,
            state=row["state"],
            adoption_id=a.adoption_id,
            machine_type=a.machine_type,
            collected_at=st.collected_at,
            reason=row["reason"],
            lacking=tuple(row["lacking"] or ()),
            extra=tuple(row["extra"] or ()),
            detail=row["detail"] or "",
            microcode=row["microcode"],
            kernel_release=row["kernel_release"],
            qemu_version=row["qemu_version"],
            run_id=st.run,
        )
    for host in twice:
        del out[host]
    return out


def _deprecated_on(store: Store, a: Adoption, judgeable: Sequence[HostState]) -> tuple[str, ...]:
    """The members whose QEMU (at their latest successful run) lists the adopted machine type
    as deprecated. A list not recorded, or without the type, says nothing here: a type gone
    is the rule's ``machine-type-missing``."""
    lists = store.machine_lists([st.host for st in judgeable], a.accel)
    return tuple(
        sorted(
            host
            for host, listed in lists.items()
            if listed and any(m.name == a.machine_type and m.deprecated for m in listed)
        )
    )


def pool_statuses(
    store: Store, pool: str | None, *, max_age: timedelta, now: datetime | None = None
) -> list[PoolStatus]:
    """Every pool's status (or ``pool``'s: unknown is UnknownPoolError, exit 20).

    With the cyclic collector paused, as ``baseline`` does: judging 100,000 members builds
    half a million acyclic records, which the collector would scan again and again.
    """
    with paused_gc():
        return _pool_statuses(store, pool, max_age, now or datetime.now(UTC))


def _pool_statuses(
    store: Store, pool: str | None, max_age: timedelta, now: datetime, *, reuse: bool = True
) -> list[PoolStatus]:
    """``reuse=False`` judges every member from its data (the tests hold the two equal)."""
    adoptions = adopted(store)
    states = store.latest(pool) if pool is not None or not adoptions else store.latest()
    by_pool: dict[str, list[HostState]] = {}
    for st in states:
        by_pool.setdefault(st.pool, []).append(st)
    out = []
    context = JudgingContext()  # one per command; a later pool reuses what it holds of the same records
    for name in sorted(by_pool):
        members = by_pool[name]
        a = adoptions.get(name)
        oks = [
            slot.collected_at for st in members for acc in Accel if (slot := st.latest_ok(acc)) is not None
        ]
        last = max(oks) if oks else None
        if a is None:
            out.append(PoolStatus(name, None, (), None, last))
            continue
        rule = Judge(parse_cpu(a.cpu), a.machine_type, a.accel, a.features)
        judgeable = [st for st in members if st.ok and st.accel == a.accel]
        # Only current members' verdicts are taken: a stale one is judged ``stale`` from
        # its snapshot (its facts), which taking its verdict would leave unread.
        current = [
            st for st in judgeable if (slot := st.latest_ok(a.accel)) and now - slot.collected_at <= max_age
        ]
        mine = _runs_of_this_version(store, {st.run for st in current}) if reuse else set()
        stored = _stored_verdicts(store, a, current, mine) if reuse else {}
        snaps = store.snapshots([st.host for st in judgeable if st.host not in stored], a.accel)
        judged = _judge_states(rule, a, members, snaps, stored, max_age, now)
        fresh = {c.host for c in judged if c.state not in (FAILED, STALE, TCG_ONLY)}
        headroom = stored_headroom(store, a, members, fresh, mine) if reuse else None
        if headroom is None:
            headroom = headroom_from_store(store, a, members, snaps, fresh, context)
        out.append(
            PoolStatus(
                name, a, tuple(judged), headroom, last, deprecated_on=_deprecated_on(store, a, judgeable)
            )
        )
    return out


def write_textfile(path: Path, text: str) -> None:
    """Write the .prom file atomically (hidden temporary, fsync, rename): node_exporter's
    textfile collector never reads a half-written file, and ignores the ``.tmp``."""
    try:
        write_bytes(path, text.encode())
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
