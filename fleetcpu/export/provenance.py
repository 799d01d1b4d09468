"""What every export format says about its origin, so a pasted config can be traced back. Pure.

Each export carries, as comments in its own syntax, the pool, machine type,
accelerator, vendor, member count and the pool's model: a config without
them is a CPU nobody can re-derive. Warnings and missing members go to
stderr exactly as for ``--format qemu`` (``commentary``), never into the
config itself: a script capturing stdout gets a clean file.

The names a format writes are checked first by ``baseline.quotable``.
"""

from __future__ import annotations

from ..baseline.types import Baseline

__all__ = ["commentary", "origin"]


def origin(b: Baseline) -> list[str]:
    """Comment lines (without the comment marker) naming where the CPU comes from."""
    return [
        f"fleetcpu baseline of pool {b.pool}: {len(b.hosts)} host(s), machine type "
        f"{b.machine_type}, {b.accel}, {b.vendor or 'vendor unknown'}",
        f"pool model {b.model} (+{len(b.enable)} -{len(b.disable)}), {len(b.features)} features; "
        f"valid for machine type {b.machine_type} only",
    ]


def commentary(b: Baseline, extra: list[str] | None = None) -> str:
    """stderr: the baseline's warnings and missing members, plus format-specific notes."""
    lines = [f"# warning {w.code}: {w.message}" for w in b.warnings]
    lines += [f"# missing {m.host} ({m.code}): {m.message}" for m in b.missing]
    lines += [f"# {line}" for line in extra or []]
    return "".join(line + "\n" for line in lines)
