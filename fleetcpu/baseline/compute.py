"""The pool baseline: members in, one ``Baseline`` out. Pure: no I/O, no clock, no store.

The rule that makes the answer safe is the first one: a feature is in the
result only if *every* member offers it. Policy then removes more (never
adds): non-migratable features, nested virtualisation unless asked for and
available everywhere, and on request KVM paravirtual features or TSX. KVM
paravirtual features need no rule of their own to be safe: they depend on
each host's kernel, and the intersection already keeps only those every
member's KVM offers.

Scalars are chosen so the guest runs everywhere: the vendor must agree
(else ``MixedVendorsError``, exit 23); level, xlevel and phys-bits are the
minimum over members; family/model/stepping are the *lexicographically
smallest triple*, i.e. the oldest member's real signature. Why not the
newest: guests key errata workarounds and model-specific MSR use on the
signature, and must not assume a microarchitecture some host lacks. Why not
the per-field minimum: (6, 85, 4) and (6, 63, 2) would give (6, 63, 2) but
(6, 85, 0) and (6, 0, 7) would give an invented (6, 0, 0); the smallest
triple is always a CPU some member really is.

Result order never depends on member order: members are sorted by host
first, and every list in the output is sorted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import MixedVendorsError, NoUsableDataError
from ..probe.abi_level import level_of
from ..probe.features import KVM_PV, NON_MIGRATABLE, SECURITY, TSX, is_nested
from ..vocabulary import Accel, KvmNested
from . import cpuarg
from .choose import FALLBACK_MODEL, JudgingContext, Subpool, best, judge
from .types import (
    Baseline,
    FeatureBlock,
    HostRef,
    Member,
    Missing,
    Notice,
    Policy,
    Scalars,
)

__all__ = ["NAMED_HOSTS", "compute_baseline", "host_list", "judged_baseline", "pool_scalars", "pool_vendor"]

#: How many hosts a message names before it says "and N more" (``hosts`` lists them all).
NAMED_HOSTS = 8


def host_list(hosts: Sequence[str], limit: int = NAMED_HOSTS) -> str:
    """``a, b, c`` or ``a, b, ... and 40 more``: messages stay one readable line."""
    if len(hosts) <= limit:
        return ", ".join(hosts)
    return ", ".join(hosts[:limit]) + f" and {len(hosts) - limit} more"


def _check_members(members: Sequence[Member], accel: str) -> list[Member]:
    seen: set[str] = set()
    for m in members:
        if m.host in seen:
            raise ValueError(f"host {m.host!r} given twice")
        seen.add(m.host)
        if m.accel != accel:
            raise ValueError(f"host {m.host!r} has {m.accel} data, the pool asks {accel}")
    return sorted(members, key=lambda m: m.host)


def pool_vendor(members: Sequence[Member]) -> tuple[str | None, list[Notice]]:
    """The one CPUID vendor of the pool; two known vendors is ``MixedVendorsError``."""
    by_vendor: dict[str, list[str]] = {}
    unknown: list[str] = []
    for m in members:
        if m.vendor:
            by_vendor.setdefault(m.vendor, []).append(m.host)
        else:
            unknown.append(m.host)
    if len(by_vendor) > 1:
        listing = "; ".join(f"{vendor}: {host_list(hosts)}" for vendor, hosts in sorted(by_vendor.items()))
        raise MixedVendorsError(
            f"the pool mixes CPU vendors ({listing}): a guest cannot live-migrate between "
            "vendors; split the pool by vendor"
        )
    notices = []
    if unknown:
        notices.append(
            Notice(
                "vendor-unknown",
                f"no CPU vendor recorded for {host_list(unknown)}: the custom string "
                + ("uses the other members' vendor" if by_vendor else "sets no vendor"),
                hosts=tuple(unknown),
            )
        )
    return (next(iter(by_vendor)) if by_vendor else None), notices


def pool_scalars(members: Sequence[Member]) -> tuple[Scalars, list[Notice]]:
    """Smallest family/model/stepping triple; minimum level, xlevel and phys-bits."""
    notices = []
    triples = []
    lacking = []
    for m in members:
        s = m.scalars
        if s.family is None or s.model is None or s.stepping is None:
            lacking.append(m.host)
        else:
            triples.append((s.family, s.model, s.stepping))
    if lacking:
        notices.append(_unknown_scalar("family/model/stepping", lacking, bool(triples)))
    family, model, stepping = min(triples) if triples else (None, None, None)

    def minimum(key: str, label: str) -> int | None:
        known = [(getattr(m.scalars, key), m.host) for m in members]
        values = [v for v, _ in known if v is not None]
        missing = [h for v, h in known if v is None]
        if missing:
            notices.append(_unknown_scalar(label, missing, bool(values)))
        return min(values) if values else None

    return Scalars(
        family=family,
        model=model,
        stepping=stepping,
        level=minimum("level", "level"),
        xlevel=minimum("xlevel", "xlevel"),
        phys_bits=minimum("phys_bits", "phys-bits"),
    ), notices


def _unknown_scalar(label: str, hosts: list[str], others: bool) -> Notice:
    then = (
        "taken from the other members, so it may exceed these hosts' own"
        if others
        else "left out of the custom string (QEMU chooses it)"
    )
    return Notice(
        "scalar-unknown", f"{label} not recorded for {host_list(hosts)}: {then}", hosts=tuple(hosts)
    )


def _offered_groups(members: Sequence[Member]) -> dict[frozenset[str], list[str]]:
    """Distinct offered sets -> their hosts (a frozenset caches its hash: cheap at 10,000)."""
    groups: dict[frozenset[str], list[str]] = {}
    for m in members:
        groups.setdefault(m.offered, []).append(m.host)
    return groups


def _kind(feature: str) -> str:
    if feature in KVM_PV:
        return "KVM paravirtual feature (depends on the host kernel's KVM, not the CPU)"
    if feature in SECURITY:
        return "security feature"
    if is_nested(feature):
        return "nested virtualisation feature"
    return "feature"


class _Policy:
    """Applies a ``Policy`` to the intersection, keeping every removal as a ``FeatureBlock``."""

    def __init__(self, common: frozenset[str], accel: str) -> None:
        self.result = set(common)
        self.accel = accel
        self.blocks: list[FeatureBlock] = []
        self.notices: list[Notice] = []

    def drop(self, names: Iterable[str], reason: str, message: str, hosts: tuple[str, ...] = ()) -> None:
        for name in sorted(set(names) & self.result):
            self.result.discard(name)
            self.blocks.append(FeatureBlock(name, reason, hosts, message))

    def apply(self, policy: Policy, members: Sequence[Member]) -> None:
        if not policy.non_migratable:
            self.drop(
                NON_MIGRATABLE,
                "non-migratable",
                "QEMU refuses to migrate a guest that has it (--allow-non-migratable keeps it)",
            )
        nested = [f for f in self.result if is_nested(f)]
        if not policy.nested:
            self.drop(nested, "nested-policy", "nested virtualisation is off unless asked for (--nested)")
        elif nested and self.accel == Accel.KVM:
            # Under TCG, VMX/SVM are QEMU's emulation: the KVM module's nesting is irrelevant.
            off = tuple(m.host for m in members if m.kvm_nested != KvmNested.TRUE)
            if off:
                message = (
                    f"--nested asked, but {host_list(off)} do not report KVM nesting "
                    "enabled (kvm_intel/kvm_amd nested=1): nesting features dropped"
                )
                self.drop(nested, "nested-off", message, off)
                self.notices.append(Notice("nested-unavailable", message, hosts=off))
        if not policy.kvm_pv:
            self.drop(KVM_PV, "kvm-pv-policy", "KVM paravirtual features dropped (--no-kvm-pv)")
        if not policy.tsx:
            self.drop(TSX, "tsx-policy", "TSX dropped (--no-tsx)")


def _microcode_notices(result: set[str], members: Sequence[Member]) -> list[Notice]:
    """hle/rtm in the result while microcode differs: an update can take them away silently."""
    kept = sorted(result & TSX)
    by_code: dict[str, list[str]] = {}
    for m in members:
        by_code.setdefault(m.microcode or "unknown", []).append(m.host)
    if not kept or len(by_code) < 2:
        return []
    listing = "; ".join(f"{code}: {host_list(hosts, 4)}" for code, hosts in sorted(by_code.items()))
    hosts = tuple(m.host for m in members)
    return [
        Notice(
            "tsx-microcode-differs",
            f"{name} is offered by every member but their microcode differs ({listing}): "
            "microcode and kernel updates remove TSX without a hardware change; re-collect "
            "after updates, or drop it with --no-tsx",
            feature=name,
            hosts=hosts,
        )
        for name in kept
    ]


def _lacking(
    groups: dict[frozenset[str], list[str]], union: frozenset[str], common: frozenset[str]
) -> dict[str, list[str]]:
    """Feature -> hosts lacking it, for every feature some but not all members offer.

    Each group's hosts are sorted (members are); features lacking on the same
    groups (a CPU generation's whole AVX-512 family) share one merged list.
    """
    lists = list(groups.values())
    by_feature: dict[str, list[int]] = {}
    for i, offered in enumerate(groups):
        for name in union - offered:
            by_feature.setdefault(name, []).append(i)
    assert set(by_feature) == set(union - common)
    merged: dict[tuple[int, ...], list[str]] = {}
    out = {}
    for name, where in by_feature.items():
        key = tuple(where)
        hosts = merged.get(key)
        if hosts is None:
            hosts = merged[key] = (
                lists[where[0]] if len(where) == 1 else sorted(h for i in where for h in lists[i])
            )
        out[name] = hosts
    return out


def compute_baseline(
    pool: str,
    machine_type: str,
    accel: str,
    members: Sequence[Member],
    policy: Policy | None = None,
    *,
    missing: Sequence[Missing] = (),
    notices: Sequence[Notice] = (),
) -> Baseline:
    """The richest CPU every member runs on ``machine_type``, spelt two ways, with its reasons.

    ``missing`` and ``notices`` come from the data selection and are passed
    through; the core adds its own notices after them.
    Raises ``MixedVendorsError`` (23) and ``NoUsableDataError`` (21, no member).
    """
    return judged_baseline(
        JudgingContext(), pool, machine_type, accel, members, policy, missing=missing, notices=notices
    )


def judged_baseline(
    context: JudgingContext,
    pool: str,
    machine_type: str,
    accel: str,
    members: Sequence[Member],
    policy: Policy | None = None,
    *,
    missing: Sequence[Missing] = (),
    notices: Sequence[Notice] = (),
    reasons: bool = True,
    sub: Subpool | None = None,
) -> Baseline:
    """``compute_baseline`` judging in ``context``: the internal entry for commands judging many pools.

    Why apart from ``compute_baseline``: the context is a cache, and a
    cache in the pure core's public call makes every caller think about
    it. Only the commands that judge many pools of one set of records
    (``explain``'s what-ifs and checks) make a ``JudgingContext`` once and
    come here; it never changes the result, and neither does ``sub`` (these
    members are a judged pool without some hosts, see ``Subpool``), which
    lets the judging reuse that pool's verdicts (``context.last`` is the
    latest judgement). ``reasons=False`` leaves out what only explains the
    result (the hosts lacking each feature, the notices; with ``sub``, also
    the verdicts of models that are no candidates, so ``models`` holds the
    candidates alone): for callers that compare results only, as the
    what-ifs do.
    """
    assert sub is None or not reasons, "a Subpool judgement holds candidates only: reasons=False"
    policy = policy or Policy()
    if not members:
        raise NoUsableDataError(f"pool {pool!r}: no member with usable {accel} data on {machine_type}")
    ordered = _check_members(members, accel)
    vendor, vendor_notices = pool_vendor(ordered)

    groups = _offered_groups(ordered)
    common = frozenset.intersection(*groups)
    rules = _Policy(common, accel)
    rules.apply(policy, ordered)
    result = frozenset(rules.result)

    blocked = list(rules.blocks)
    own: list[Notice] = [*vendor_notices, *rules.notices, *_microcode_notices(rules.result, ordered)]
    microcode = {m.host: m.microcode or "unknown" for m in ordered}
    total = len(ordered)
    # The union only serves the reasons: the what-ifs (reasons=False) skip it.
    lacking = _lacking(groups, frozenset.union(*groups), common) if reasons else {}
    for name, hosts in sorted(lacking.items()):
        blocked.append(
            FeatureBlock(
                name,
                "not-offered",
                tuple(hosts),
                f"{_kind(name)} not offered by {len(hosts)} of {total} members: {host_list(hosts)}",
            )
        )
        if name in SECURITY:
            # host_list of every host with its microcode, building only the named ones.
            with_code = ", ".join(f"{h} (microcode {microcode[h]})" for h in hosts[:NAMED_HOSTS])
            if len(hosts) > NAMED_HOSTS:
                with_code += f" and {len(hosts) - NAMED_HOSTS} more"
            own.append(
                Notice(
                    "security-feature-mixed",
                    f"{name} is offered by {total - len(hosts)} of {total} members, so the guest does "
                    f"not get it; lacking on {with_code} (a microcode or kernel update "
                    "there may add it)",
                    feature=name,
                    hosts=tuple(hosts),
                )
            )

    scalars, scalar_notices = pool_scalars(ordered)
    own.extend(scalar_notices)
    verdicts = judge(ordered, result, context, sub).verdicts
    chosen = best(verdicts)
    custom = cpuarg.custom(vendor, scalars, result)
    enable: tuple[str, ...]
    disable: tuple[str, ...]
    if chosen is None:
        model, enable, disable = FALLBACK_MODEL, tuple(sorted(result)), ()
        cpu = custom  # base without scalars would be a worse custom string
        own.append(
            Notice(
                "no-common-model",
                "no named CPU model is usable, migration-safe and recorded on every member: "
                "both strings start from base with every feature explicit",
            )
        )
    else:
        model, enable, disable = chosen.model, chosen.enable, chosen.disable
        cpu = cpuarg.named(model, vendor, enable, disable, scalars.phys_bits)
        if chosen.resolves_on:
            own.append(
                Notice(
                    "model-resolves-per-machine-type",
                    f"no model name is stable on every member's QEMU; {model} is an alias or "
                    f"unversioned name on {host_list(chosen.resolves_on)}, resolved for "
                    f"{machine_type} only: keep the machine type pinned",
                    hosts=chosen.resolves_on,
                )
            )

    return Baseline(
        pool=pool,
        machine_type=machine_type,
        accel=accel,
        vendor=vendor,
        model=model,
        enable=enable,
        disable=disable,
        features=tuple(sorted(result)),
        scalars=scalars,
        cpu=cpu,
        custom=custom,
        hosts=tuple(HostRef(m.host, m.accel, m.qemu_version, m.collected_at) for m in ordered),
        missing=tuple(sorted(missing, key=lambda x: (x.host, x.code))),
        warnings=(*notices, *sorted(own, key=lambda n: (n.code, n.feature or ""))),
        blocked=tuple(sorted(blocked, key=lambda b: (b.feature, b.reason))),
        models=verdicts,
        # Members of one batch share one vocabulary object: union the distinct ones.
        vocabulary=frozenset().union(*{id(m.vocabulary): m.vocabulary for m in ordered}.values()),
        abi_level=level_of(result),
    )
