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

A second tier exists for pools mixing QEMU generations: a QEMU without
versioned models (2.x, some of libvirt's captures) lists ``Westmere`` where a
newer one lists ``Westmere-v1`` and makes ``Westmere`` an alias. No stable
name is then common, and rather than fall back to ``base`` the chooser
accepts a name that is an alias (or a superseded unversioned name) on some
members, judged through what it resolves to there *for the pool's machine
type* (the probe recorded ``alias-of`` per machine type). Such a verdict
carries ``resolves_on`` and the baseline warns: the string is exact for this
machine type only. A stable candidate always wins over a resolving one.

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


#: Block reasons the second tier forgives (the name resolves per machine type).
RESOLVING = frozenset({"alias", "superseded"})


def _resolved(view: _View, name: str) -> CpuModel | None:
    """The model ``name`` stands for in this view: itself, or its alias target's data.

    Usability stays the alias's own (QEMU judges the alias for this machine
    type); the features are the target's, which the probe recorded.
    """
    model = view.by_name.get(name)
    if model is None or model.alias_of is None:
        return model
    target = view.by_name.get(model.alias_of)
    features = target.features if target is not None else None
    return CpuModel(model.name, model.unavailable_features, None, model.deprecated,
                    model.migration_safe, model.static, model.typename, features)


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

    superseded_by: dict[str, str] = {}
    for name in names:
        base, number = split_version(name)
        if number == 0 and base in versions:
            superseded_by[name] = ", ".join(sorted(set(versions[base]), key=split_version)[-3:])
    verdicts = [_judge(name, views, superseded_by.get(name), result, vocabularies, loose=False)
                for name in names]
    if not any(v.candidate for v in verdicts):
        verdicts = [_judge(v.model, views, superseded_by.get(v.model), result, vocabularies,
                           loose=True)
                    if v.blocks and {b.reason for b in v.blocks} <= RESOLVING else v
                    for v in verdicts]
    return tuple(sorted(verdicts, key=_rank))


def _judge(name: str, views: Sequence[_View], superseded: str | None, result: frozenset[str],
           vocabularies: Sequence[tuple[frozenset[str], list[str]]], *, loose: bool) -> ModelVerdict:
    """One model for the pool; ``loose`` forgives names that resolve per machine type."""
    blocks: dict[tuple[str, str], list[str]] = {}
    resolves_on: list[str] = []
    models: list[CpuModel] = []
    for v in views:
        model = v.by_name.get(name)
        if loose and model is not None and (model.alias_of is not None or superseded):
            resolves_on.extend(v.hosts)
            model = _resolved(v, name)
            why = _model_block(model, None)
        else:
            why = _model_block(model, superseded)
        if why is not None:
            blocks.setdefault(why, []).extend(v.hosts)
        elif model is not None:
            models.append(model)
    if blocks:
        return ModelVerdict(name, candidate=False, blocks=_collect(blocks))
    feature_sets = []
    for v, model in zip(views, models, strict=True):
        key = name if model.alias_of is None and v.by_name[name] is model else "=" + name
        feats = v.features.get(key)
        if feats is None:
            assert model.features is not None  # _model_block refused None
            feats = v.features[key] = frozenset(model.features)
        feature_sets.append(feats)
    inter = frozenset.intersection(*feature_sets)
    union = frozenset.union(*feature_sets)
    enable = tuple(sorted(result - inter))
    disable = tuple(sorted(union - result))
    bad = _unspeakable(disable, vocabularies)
    if bad:
        return ModelVerdict(name, candidate=False, blocks=_collect(bad))
    return ModelVerdict(name, candidate=True, enable=enable, disable=disable,
                        own_features=len(inter), resolves_on=tuple(sorted(resolves_on)))


def _rank(v: ModelVerdict) -> tuple[int, int, int, int, str]:
    """Candidates first: fewest changes, richest model, highest -vN, then the name."""
    if not v.candidate:
        return (1, 0, 0, 0, v.model)
    return (0, v.cost, -v.own_features, -split_version(v.model)[1], v.model)


def best(verdicts: Sequence[ModelVerdict]) -> ModelVerdict | None:
    """The chosen candidate (``judge_models`` sorts it first), None when there is none."""
    return verdicts[0] if verdicts and verdicts[0].candidate else None
