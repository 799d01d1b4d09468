"""Whether every host-given name of a baseline may be written into a config or a ``-cpu``. Pure.

Every export format, and ``verify`` (which starts the baseline's ``-cpu``
string on every member), writes names that came from hosts (models,
features, the machine type, the CPUID vendor) into a syntax where ``,``,
``=``, a quote or a newline means something. Decode refuses such names
(``probe.names``), but a store written before it did may still hold one, so
each writer checks them all once more before it writes a byte: a config with
an injected property is worse than none. It sits with the baseline, not with
the exports, because both ``export`` and ``verify`` stand on it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import BadInputError
from ..probe.names import is_name, is_vendor, name_problem, vendor_problem
from .types import Baseline

__all__ = ["refuse_names", "refuse_unquotable"]


def refuse_names(who: str, what: str, names: Iterable[str], vendor: str | None = None) -> None:
    """Raise ``BadInputError`` (exit 3, one line) for the first name ``who`` cannot quote.

    ``who`` names the writer: ``--format nova``, or ``verify`` (which starts
    the baseline's ``-cpu`` string on every member).
    """
    for name in names:
        if not is_name(name):
            raise BadInputError(
                f"{what}: {name_problem(name)}; {who} refuses to write it "
                "(re-probe the host: fleetcpu no longer stores such a name)"
            )
    if vendor is not None and not is_vendor(vendor):
        raise BadInputError(
            f"{what}: {vendor_problem(vendor)}; {who} refuses to write it (re-probe the host)"
        )


def refuse_unquotable(b: Baseline, who: str) -> None:
    """Every host-given name of ``b`` any format writes, checked before ``who`` writes one."""
    names = [
        b.machine_type,
        b.model,
        *b.enable,
        *b.disable,
        *b.features,
        *(v.model for v in b.models),
        *(blk.feature for blk in b.blocked),
    ]
    refuse_names(who, f"baseline of pool {b.pool}", names, b.vendor)
