"""``fleetcpu blockers``: why the pool's CPU is what it is, and what each group of hosts costs it.

Pure: members in, ``Blockers`` out. Three answers:

* every feature some member offers that the result lacks, with its reason
  and the hosts causing it (``Baseline.blocked``, computed by the core);
* every model the pool does not get, with each reason and the hosts it
  applies to (``Baseline.models``: unusable there with its unavailable
  features, absent from that QEMU, a ``-feat`` that QEMU cannot name, or a
  naming rule such as alias/superseded that no host removal changes);
* per group of identical members (``groups``): the pool recomputed without
  that group, by ``compute_baseline`` itself, and what it gains: features,
  scalars, the model then chosen and models newly usable everywhere.

Sorted so the cheapest big win is on top: by gain per host removed, where
gain = features gained + scalars raised + 1 if the named model changes;
then fewer hosts, more features, the label. A group whose removal gains
nothing goes last. Only single groups are removed, never combinations:
combinations grow exponentially and the per-feature host lists already say
which hosts must go together for a feature.

Speed: the what-ifs run on one representative per group (see ``groups``),
so a 10,000-host pool of a few CPU types costs one full baseline plus a few
tiny ones (``benchmarks/explain_bench.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from ..baseline.choose import JudgingContext, Subpool
from ..baseline.compute import judged_baseline
from ..baseline.types import Baseline, Member, Missing, Notice, Policy, Scalars
from .answers import Blockers, ModelBlocked, ScalarChange, WhatIf
from .groups import group_members

__all__ = ["blocked_models", "explain_blockers", "scalar_changes", "signature"]


def signature(s: Scalars) -> tuple[int, int, int] | None:
    if s.family is None or s.model is None or s.stepping is None:
        return None
    return (s.family, s.model, s.stepping)


def scalar_changes(before: Scalars, after: Scalars, *, raised: bool) -> tuple[ScalarChange, ...]:
    """Scalars that went up (``raised``) or down between two results; unknown ones never count.

    The signature (family/model/stepping) compares as one triple, the way the
    core chooses it (the oldest member's real signature).
    """
    out = []
    sig_b, sig_a = signature(before), signature(after)
    if sig_b is not None and sig_a is not None and (sig_a > sig_b if raised else sig_a < sig_b):
        out.append(ScalarChange("signature", "/".join(map(str, sig_b)), "/".join(map(str, sig_a))))
    for name in ("level", "xlevel", "phys_bits"):
        b, a = getattr(before, name), getattr(after, name)
        if b is not None and a is not None and (a > b if raised else a < b):
            out.append(ScalarChange(name, b, a))
    return tuple(out)


def blocked_models(b: Baseline) -> tuple[ModelBlocked, ...]:
    """Every non-candidate model; those some hosts block (and others not) first, fewest hosts first.

    Block host lists are sorted already and often name every member (alias,
    superseded, unusable everywhere): those are taken as they are, so 10,000
    hosts times a hundred models are not re-sorted.
    """
    everyone = tuple(sorted(h.host for h in b.hosts))
    out = []
    # The core shares one host tuple among the blocks of equal host sets, so many models
    # are blocked on the same tuples ("absent" on one QEMU, "unusable" on another): each
    # combination is merged once.
    seen: dict[tuple[int, ...], tuple[str, ...]] = {}
    for v in b.models:
        if v.candidate:
            continue
        if any(len(blk.hosts) == len(everyone) for blk in v.blocks):
            hosts = everyone
        elif len(v.blocks) == 1:
            hosts = v.blocks[0].hosts
        else:
            key = tuple(sorted(id(blk.hosts) for blk in v.blocks))
            found = seen.get(key)
            if found is None:
                # Each block's hosts are sorted: merging the runs is far cheaper than sorting
                # a set of 100,000 names; a model's blocks are disjoint, dedupe anyway.
                merged = sorted(chain.from_iterable(blk.hosts for blk in v.blocks))
                found = seen[key] = tuple(dict.fromkeys(merged))
            hosts = found
        out.append(ModelBlocked(v.model, v.blocks, hosts, 0 < len(hosts) < len(everyone)))
    return tuple(sorted(out, key=lambda m: (not m.by_some_hosts, len(m.hosts), m.model)))


def _what_if(label: str, hosts: tuple[str, ...], base: Baseline, without: Baseline) -> WhatIf:
    features = tuple(sorted(set(without.features) - set(base.features)))
    scalars = scalar_changes(base.scalars, without.scalars, raised=True)
    before_ok = {v.model for v in base.models if v.candidate}
    new_models = tuple(sorted(v.model for v in without.models if v.candidate and v.model not in before_ok))
    gain = len(features) + len(scalars) + int(without.model != base.model)
    return WhatIf(label, hosts, features, base.model, without.model, new_models, scalars, gain / len(hosts))


def explain_blockers(
    pool: str,
    machine_type: str,
    accel: str,
    members: Sequence[Member],
    policy: Policy | None = None,
    *,
    missing: Sequence[Missing] = (),
    notices: Sequence[Notice] = (),
) -> Blockers:
    """The pool's blockers and per-group what-ifs; raises like ``compute_baseline``."""
    context = JudgingContext()  # the what-ifs judge the same models tuples over and over
    full = judged_baseline(
        context, pool, machine_type, accel, members, policy, missing=missing, notices=notices
    )
    groups = group_members(members)
    reps = [g.member for g in groups]
    base = judged_baseline(context, pool, machine_type, accel, reps, policy, reasons=False)
    judged = context.last
    assert judged is not None
    # The representatives' pool is the full pool's answer (see groups): a difference is a bug.
    assert (base.features, base.model, base.enable, base.disable, base.scalars) == (
        full.features,
        full.model,
        full.enable,
        full.disable,
        full.scalars,
    )
    ranked = []
    if len(groups) > 1:
        for i, g in enumerate(groups):
            without = judged_baseline(
                context,
                pool,
                machine_type,
                accel,
                reps[:i] + reps[i + 1 :],
                policy,
                reasons=False,
                sub=Subpool(judged, frozenset({g.member.host})),
            )
            w = _what_if(g.label, g.hosts, base, without)
            ranked.append(((-w.score, len(w.hosts), -len(w.features), i), w))
    ranked.sort(key=lambda kw: kw[0])
    return Blockers(full, full.blocked, blocked_models(full), tuple(w for _, w in ranked))
