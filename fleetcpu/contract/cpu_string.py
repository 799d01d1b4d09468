"""A ``-cpu`` string as QEMU reads it: the model, the features it switches, the other properties. Pure.

Why parse at all rather than compare strings: the contract is judged
against what a host's QEMU records per model (``unavailable-features``) and
what its host CPU offers, so the string must be taken apart exactly as QEMU
takes it apart. QEMU's rules, kept here:

* ``+feat`` / ``-feat`` are applied after every ``key=value``, so they win
  over ``feat=on|off`` whatever the order (``cpuarg`` writes only ``+``/``-``);
* a bare ``feat`` means ``feat=on``;
* ``,,`` is a literal comma inside a value (``model-id=A,,B``);
* feature names have several spellings (``sse4_1``, ``sse4-1``, ``sse4.1``):
  they are brought to the probe's canonical one, so an operator's string
  from a Nova config is judged by the names the store holds.

A property that is not a feature (``level``, ``vendor``, ``hv-*``...) is
kept as a string; ``judge`` decides which ones it can judge.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..probe.features import canonical, is_property

__all__ = ["BOOLEAN", "CpuString", "parse_cpu"]

#: QEMU's spellings of a boolean property value.
BOOLEAN = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}

#: Properties whose value is not a boolean, so ``key=on`` is still a property.
_SCALARS = frozenset(
    (
        "vendor",
        "family",
        "model",
        "stepping",
        "level",
        "xlevel",
        "xlevel2",
        "min-level",
        "min-xlevel",
        "model-id",
        "phys-bits",
        "tsc-frequency",
    )
)


@dataclass(frozen=True)
class CpuString:
    """One parsed ``-cpu`` string; ``enabled``/``disabled`` hold canonical feature names."""

    text: str
    model: str
    enabled: frozenset[str]
    disabled: frozenset[str]
    #: Every other ``key=value`` (vendor, level, model-id, hv-*, ...), the last one given winning.
    props: tuple[tuple[str, str], ...] = ()

    @property
    def custom(self) -> bool:
        """``base,...``: a CPU with nothing implicit, every feature named."""
        return self.model == "base"

    def prop(self, key: str) -> str | None:
        return dict(self.props).get(key)


def _split(text: str) -> list[str]:
    """Split on single commas; ``,,`` is a literal comma (QEMU's option syntax)."""
    parts, current, i = [], [], 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1 : i + 2] == ",":
                current.append(",")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(text[i])
        i += 1
    parts.append("".join(current))
    return parts


def parse_cpu(text: str) -> CpuString:
    """Parse ``text``; a malformed string is UsageError (exit 2) naming the bad part."""
    if not text or any(ord(c) < 32 for c in text):
        raise UsageError(f"--cpu {text!r}: not a -cpu string")
    model, *rest = _split(text.strip())
    if not model or "=" in model or model[0] in "+-":
        raise UsageError(f"--cpu {text!r}: a -cpu string starts with a model name")
    plus: set[str] = set()
    minus: set[str] = set()
    switched: dict[str, bool] = {}
    props: dict[str, str] = {}
    for part in rest:
        if not part:
            raise UsageError(f"--cpu {text!r}: an empty property")
        if part[0] in "+-":
            name = canonical(part[1:])
            if not name or "=" in name:
                raise UsageError(f"--cpu {text!r}: {part!r} is not +feature or -feature")
            (plus if part[0] == "+" else minus).add(name)
            continue
        key, eq, value = part.partition("=")
        if not key:
            raise UsageError(f"--cpu {text!r}: {part!r} has no property name")
        if not eq:
            value = "on"
        if key in _SCALARS or is_property(key) or value.lower() not in BOOLEAN:
            props[key] = value
        else:
            switched[canonical(key)] = BOOLEAN[value.lower()]
    both = plus & minus
    if both:
        raise UsageError(f"--cpu {text!r}: {', '.join(sorted(both))} both added and removed")
    # +/- are applied after every key=value (QEMU's order), so they win.
    for name in plus | minus:
        switched.pop(name, None)
    enabled = plus | {n for n, on in switched.items() if on}
    disabled = minus | {n for n, on in switched.items() if not on}
    return CpuString(text, model, frozenset(enabled), frozenset(disabled), tuple(sorted(props.items())))
