"""The x86-64 psABI micro-architecture levels in QEMU's feature spellings, and requirements. Pure.

Why here, beside ``features.py``: the level is a fact about a set of feature
names, wanted by the store (each host's level, written into the index at
commit), the baseline (the pool CPU's level, ``--require``) and the report;
this is the lowest layer all of them import. Written from the x86-64 psABI's
table of levels, each psABI name turned into the name QEMU's static expansion
uses (``features.canonical``), checked on real captures by ``tests/test_require.py``:

* v1: CMOV CX8 FPU FXSR MMX OSFXSR SCE SSE SSE2, plus long mode itself
  (``lm``: a level of x86-64). OSFXSR is the OS's CR4 bit for FXSR, so it is
  ``fxsr``; SCE is ``syscall``.
* v2: CMPXCHG16B (``cx16``), LAHF-SAHF (``lahf-lm``), POPCNT, SSE3 (``pni``),
  SSE4_1, SSE4_2, SSSE3.
* v3: AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT (``abm``), MOVBE, and OSXSAVE,
  which is ``xsave``: ``osxsave`` mirrors the guest OS's CR4 and the baseline
  never offers it (``features.OS_CONTROLLED``), so without this no pool would
  ever reach v3.
* v4: AVX512F, AVX512BW, AVX512CD, AVX512DQ, AVX512VL.

A level implies those below it: ``x86-64-v3`` requires every v1 and v2
feature too.

Python 3.9, stdlib only: it sits in ``probe/`` and so ships with the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, Optional, Sequence, Tuple

from ..errors import UsageError
from ..vocabulary import AbiLevel
from .features import canonical, is_feature

__all__ = ["LEVEL_FEATURES", "Requirement", "features_of", "level_of", "requirement"]

#: Each level's own features (the ones it adds over the level below), in QEMU's spellings.
LEVEL_FEATURES: Dict[str, FrozenSet[str]] = {
    AbiLevel.V1: frozenset(("cmov", "cx8", "fpu", "fxsr", "mmx", "syscall", "sse", "sse2", "lm")),
    AbiLevel.V2: frozenset(("cx16", "lahf-lm", "popcnt", "pni", "sse4.1", "sse4.2", "ssse3")),
    AbiLevel.V3: frozenset(("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")),
    AbiLevel.V4: frozenset(("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
}

_ORDER: Tuple[str, ...] = AbiLevel.values()


def features_of(level: str) -> FrozenSet[str]:
    """Every feature ``level`` needs: its own and those of every level below it."""
    out: FrozenSet[str] = frozenset()
    for name in _ORDER:
        out |= LEVEL_FEATURES[name]
        if name == level:
            return out
    raise ValueError(f"{level!r} is not an x86-64 level ({', '.join(_ORDER)})")


def level_of(features: Iterable[str]) -> Optional[str]:
    """The highest level whose every feature is in ``features``; None when not even v1."""
    have = frozenset(features)
    reached: Optional[str] = None
    for name in _ORDER:
        if not LEVEL_FEATURES[name] <= have:
            break
        reached = name
    return reached


@dataclass(frozen=True)
class Requirement:
    """What ``--require R,...`` asks: the features, each with the item of the list that asks it."""

    #: The items as given (a level, or a feature in its canonical spelling), in order.
    asked: Tuple[str, ...] = ()
    #: feature -> the item that asks it (the feature itself, or the lowest level naming it).
    why: Dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> FrozenSet[str]:
        return frozenset(self.why)

    def text(self) -> str:
        return ",".join(self.asked)

    def __bool__(self) -> bool:
        return bool(self.asked)


def requirement(items: Sequence[str]) -> Requirement:
    """``["x86-64-v2", "md-clear"]`` (or ``["x86-64-v2,md-clear"]``) -> a ``Requirement``.

    A feature name is folded to QEMU's static spelling (``sse4_1`` is ``sse4.1``);
    a name that is neither a level nor a feature fleetcpu knows is exit 2, so a
    typo never silently "requires" a feature no host could offer.
    """
    asked = []
    why: Dict[str, str] = {}
    for item in (part.strip() for text in items for part in text.split(",")):
        if not item:
            continue
        if item in _ORDER:
            asked.append(item)
            for level in _ORDER:
                for name in sorted(LEVEL_FEATURES[level]):
                    why.setdefault(name, level)
                if level == item:
                    break
            continue
        if not is_feature(item):
            raise UsageError(
                f"--require {item}: neither an x86-64 level ({', '.join(_ORDER)}) "
                "nor a CPU feature QEMU names"
            )
        name = canonical(item)
        asked.append(name)
        why.setdefault(name, name)
    return Requirement(tuple(dict.fromkeys(asked)), why)
