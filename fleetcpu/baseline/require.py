"""``--require``: does the pool's CPU hold every required feature, and if not, what would. Pure.

Why an error and not a smaller answer: an operator who requires
``x86-64-v3`` runs guests (RHEL 10) that do not boot without it, so a
baseline without it is no answer at all, and storing it as a contract would
be worse. The error says what to do instead: the required features the pool
lacks, the members lacking each, and the cheapest way to meet the
requirement. That way is always the same set of hosts: a feature is in the
pool's CPU only if every member offers it, so the requirement is met exactly
when every member lacking some required feature is left out, and no
smaller set will do. A required feature every member offers but a policy
flag removes (``--no-tsx`` and ``hle``) is said to be the policy's.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import RequirementUnmetError
from ..probe.abi_level import Requirement, level_of
from .compute import host_list
from .types import Baseline, Member

__all__ = ["leave_out", "meet", "unmet_message"]


def leave_out(members: Sequence[Member], requirement: Requirement) -> tuple[str, ...]:
    """The fewest hosts whose removal meets ``requirement``: every member lacking a required feature."""
    needed = requirement.features
    return tuple(sorted(m.host for m in members if not needed <= m.offered))


def _level(offered: frozenset[str]) -> str:
    return level_of(offered) or "below x86-64-v1"


def unmet_message(b: Baseline, members: Sequence[Member], requirement: Requirement) -> str | None:
    """One line saying why ``b`` does not meet ``requirement`` and what would; None if it does."""
    lacking = sorted(requirement.features - set(b.features))
    if not lacking:
        return None
    total = len(members)
    # One entry per (hosts lacking, item asking): "avx2, fma (x86-64-v3) lacking on ...".
    groups: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for name in lacking:
        hosts = tuple(sorted(m.host for m in members if name not in m.offered))
        groups.setdefault((hosts, requirement.why[name]), []).append(name)
    parts = []
    policy = []
    for (hosts, asked), names in sorted(groups.items(), key=lambda kv: kv[1][0]):
        what = f"{', '.join(names)} ({'required' if asked in names else asked})"
        if hosts:
            parts.append(f"{what} lacking on {len(hosts)} of {total}: {host_list(hosts)}")
        else:
            why = next((f.message for f in b.blocked if f.feature in names and f.reason != "not-offered"), "")
            policy.append(f"{what} offered by every member but removed by policy ({why})")
    out = parts + policy
    drop = leave_out(members, requirement)
    level = {m.host: _level(m.offered) for m in members if m.host in drop}
    if not drop:
        fix = "no host needs leaving out: change the policy flags"
    elif len(drop) == total:
        fix = "no member offers every required feature, so no part of this pool meets it"
    else:
        fix = (
            f"cheapest fix: leave out {len(drop)} of {total} member(s), every one lacking a required "
            "feature (no smaller set will do): "
            + host_list([f"{h} ({level[h]})" for h in drop])
            + ("; the policy must change too" if policy else "")
        )
    return (
        f"pool {b.pool!r} cannot meet --require {requirement.text()} (its CPU is "
        f"{b.abi_level or 'below x86-64-v1'} on {b.machine_type}): {'; '.join(out)}; {fix}; nothing stored"
    )


def meet(b: Baseline, members: Sequence[Member], requirement: Requirement) -> None:
    """Raise ``RequirementUnmetError`` (27) unless ``b`` holds every feature ``requirement`` asks."""
    message = unmet_message(b, members, requirement)
    if message is not None:
        raise RequirementUnmetError(message)
