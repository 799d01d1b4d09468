"""Third-party warnings an operator must never see, and the one place that silences them.

Why: a warning printed by a library fleetcpu imports is noise the operator
can do nothing about (ten lines of it came before the first collect summary
when cryptography 51 deprecated DSA), and it buries fleetcpu's own one-line
messages. Why a list of (category, module) pairs and not a blanket filter: a
warning that fleetcpu's own code triggers, or one from a library not on the
list, must still show, so that we learn of it. Each entry names the upstream
cause; delete an entry once upstream has fixed it and the lock has moved.

Why matched by the category's *name*: the probe ships to hosts without
cryptography, and the CLI must not import cryptography for commands that
never use SSH, so the filter cannot hold the class itself. ``_ByName`` is a
``Warning`` subclass whose ``issubclass`` compares qualified names along the
warning's MRO, which is how the stdlib filter matches categories.

The list is documented in docs/warnings.md; a test keeps the two equal. It
lives in the probe package because the probe installs it too and may import
nothing of fleetcpu outside what ships with it (Python 3.9-safe).
"""

from __future__ import annotations

import warnings
from typing import Dict, NamedTuple, Tuple, Type, cast

__all__ = ["SILENCED", "Silenced", "install"]


class Silenced(NamedTuple):
    """One third-party warning that is never shown: its category, the module it is raised from, why."""

    category: str  # dotted name of the warning class (or a base of it)
    module: str  # regular expression the warning's module must match from its start
    cause: str


#: Everything fleetcpu silences. Keep docs/warnings.md equal to it.
SILENCED: Tuple[Silenced, ...] = (
    Silenced(
        "cryptography.utils.CryptographyDeprecationWarning",
        r"asyncssh(\.|$)",
        "cryptography 51.0 deprecated DSA; asyncssh 2.24.1 still names the DSA key classes when it "
        "is imported (asyncssh/crypto/misc.py and crypto/dsa.py), before fleetcpu can use any key. "
        "fleetcpu never offers or accepts DSA keys.",
    ),
)


class _ByName(type):
    """Metaclass: ``issubclass(C, X)`` is true when a class in C's MRO has X's target name."""

    target: str

    def __subclasscheck__(cls, sub: type) -> bool:
        return any(f"{k.__module__}.{k.__qualname__}" == cls.target for k in getattr(sub, "__mro__", ()))


#: One stand-in class per entry, made once, so that installing twice adds no second filter.
_CATEGORIES: Dict[str, Type[Warning]] = {}


def _category(dotted: str) -> Type[Warning]:
    if dotted not in _CATEGORIES:
        made = _ByName(dotted.rpartition(".")[2], (Warning,), {"target": dotted})
        _CATEGORIES[dotted] = cast("Type[Warning]", made)
    return _CATEGORIES[dotted]


def install() -> None:
    """Put every entry at the front of the warning filters; calling it again changes nothing."""
    for entry in SILENCED:
        warnings.filterwarnings("ignore", category=_category(entry.category), module=entry.module)
