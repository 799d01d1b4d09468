"""The adopted CPU: a record, its ``adoptions`` row, and the change from the previous one. Pure.

Why a recorded CPU rather than today's baseline: the baseline follows the
data, so a host losing TSX to a microcode update silently lowers it, and
every guest started with yesterday's CPU can no longer move to that host.
An adoption fixes the CPU (both strings, the exact feature set, the
scalars, the machine type and accelerator) and who decided it when; every
collect then judges members against it, and only a new adoption moves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..baseline.types import Baseline, Scalars

__all__ = ["SOURCES", "Adoption", "change_lines", "from_baseline", "from_row", "lowers", "to_row"]

SOURCES = ("baseline", "operator")


@dataclass(frozen=True)
class Adoption:
    adoption_id: str
    adopted_at: datetime
    adopted_by: str
    pool: str
    machine_type: str
    accel: str
    source: str
    cpu: str
    model: str
    features: frozenset[str]
    members: tuple[str, ...]
    member_runs: tuple[str, ...]
    custom: str | None = None
    vendor: str | None = None
    scalars: Scalars = field(default_factory=Scalars)
    note: str | None = None
    previous: str | None = None
    #: What ``--require`` asked at adoption (``x86-64-v3``, ``md-clear``): ``features`` holds it all.
    required: tuple[str, ...] = ()


def from_baseline(
    b: Baseline,
    *,
    adoption_id: str,
    adopted_at: datetime,
    adopted_by: str,
    note: str | None,
    runs: tuple[str, ...],
    previous: str | None,
) -> Adoption:
    """Today's baseline as the contract: its named string is what members are judged on."""
    return Adoption(
        adoption_id,
        adopted_at,
        adopted_by,
        b.pool,
        b.machine_type,
        b.accel,
        "baseline",
        b.cpu,
        b.model,
        frozenset(b.features),
        tuple(h.host for h in b.hosts),
        runs,
        custom=b.custom,
        vendor=b.vendor,
        scalars=b.scalars,
        note=note,
        previous=previous,
    )


def lowers(previous: Adoption | None, new: Adoption) -> bool:
    """True when ``new`` takes away a feature ``previous`` gave."""
    return previous is not None and bool(previous.features - new.features)


def change_lines(previous: Adoption | None, new: Adoption) -> list[str]:
    """What an operator confirms: the change, in words; lowering said for what it is."""
    if previous is None:
        return [
            f"first adoption for pool {new.pool}: {new.model}, {len(new.features)} features, "
            f"{new.machine_type} ({new.accel})"
        ]
    out = []
    added = sorted(new.features - previous.features)
    removed = sorted(previous.features - new.features)
    if new.model != previous.model:
        out.append(f"model: {previous.model} -> {new.model}")
    if new.machine_type != previous.machine_type or new.accel != previous.accel:
        out.append(
            f"machine type: {previous.machine_type} ({previous.accel}) -> {new.machine_type} ({new.accel})"
        )
    if added:
        out.append(f"adds {len(added)} feature(s): {', '.join(added)}")
    if removed:
        out.append(f"removes {len(removed)} feature(s): {', '.join(removed)}")
        out.append(
            "this LOWERS the pool's CPU: guests started earlier keep their CPU until "
            "their next cold boot, and can then only move to hosts that still offer it"
        )
    if new.cpu != previous.cpu and not (added or removed) and new.model == previous.model:
        out.append(f"string: {previous.cpu} -> {new.cpu}")
    if not out:
        out.append(f"no change from adoption {previous.adoption_id}")
    return out


def to_row(a: Adoption) -> dict[str, Any]:
    s = a.scalars
    return {
        "adoption_id": a.adoption_id,
        "adopted_at": a.adopted_at,
        "adopted_by": a.adopted_by,
        "pool": a.pool,
        "note": a.note,
        "machine_type": a.machine_type,
        "accel": a.accel,
        "source": a.source,
        "cpu": a.cpu,
        "custom": a.custom,
        "model": a.model,
        "vendor": a.vendor,
        "features": sorted(a.features),
        "family": s.family,
        "cpu_model": s.model,
        "stepping": s.stepping,
        "level": s.level,
        "xlevel": s.xlevel,
        "phys_bits": s.phys_bits,
        "members": list(a.members),
        "member_runs": list(a.member_runs),
        "previous": a.previous,
        "required": list(a.required) or None,
    }


def from_row(r: dict[str, Any]) -> Adoption:
    return Adoption(
        str(r["adoption_id"]),
        r["adopted_at"],
        str(r["adopted_by"]),
        str(r["pool"]),
        str(r["machine_type"]),
        str(r["accel"]),
        str(r["source"]),
        str(r["cpu"]),
        str(r["model"]),
        frozenset(r["features"] or ()),
        tuple(r["members"] or ()),
        tuple(r["member_runs"] or ()),
        custom=r.get("custom"),
        vendor=r.get("vendor"),
        scalars=Scalars(
            r.get("family"),
            r.get("cpu_model"),
            r.get("stepping"),
            r.get("level"),
            r.get("xlevel"),
            r.get("phys_bits"),
        ),
        note=r.get("note"),
        previous=r.get("previous"),
        required=tuple(r.get("required") or ()),
    )
