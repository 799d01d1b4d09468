"""The compliance states' names, and one member's verdict as a record and a row. Pure.

One closed set (``vocabulary.State``, where each word is explained), shared
by the table, the JSON (``fleetcpu.status/1``), Prometheus and the stored
``compliance`` rows, so a dashboard and a script never disagree on what a
word means. ``STATES`` is its values in their order; the names below are its
members, the first three being the rule's answers (``judge``).

``carry`` keeps "since when": every row repeats the host's last compliant
run and what the host was then (microcode, kernel, QEMU), so the collect
summary says what changed without reading history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..vocabulary import State
from .judge import COMPLIANT, NON_COMPLIANT, RULE_REVISION, UNDECIDED, Verdict

__all__ = [
    "COMPLIANT",
    "FAILED",
    "NON_COMPLIANT",
    "STALE",
    "STATES",
    "TCG_ONLY",
    "UNDECIDED",
    "Compliance",
    "carry",
    "changes_since",
    "counts_against",
    "from_row",
    "from_verdict",
    "to_row",
]

FAILED = State.FAILED
STALE = State.STALE
TCG_ONLY = State.TCG_ONLY
STATES = State.values()


def counts_against(state: str, strict: bool) -> bool:
    """Does ``state`` make the exit code 26? Only proof of non-compliance, unless ``strict``."""
    return state == NON_COMPLIANT or (strict and state != COMPLIANT)


@dataclass(frozen=True)
class Compliance:
    """One member judged against its pool's adopted CPU, at one moment."""

    host: str
    pool: str
    state: str
    adoption_id: str
    machine_type: str
    collected_at: datetime
    reason: str | None = None
    lacking: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    detail: str = ""
    microcode: str | None = None
    kernel_release: str | None = None
    qemu_version: str | None = None
    run_id: str | None = None
    last_compliant_run: str | None = None
    last_compliant_at: datetime | None = None
    last_compliant_microcode: str | None = None
    last_compliant_kernel: str | None = None
    last_compliant_qemu: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"not a compliance state: {self.state!r}")


def from_verdict(verdict: Verdict, make: Callable[..., Compliance]) -> Compliance:
    """``make`` (a ``Compliance`` with the host's fields bound) given the rule's answer."""
    return make(
        state=verdict.state,
        reason=verdict.reason,
        lacking=verdict.lacking,
        extra=verdict.extra,
        detail=verdict.detail,
    )


def carry(previous: Compliance | None, now: Compliance) -> Compliance:
    """``now`` with its last compliant run: itself when compliant, else the previous row's
    (for the same adoption: a new contract starts a new history)."""
    if now.state == COMPLIANT:
        return replace(
            now,
            last_compliant_run=now.run_id,
            last_compliant_at=now.collected_at,
            last_compliant_microcode=now.microcode,
            last_compliant_kernel=now.kernel_release,
            last_compliant_qemu=now.qemu_version,
        )
    if previous is None or previous.adoption_id != now.adoption_id:
        return now
    return replace(
        now,
        last_compliant_run=previous.last_compliant_run,
        last_compliant_at=previous.last_compliant_at,
        last_compliant_microcode=previous.last_compliant_microcode,
        last_compliant_kernel=previous.last_compliant_kernel,
        last_compliant_qemu=previous.last_compliant_qemu,
    )


def changes_since(c: Compliance) -> tuple[str, ...]:
    """What differs between the last compliant run and now: microcode, kernel, QEMU."""
    if c.last_compliant_run is None:
        return ()
    out = []
    for label, then, now in (
        ("microcode", c.last_compliant_microcode, c.microcode),
        ("kernel", c.last_compliant_kernel, c.kernel_release),
        ("QEMU", c.last_compliant_qemu, c.qemu_version),
    ):
        if then != now:
            out.append(f"{label} {then or '?'} -> {now or '?'}")
    return tuple(out)


_ROW_FIELDS = (
    "host",
    "pool",
    "collected_at",
    "adoption_id",
    "machine_type",
    "state",
    "reason",
    "detail",
    "microcode",
    "kernel_release",
    "qemu_version",
    "last_compliant_run",
    "last_compliant_at",
    "last_compliant_microcode",
    "last_compliant_kernel",
    "last_compliant_qemu",
)


def to_row(c: Compliance) -> dict[str, Any]:
    """The ``compliance`` row (``run_id`` is the writer's)."""
    row = {name: getattr(c, name) for name in _ROW_FIELDS}
    row["lacking"] = list(c.lacking)
    row["extra"] = list(c.extra)
    row["rule"] = RULE_REVISION  # the rule that gave it: see ``judge.RULE_REVISION``
    return row


def from_row(row: dict[str, Any]) -> Compliance:
    fields: dict[str, Any] = {name: row.get(name) for name in _ROW_FIELDS}
    fields["detail"] = fields["detail"] or ""
    return Compliance(
        **fields,
        run_id=row.get("run_id"),
        lacking=tuple(row.get("lacking") or ()),
        extra=tuple(row.get("extra") or ()),
    )
