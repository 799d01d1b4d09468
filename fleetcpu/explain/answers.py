"""The typed answers of ``blockers`` and ``check``: records in, records out, no I/O.

Frozen, like the baseline's: an explanation is evidence about one pool at
one moment. ``fleetcpu.explain.printout`` turns them into the table and the
JSON documents (``fleetcpu.blockers/1``, ``fleetcpu.check/1``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..baseline.types import Baseline, FeatureBlock, Missing, ModelBlock

__all__ = [
    "BLOCKERS_SCHEMA",
    "CHECK_SCHEMA",
    "Blockers",
    "Change",
    "CheckResult",
    "ModelBlocked",
    "ScalarChange",
    "WhatIf",
]

BLOCKERS_SCHEMA = "fleetcpu.blockers/1"
CHECK_SCHEMA = "fleetcpu.check/1"


@dataclass(frozen=True)
class ScalarChange:
    """One CPUID scalar that differs between two results (``signature`` = family/model/stepping)."""

    scalar: str
    before: int | str | None
    after: int | str | None


@dataclass(frozen=True)
class ModelBlocked:
    """A model the pool does not get, with every reason and the hosts each applies to."""

    model: str
    blocks: tuple[ModelBlock, ...]
    #: Every host named by a block.
    hosts: tuple[str, ...]
    #: True when some member does not block it: removing hosts could unblock it.
    by_some_hosts: bool


@dataclass(frozen=True)
class WhatIf:
    """What the pool would gain without one group of identical members."""

    label: str
    hosts: tuple[str, ...]
    #: Features the result would gain (sorted).
    features: tuple[str, ...]
    #: The pool's model now and without the group (equal when unchanged).
    model_before: str
    model_after: str
    #: Models that would become usable on every remaining member.
    new_models: tuple[str, ...]
    scalars: tuple[ScalarChange, ...]
    #: (features gained + scalars raised + 1 if the model changes) per host removed.
    score: float

    @property
    def gains(self) -> bool:
        return bool(self.features or self.scalars or self.model_after != self.model_before)


@dataclass(frozen=True)
class Blockers:
    """Why the pool's CPU is what it is: blocked features, blocked models, per-group what-ifs."""

    baseline: Baseline
    features: tuple[FeatureBlock, ...]
    models: tuple[ModelBlocked, ...]
    #: Best win per host first; empty for a pool of one group (nothing to remove).
    groups: tuple[WhatIf, ...]
    schema: str = BLOCKERS_SCHEMA


@dataclass(frozen=True)
class Change:
    """One way adding a host lowers the pool, with an operator-readable message.

    ``kind``: ``feature-removed``, ``model-changed``, ``spelling-changed``
    (same model, other explicit ``+``/``-`` changes), ``scalar-dropped``,
    ``vendor-differs``, ``machine-type-missing``.
    """

    kind: str
    message: str
    feature: str | None = None
    before: int | str | None = None
    after: int | str | None = None


@dataclass(frozen=True)
class CheckResult:
    """Can ``host`` join ``pool`` without lowering it? ``before`` is the pool without the host."""

    pool: str
    machine_type: str
    accel: str
    host: str
    #: store | document
    source: str
    #: The host is already a member: the reference is then the pool without it.
    member: bool
    can_join: bool
    before: Baseline | None
    after: Baseline | None
    changes: tuple[Change, ...]
    #: Warning codes the host would add (``security-feature-mixed``...), as "code: message".
    new_warnings: tuple[str, ...] = ()
    #: Pool members whose data could not be used (not part of the comparison).
    missing: tuple[Missing, ...] = ()
    schema: str = CHECK_SCHEMA

    def summary(self) -> str:
        """One line: the verdict and the first few reasons."""
        if self.can_join:
            return f"{self.host} can join pool {self.pool} without lowering its CPU"
        removed = [c.feature for c in self.changes if c.kind == "feature-removed" and c.feature]
        parts = []
        if removed:
            shown = ", ".join(removed[:6]) + (f" and {len(removed) - 6} more" if len(removed) > 6 else "")
            parts.append(f"removes {len(removed)} feature(s) ({shown})")
        parts += [c.message for c in self.changes if c.kind != "feature-removed"]
        return f"{self.host} would lower pool {self.pool}: " + "; ".join(parts)
