"""Pick the named CPU model the pool's ``-cpu`` string starts from. Pure.

The feature set is decided before this runs (``compute``); the model only
changes how the set is *spelt*. So the choice is about the shortest,
least surprising string: the model needing the fewest explicit ``+feat`` /
``-feat`` changes to reach exactly the result on every member.

Why per-member model features and not one list: members may run different
QEMUs, and a model's features move with QEMU and machine type. With
``F_i`` the model's features on member ``i`` and ``R`` the result,
``enable = R - intersection(F_i)`` and ``disable = union(F_i) - R`` yield
exactly ``R`` on every member, whatever each QEMU thinks the model holds.

A model is a candidate only if, on every member, it is listed by that name,
is no alias (its meaning moves with the machine type), is usable (empty
``unavailable-features``), not deprecated, ``migration-safe`` and has its
features recorded. Two rules go beyond the issue's list:

* An unversioned name is *superseded* when any member's QEMU lists a
  versioned ``<name>-vN``: QEMU 4.1-era builds (some of libvirt's captures)
  list both without saying ``alias-of``, yet the unversioned one is still
  resolved per machine type. On QEMUs without versions it stays a candidate.
* Every ``-feat`` must name a feature each member's QEMU knows: a member
  whose QEMU lacks a name another member's model enables would refuse the
  string ("Property not found").

Hosts sharing one ``models`` tuple (the store hands hosts of one CPU digest
the same frozen records) are judged once: a 10,000-host pool of five CPU
types costs five judgements per model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..probe.records import CpuModel
from .records import Member, ModelBlock, ModelVerdict

#: host/max follow the host they run on, base is empty: never a pool model.
NOT_POOL_MODELS = frozenset({"host", "max", "base"})
FALLBACK_MODEL = "base"
_VERSIONED = re.compile(r"^(?P<base>.+)-v(?P<n>\d+)$")


def split_version(name: str) -> tuple[str, int]:
    """``EPYC-Rome-v2`` -> ("EPYC-Rome", 2); an unversioned name is version 0."""
    m = _VERSIONED.match(name)
    return (m.group("base"), int(m.group("n"))) if m else (name, 0)


@dataclass
class _View:
    """One distinct ``models`` tuple and the hosts that reported it."""

    by_name: dict[str, CpuModel]
    hosts: list[str] = field(default_factory=list)
    features: dict[str, frozenset[str]] = field(default_factory=dict)


def _views(members: Sequence[Member]) -> list[_View]:
    by_id: dict[int, _View] = {}
    for m in members:
        view = by_id.get(id(m.models))
        if view is None:
            view = by_id[id(m.models)] = _View({c.name: c for c in m.models})
        view.hosts.append(m.host)
    return list(by_id.values())


def _model_block(model: CpuModel | None, superseded_by: str | None) -> tuple[str, str] | None:
    """Why this member's view of the model rules it out, or None (checks in this order)."""
    if model is None:
        return "absent", "not in this QEMU's query-cpu-definitions"
    checks = (
        (model.alias_of is not None,
         "alias", f"alias of {model.alias_of}: its meaning moves with the machine type"),
        (superseded_by is not None,
         "superseded", f"versioned names exist ({superseded_by}): an unversioned name moves"),
        (not model.usable,
         "unusable", "unavailable features: " + " ".join(model.unavailable_features)),
        (model.deprecated, "deprecated", "QEMU marks it deprecated"),
        (model.migration_safe is not True,
         "not-migration-safe", "QEMU does not mark it migration-safe"),
        (model.features is None,
         "features-unknown", "its expansion was not recorded by the probe"),
    )
    return next(((reason, detail) for failed, reason, detail in checks if failed), None)


def _collect(blocks: dict[tuple[str, str], list[str]]) -> tuple[ModelBlock, ...]:
    return tuple(
        ModelBlock(reason, detail, tuple(sorted(hosts)))
        for (reason, detail), hosts in sorted(blocks.items())
    )


def _unspeakable(names: Iterable[str], vocabularies: Sequence[tuple[frozenset[str], list[str]]]
                 ) -> dict[tuple[str, str], list[str]]:
    """``-feat`` names some member's QEMU does not know, grouped like model blocks."""
    wanted = frozenset(names)
    out: dict[tuple[str, str], list[str]] = {}
    for vocab, hosts in vocabularies:
        if not vocab:
            continue  # nothing known about this QEMU's names: nothing to hold against it
        unknown = sorted(wanted - vocab)
        if unknown:
            key = ("unknown-feature-name", "this QEMU does not know: " + " ".join(unknown))
            out.setdefault(key, []).extend(hosts)
    return out


def judge_models(members: Sequence[Member], result: frozenset[str]) -> tuple[ModelVerdict, ...]:
    """Every model any member lists (host/max/base aside), judged; sorted best candidate first."""
    views = _views(members)
    vocab_hosts: dict[frozenset[str], list[str]] = {}
    for m in members:
        vocab_hosts.setdefault(m.vocabulary, []).append(m.host)
    vocabularies = list(vocab_hosts.items())
    names = sorted({n for v in views for n in v.by_name} - NOT_POOL_MODELS)
    versions: dict[str, list[str]] = {}
    for v in views:
        for n in v.by_name:
            base, number = split_version(n)
            if number:
                versions.setdefault(base, []).append(n)

    verdicts: list[ModelVerdict] = []
    for name in names:
        base, number = split_version(name)
        superseded = None
        if number == 0 and base in versions:
            superseded = ", ".join(sorted(set(versions[base]), key=split_version)[-3:])
        blocks: dict[tuple[str, str], list[str]] = {}
        for v in views:
            why = _model_block(v.by_name.get(name), superseded)
            if why is not None:
                blocks.setdefault(why, []).extend(v.hosts)
        if blocks:
            verdicts.append(ModelVerdict(name, candidate=False, blocks=_collect(blocks)))
            continue
        feature_sets = []
        for v in views:
            feats = v.features.get(name)
            if feats is None:
                recorded = v.by_name[name].features
                assert recorded is not None  # _model_block refused None
                feats = v.features[name] = frozenset(recorded)
            feature_sets.append(feats)
        inter = frozenset.intersection(*feature_sets)
        union = frozenset.union(*feature_sets)
        enable = tuple(sorted(result - inter))
        disable = tuple(sorted(union - result))
        bad = _unspeakable(disable, vocabularies)
        if bad:
            verdicts.append(ModelVerdict(name, candidate=False, blocks=_collect(bad)))
            continue
        verdicts.append(ModelVerdict(name, candidate=True, enable=enable, disable=disable,
                                     own_features=len(inter)))
    return tuple(sorted(verdicts, key=_rank))


def _rank(v: ModelVerdict) -> tuple[int, int, int, int, str]:
    """Candidates first: fewest changes, richest model, highest -vN, then the name."""
    if not v.candidate:
        return (1, 0, 0, 0, v.model)
    return (0, v.cost, -v.own_features, -split_version(v.model)[1], v.model)


def best(verdicts: Sequence[ModelVerdict]) -> ModelVerdict | None:
    """The chosen candidate (``judge_models`` sorts it first), None when there is none."""
    return verdicts[0] if verdicts and verdicts[0].candidate else None
