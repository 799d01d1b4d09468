"""A pool's status against its adopted CPU: members by state, headroom, and its JSON. Pure.

Headroom is what today's baseline (the same machine type, accelerator and
default policy, over the members' current data) would add over the adopted
CPU ("re-adopt to gain ...") and what it has lost: the first says a
deliberate raise is possible, the second that members drifted below the
contract. Both are computed, never applied: only ``adopt`` moves a contract.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..probe.abi_level import level_of
from ..vocabulary import rfc3339
from .adoption import Adoption
from .states import COMPLIANT, NON_COMPLIANT, STATES, Compliance, counts_against

__all__ = ["SCHEMA", "Headroom", "PoolStatus", "status_json", "status_table", "status_text"]

SCHEMA = "fleetcpu.status/1"


@dataclass(frozen=True)
class Headroom:
    gain: tuple[str, ...]
    lost: tuple[str, ...]
    #: Today's baseline's named string; None when it could not be computed.
    cpu: str | None
    #: Why it could not be computed (no usable data, ...), else None.
    problem: str | None = None


@dataclass(frozen=True)
class PoolStatus:
    pool: str
    adoption: Adoption | None
    members: tuple[Compliance, ...]
    headroom: Headroom | None
    #: The latest successful probe of any member: when the pool was last collected.
    last_collect: datetime | None
    #: Members whose QEMU lists the adopted machine type as deprecated (sorted): QEMU
    #: removes a deprecated machine type in a later release, and then no guest pinned to
    #: it starts there. A warning, not a state: today they still run it.
    deprecated_on: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for m in self.members:
            out[m.state] += 1
        return out

    def offending(self, strict: bool) -> list[Compliance]:
        return [m for m in self.members if counts_against(m.state, strict)]


def _hosts(hosts: Sequence[str], limit: int = 8) -> str:
    return ", ".join(hosts[:limit]) + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")


def _age(seconds: float) -> str:
    """``3d 4h``, ``5h 12m``, ``40s``: the adoption's age, to the useful precision."""
    s = max(0, int(seconds))
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            return f"{s // size}{unit} {s % size // subsize}{sub}"
    return f"{s // 60}m" if s >= 60 else f"{s}s"


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return _rfc3339(moment)


@functools.lru_cache(maxsize=4096)
def _rfc3339(moment: datetime) -> str:
    """Memoised: 100,000 members share a few run times, and ``strftime`` was a second."""
    return rfc3339(moment)


def _adopted_json(a: Adoption | None, now: datetime) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "id": a.adoption_id,
        "adopted_at": _time(a.adopted_at),
        "age_seconds": max(0, int((now - a.adopted_at).total_seconds())),
        "adopted_by": a.adopted_by,
        "note": a.note,
        "source": a.source,
        "model": a.model,
        "cpu": a.cpu,
        "custom": a.custom,
        "machine_type": a.machine_type,
        "accel": a.accel,
        "feature_count": len(a.features),
        "features": sorted(a.features),
        "abi_level": level_of(a.features),
        "required": list(a.required),
    }


def _member_json(m: Compliance) -> dict[str, Any]:
    return {
        "host": m.host,
        "state": m.state,
        "reason": m.reason,
        "lacking": list(m.lacking),
        "extra": list(m.extra),
        "detail": m.detail or None,
        "collected_at": _time(m.collected_at),
        "last_compliant_at": _time(m.last_compliant_at),
    }


def status_json(statuses: Sequence[PoolStatus], now: datetime) -> dict[str, Any]:
    pools = []
    for s in statuses:
        h = s.headroom
        pools.append(
            {
                "pool": s.pool,
                "adopted": _adopted_json(s.adoption, now),
                "counts": s.counts(),
                "members": [_member_json(m) for m in s.members],
                "headroom": None
                if h is None
                else {
                    "gain": list(h.gain),
                    "lost": list(h.lost),
                    "baseline_cpu": h.cpu,
                    "problem": h.problem,
                },
                "last_successful_collect": _time(s.last_collect),
                "machine_type_deprecated_on": list(s.deprecated_on),
            }
        )
    return {"schema": SCHEMA, "generated_at": _time(now), "pools": pools}


def status_text(doc: dict[str, Any]) -> str:
    """``fleetcpu.status/1`` as text: indented like ``json.dumps(indent=2)``, except that
    each member is one compact line.

    Why: with ``indent`` the standard library encodes in pure Python; 99,000 member
    objects took 6 of a 100,000-host ``status --format json``'s seconds. Each member
    line goes through the C encoder instead, and a member per line reads (and greps)
    better than nine. Any JSON parser reads the same document.
    """

    def block(obj: dict[str, Any], pad: str) -> str:
        inner = pad + "    "
        items = []
        for key, value in obj.items():
            if key in ("pools", "members") and isinstance(value, list) and value:
                parts = (block(v, inner) if key == "pools" else json.dumps(v) for v in value)
                text = "[\n" + ",\n".join(inner + p for p in parts) + "\n" + pad + "  ]"
            else:
                text = json.dumps(value, indent=2).replace("\n", "\n" + pad + "  ")
            items.append(f"{pad}  {json.dumps(key)}: {text}")
        return "{\n" + ",\n".join(items) + "\n" + pad + "}" if items else "{}"

    return block(doc, "") + "\n"


def _notes(s: PoolStatus, a: Adoption) -> list[str]:
    """The adoption's requirement, and the machine-type lifecycle warning."""
    out = []
    if a.required:
        out.append(f"  required: {', '.join(a.required)}")
    if s.deprecated_on:
        out.append(
            f"  warning: machine type {a.machine_type} is deprecated on the QEMU of "
            f"{len(s.deprecated_on)} member(s): {_hosts(s.deprecated_on)}; QEMU removes "
            "deprecated machine types, and guests pinned to one then no longer start "
            "there: plan a new adoption on a newer machine type"
        )
    return out


def status_table(statuses: Sequence[PoolStatus], now: datetime) -> str:
    lines = []
    for s in statuses:
        a = s.adoption
        if a is None:
            lines.append(
                f"pool {s.pool}: no adopted CPU (fleetcpu adopt --pool {s.pool}), "
                f"{len(s.members)} member(s) not judged"
            )
            lines.append("")
            continue
        lines.append(
            f"pool {s.pool}: adopted {a.adoption_id} ({_age((now - a.adopted_at).total_seconds())} "
            f"ago, by {a.adopted_by}): {a.model}, {len(a.features)} features, "
            f"{level_of(a.features) or 'below x86-64-v1'}, {a.machine_type} ({a.accel})"
        )
        counts = s.counts()
        lines.append(
            "  members: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n)
            if s.members
            else "  members: none"
        )
        lines.extend(_notes(s, a))
        for m in s.members:
            if m.state == NON_COMPLIANT:
                what = ", ".join(m.lacking) or m.detail
                lines.append(f"  {m.host}: non-compliant ({m.reason}): {what}")
            elif m.state != COMPLIANT:
                lines.append(f"  {m.host}: {m.state}: {m.detail}")
        h = s.headroom
        if h is not None:
            if h.problem:
                lines.append(f"  headroom: unknown ({h.problem})")
            else:
                if h.gain:
                    lines.append(f"  headroom: re-adopt to gain {', '.join(h.gain)}")
                if h.lost:
                    lines.append(f"  today's baseline has lost: {', '.join(h.lost)}")
                if not h.gain and not h.lost:
                    lines.append("  headroom: none (today's baseline equals the adopted CPU)")
        lines.append("")
    return "\n".join(lines)
