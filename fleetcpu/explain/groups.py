"""Members with identical CPU data, as one group each. Pure.

The what-if question ("what would the pool gain without these hosts?") is
asked per *group*, not per host: 10,000 hosts bought in five batches are
five answers, and removing one host of a batch gains nothing while its
twins stay. Two members are in one group when everything the baseline
computes from them is equal: offered features, the QEMU's feature
vocabulary, its CPU models (usability, aliases, recorded features), the
scalars, the vendor and KVM nesting. Host name, collection time and
microcode never change the result's features, model or scalars (microcode
only drives a warning), so they do not split groups.

The baseline's features, model and scalars depend only on the *set* of
distinct CPU data, never on how many hosts share one: so a pool reduced to
one representative per group computes the same result, and every what-if
runs on a handful of representatives instead of 10,000 members
(``tests/test_explain.py`` holds the two equal).

Cost: the store hands hosts of one CPU digest the same frozen records, so a
member's key is mostly identity lookups; a ``models`` tuple is hashed once
per distinct object, not once per member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ..baseline.types import Member, Scalars
from ..probe.document import CpuModel

__all__ = ["Group", "group_members"]

_Key = tuple[frozenset[str], frozenset[str], int, Scalars, str | None, str]


@dataclass(frozen=True)
class Group:
    """Members sharing one CPU data; ``member`` is the first of them, renamed ``label``."""

    label: str
    hosts: tuple[str, ...]
    member: Member


class _ModelsIndex:
    """``models`` tuples -> small ints, equal tuples equal ints, each object hashed once."""

    def __init__(self) -> None:
        self._by_id: dict[int, int] = {}
        self._by_value: dict[tuple[CpuModel, ...], int] = {}
        self._keep: list[tuple[CpuModel, ...]] = []  # ids stay valid while we hold the objects

    def number(self, models: tuple[CpuModel, ...]) -> int:
        found = self._by_id.get(id(models))
        if found is None:
            found = self._by_value.setdefault(models, len(self._by_value))
            self._by_id[id(models)] = found
            self._keep.append(models)
        return found


def group_members(members: Sequence[Member]) -> list[Group]:
    """Groups in order of their first host (members sorted by host); labels ``g1``, ``g2``...

    Each group's ``member`` is its first host's record with ``host`` set to
    the label, so a pool of representatives never names a real host twice.
    """
    index = _ModelsIndex()
    found: dict[_Key, list[Member]] = {}
    for m in sorted(members, key=lambda m: m.host):
        key = (m.offered, m.vocabulary, index.number(m.models), m.scalars, m.vendor, m.kvm_nested)
        found.setdefault(key, []).append(m)
    groups = []
    for i, same in enumerate(found.values(), start=1):
        label = f"g{i}"
        groups.append(Group(label, tuple(m.host for m in same), dataclasses.replace(same[0], host=label)))
    return groups
