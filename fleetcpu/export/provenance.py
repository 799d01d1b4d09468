"""What every export format says about its origin, so a pasted config can be traced back. Pure.

Each export carries, as comments in its own syntax, the pool, machine type,
accelerator, vendor, member count and the pool's model: a config without
them is a CPU nobody can re-derive. Warnings and missing members go to
stderr exactly as for ``--format qemu`` (``commentary``), never into the
config itself: a script capturing stdout gets a clean file.

Every format writes names that came from hosts (models, features, the
machine type, the CPUID vendor) into a syntax where ``,``, ``=``, a quote or
a newline means something. Decode refuses such names (``probe.names``), but
a store written before it did may still hold one, so ``refuse_unquotable``
checks them all once more before any format writes a byte: a config with an
injected property is worse than none.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..baseline.types import Baseline
from ..errors import BadInputError
from ..probe.names import is_name, is_vendor, name_problem, vendor_problem

__all__ = ["commentary", "origin", "refuse_names", "refuse_unquotable"]


def refuse_names(who: str, what: str, names: Iterable[str], vendor: str | None = None) -> None:
    """Raise ``BadInputError`` (exit 3, one line) for the first name ``who`` cannot quote.

    ``who`` names the writer: ``--format nova``, or ``verify`` (which starts
    the baseline's ``-cpu`` string on every member).
    """
    for name in names:
        if not is_name(name):
            raise BadInputError(f"{what}: {name_problem(name)}; {who} refuses to write it "
                                "(re-probe the host: fleetcpu no longer stores such a name)")
    if vendor is not None and not is_vendor(vendor):
        raise BadInputError(f"{what}: {vendor_problem(vendor)}; {who} refuses to write "
                            "it (re-probe the host)")


def refuse_unquotable(b: Baseline, who: str) -> None:
    """Every host-given name of ``b`` any format writes, checked before ``who`` writes one."""
    names = [b.machine_type, b.model, *b.enable, *b.disable, *b.features,
             *(v.model for v in b.models), *(blk.feature for blk in b.blocked)]
    refuse_names(who, f"baseline of pool {b.pool}", names, b.vendor)


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
