"""``fleetcpu check``: can a host join the pool without lowering its CPU? Pure.

"Lowering", precisely: let P be the pool's members *other than* the host
(the whole pool for a newcomer; for a host already a member, the pool
without it, so the question becomes "does this host hold the pool back?").
The host lowers the pool when ``compute_baseline(P + host)`` differs from
``compute_baseline(P)`` in any of:

* a feature removed (adding a member never adds one);
* the named model changed (the old string may not even start on the host:
  its QEMU may lack the model or find it unusable), reported with the
  reason the old model no longer qualifies;
* the same features and model with other explicit ``+``/``-`` changes (the
  host's QEMU defines the model differently, so the old string would give
  its guests another CPU);
* a scalar dropped: level, xlevel, phys-bits, or the family/model/stepping
  signature (the oldest member's);
* a vendor other than the pool's (the core refuses mixed vendors);
* and, decided by the caller, a QEMU lacking the pool's machine type.

Warnings the host would add (a security feature it lacks, differing TSX
microcode) do not refuse it: they are reported as ``new_warnings``.
Equal results mean both ``-cpu`` strings are unchanged: nothing running in
the pool sees a difference.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..baseline.choose import JudgingContext
from ..baseline.compute import judged_baseline
from ..baseline.types import Baseline, Member, Missing, Policy
from ..errors import MixedVendorsError
from .answers import Change, CheckResult
from .blockers import scalar_changes

__all__ = ["changes_between", "check_join", "refused"]

_LABELS = {"phys_bits": "phys-bits", "signature": "family/model/stepping"}


def _feature_reason(after: Baseline, feature: str, host: str) -> str:
    for blk in after.blocked:
        if blk.feature == feature:
            if blk.reason == "not-offered":
                return f"{feature}: {host} does not offer it"
            return f"{feature}: {blk.message}"
    return f"{feature}: not in the result with {host}"


def _model_reason(before: Baseline, after: Baseline, host: str) -> str:
    verdict = next((v for v in after.models if v.model == before.model), None)
    head = f"the named model changes from {before.model} to {after.model}"
    if verdict is None:
        return f"{head} ({before.model} is not listed by any member with {host})"
    if verdict.candidate:
        return f"{head} ({after.model} now needs fewer explicit changes)"
    mine = [b for b in verdict.blocks if host in b.hosts] or list(verdict.blocks)
    return f"{head} ({before.model} on {host}: " + "; ".join(f"{b.reason}, {b.detail}" for b in mine) + ")"


def changes_between(before: Baseline, after: Baseline, host: str) -> tuple[Change, ...]:
    """Every way ``after`` (the pool with ``host``) is lower than ``before`` (without it)."""
    out = [
        Change("feature-removed", _feature_reason(after, f, host), feature=f)
        for f in sorted(set(before.features) - set(after.features))
    ]
    if after.model != before.model:
        out.append(
            Change(
                "model-changed", _model_reason(before, after, host), before=before.model, after=after.model
            )
        )
    elif not out and (after.enable, after.disable) != (before.enable, before.disable):
        # Same features, same model, other +/-: the host's QEMU defines the model otherwise.
        # (With features removed the string changes anyway; that is not reported twice.)
        old, new = before.cpu.split(","), after.cpu.split(",")
        dropped = [t for t in old if t not in new]
        added = [t for t in new if t not in old]
        out.append(
            Change(
                "spelling-changed",
                f"{before.model} needs other explicit changes with {host} (its QEMU defines "
                f"{before.model} differently): the named string loses {' '.join(dropped) or 'nothing'}"
                f" and gains {' '.join(added) or 'nothing'}",
                before=before.cpu,
                after=after.cpu,
            )
        )
    for sc in scalar_changes(before.scalars, after.scalars, raised=False):
        label = _LABELS.get(sc.scalar, sc.scalar)
        out.append(
            Change(
                "scalar-dropped",
                f"{label} drops from {sc.before} to {sc.after}",
                feature=label,
                before=sc.before,
                after=sc.after,
            )
        )
    return tuple(out)


def _new_warnings(before: Baseline | None, after: Baseline) -> tuple[str, ...]:
    seen = {(w.code, w.feature) for w in before.warnings} if before else set()
    return tuple(f"{w.code}: {w.message}" for w in after.warnings if (w.code, w.feature) not in seen)


def refused(
    pool: str,
    machine_type: str,
    accel: str,
    host: str,
    source: str,
    member: bool,
    change: Change,
    missing: Sequence[Missing] = (),
) -> CheckResult:
    """A refusal decided before any computation (no machine type, other vendor)."""
    return CheckResult(
        pool, machine_type, accel, host, source, member, False, None, None, (change,), missing=tuple(missing)
    )


def check_join(
    pool: str,
    machine_type: str,
    accel: str,
    members: Sequence[Member],
    candidate: Member,
    policy: Policy | None = None,
    *,
    source: str,
    missing: Sequence[Missing] = (),
) -> CheckResult:
    """Compare the pool without ``candidate.host`` to the pool with ``candidate``."""
    others = [m for m in members if m.host != candidate.host]
    member = len(others) != len(members)
    context = JudgingContext()  # both pools are made of the same records but one
    before = judged_baseline(context, pool, machine_type, accel, others, policy) if others else None
    try:
        after = judged_baseline(context, pool, machine_type, accel, [*others, candidate], policy)
    except MixedVendorsError as exc:
        vendor = before.vendor if before else None
        return refused(
            pool,
            machine_type,
            accel,
            candidate.host,
            source,
            member,
            Change(
                "vendor-differs",
                f"{candidate.host} reports vendor {candidate.vendor}, the pool {vendor} ({exc.message})",
                before=vendor,
                after=candidate.vendor,
            ),
            missing,
        )
    changes = changes_between(before, after, candidate.host) if before else ()
    return CheckResult(
        pool,
        machine_type,
        accel,
        candidate.host,
        source,
        member,
        not changes,
        before,
        after,
        changes,
        _new_warnings(before, after),
        tuple(missing),
    )
