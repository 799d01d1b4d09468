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

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..probe.document import CpuModel
from ..vocabulary import NOT_POOL_MODELS
from .types import Member, ModelBlock, ModelVerdict

__all__ = [
    "FALLBACK_MODEL",
    "NOT_POOL_MODELS",
    "RESOLVING",
    "Judged",
    "JudgingContext",
    "Subpool",
    "best",
    "judge",
    "judge_models",
    "split_version",
]

FALLBACK_MODEL = "base"
_VERSIONED = re.compile(r"^(?P<base>.+)-v(?P<n>\d+)$")


@functools.cache  # pure, and asked for the same few hundred names by every what-if
def split_version(name: str) -> tuple[str, int]:
    """``EPYC-Rome-v2`` -> ("EPYC-Rome", 2); an unversioned name is version 0."""
    m = _VERSIONED.match(name)
    return (m.group("base"), int(m.group("n"))) if m else (name, 0)


class _ModelsData:
    """What judging reads from one distinct ``models`` tuple, whatever pool it is in."""

    __slots__ = ("blocks", "by_name", "features", "models", "names", "versioned")

    def __init__(self, models: tuple[CpuModel, ...]) -> None:
        self.models = models  # held: the context finds this object by identity (see JudgingContext)
        self.by_name = {c.name: c for c in models}
        self.names = frozenset(self.by_name)
        #: (base, versioned name) pairs: a set, so that a pool's are one C-level union.
        self.versioned = frozenset(
            (base, n) for n in self.by_name for base, number in (split_version(n),) if number
        )
        #: name or "=name" (resolved through an alias) -> the model's feature set.
        self.features: dict[str, frozenset[str]] = {}
        #: (name, superseded, loose) -> (why blocked or None, the model judged, resolves)
        self.blocks: dict[
            tuple[str, str | None, bool], tuple[tuple[str, str] | None, CpuModel | None, bool]
        ] = {}


class JudgingContext:
    """Per ``models`` tuple, everything judging computes that no pool changes: internal.

    Why a context, and why internal: ``blockers`` judges the pool once per
    group of identical hosts, each time without one group: about a hundred
    pools made of the same few hundred tuples. Judging them in one context
    judges each (tuple, model) once instead of once per pool. It never
    changes a result, so it stays out of ``compute_baseline``'s signature:
    a command that judges several pools of one store's records makes one
    context and passes it through ``compute.judged_baseline``.

    Keys are object identities (hashing a tuple of records, or comparing
    vocabularies of hundreds of names, is what this saves), made stable by
    holding the object: every object whose id is a key is held by the
    context (``_ModelsData.models``, ``_vocab_keep``), so its id cannot be
    reused by another object while the context lives, and ``data`` checks
    the entry is for that very object (``is``). Live only as long as the
    command that made it.
    """

    def __init__(self) -> None:
        self._data: dict[int, _ModelsData] = {}
        self._vocab: dict[frozenset[str], frozenset[str]] = {}
        self._vocab_by_id: dict[int, frozenset[str]] = {}
        #: Every object ``_vocab_by_id`` has an id of, held: its id cannot be reused meanwhile.
        self._vocab_keep: list[frozenset[str]] = []
        #: The latest judgement made in this context (a parent for ``Subpool``).
        self.last: Judged | None = None
        #: Distinct views (their data's ids, in order) -> (names judged, name -> superseded-by
        #: text). A what-if removes one group, which rarely removes a whole ``models`` tuple:
        #: the pool's model names and versions are then the parent's, not recounted per
        #: what-if. The ids are of ``_ModelsData`` this context holds in ``_data``.
        self.naming: dict[tuple[int, ...], tuple[list[str], dict[str, str]]] = {}

    def vocabulary(self, names: frozenset[str]) -> frozenset[str]:
        """The one object standing for a vocabulary equal to ``names``.

        Members of different CPUs on one QEMU hold equal vocabularies in
        distinct objects: as dict keys, each lookup then compares hundreds of
        names (a tenth of a second over ``blockers``' what-ifs). Keyed by the
        shared object, a lookup is an identity check.
        """
        found = self._vocab_by_id.get(id(names))
        if found is None:
            found = self._vocab_by_id[id(names)] = self._vocab.setdefault(names, names)
            self._vocab_keep.append(names)  # ids stay valid while we hold the objects
        return found

    def data(self, models: tuple[CpuModel, ...]) -> _ModelsData:
        found = self._data.get(id(models))
        if found is None or found.models is not models:
            found = self._data[id(models)] = _ModelsData(models)
        return found


@dataclass
class _View:
    """One distinct ``models`` tuple and the hosts that reported it."""

    data: _ModelsData
    hosts: list[str] = field(default_factory=list)

    @property
    def by_name(self) -> dict[str, CpuModel]:
        return self.data.by_name


def _views(members: Sequence[Member], context: JudgingContext) -> list[_View]:
    by_id: dict[int, _View] = {}  # ids of the members' tuples, alive for this call
    for m in members:
        view = by_id.get(id(m.models))
        if view is None:
            view = by_id[id(m.models)] = _View(context.data(m.models))
        view.hosts.append(m.host)
    return list(by_id.values())


#: Block reasons the second tier forgives (the name resolves per machine type).
RESOLVING = frozenset({"alias", "superseded"})


def _resolved(view: _ModelsData, name: str) -> CpuModel | None:
    """The model ``name`` stands for in this view: itself, or its alias target's data.

    Usability stays the alias's own (QEMU judges the alias for this machine
    type); the features are the target's, which the probe recorded.
    """
    model = view.by_name.get(name)
    if model is None or model.alias_of is None:
        return model
    target = view.by_name.get(model.alias_of)
    features = target.features if target is not None else None
    return CpuModel(
        model.name,
        model.unavailable_features,
        None,
        model.deprecated,
        model.migration_safe,
        model.static,
        model.typename,
        features,
    )


def _model_block(model: CpuModel | None, superseded_by: str | None) -> tuple[str, str] | None:
    """Why this member's view of the model rules it out, or None (checks in this order)."""
    if model is None:
        return "absent", "not in this QEMU's query-cpu-definitions"
    checks = (
        (
            model.alias_of is not None,
            "alias",
            f"alias of {model.alias_of}: its meaning moves with the machine type",
        ),
        (
            superseded_by is not None,
            "superseded",
            f"versioned names exist ({superseded_by}): an unversioned name moves",
        ),
        (not model.usable, "unusable", "unavailable features: " + " ".join(model.unavailable_features)),
        (model.deprecated, "deprecated", "QEMU marks it deprecated"),
        (model.migration_safe is not True, "not-migration-safe", "QEMU does not mark it migration-safe"),
        (model.features is None, "features-unknown", "its expansion was not recorded by the probe"),
    )
    return next(((reason, detail) for failed, reason, detail in checks if failed), None)


def _block(
    data: _ModelsData, key: tuple[str, str | None, bool]
) -> tuple[tuple[str, str] | None, CpuModel | None, bool]:
    """(why model ``name`` is blocked in this view or None, the model judged, whether it
    resolves per machine type), for ``key`` = (name, superseded by, loose); memoized."""
    name, superseded, loose = key
    model = data.by_name.get(name)
    if loose and model is not None and (model.alias_of is not None or superseded):
        model = _resolved(data, name)
        found = (_model_block(model, None), model, True)
    else:
        found = (_model_block(model, superseded), model, False)
    data.blocks[key] = found
    return found


def _collect(blocks: dict[tuple[str, str], list[str]]) -> tuple[ModelBlock, ...]:
    return tuple(
        ModelBlock(reason, detail, tuple(sorted(hosts))) for (reason, detail), hosts in sorted(blocks.items())
    )


def _collect_views(
    blocks: dict[tuple[str, str], list[_View]], merged: dict[tuple[int, ...], tuple[str, ...]]
) -> tuple[ModelBlock, ...]:
    """``_collect`` of blocks given as views (each view's hosts are sorted already).

    At 10,000 members a hundred models are blocked on the same few sets of
    views ("absent" on every QEMU of one generation): each set's hosts are
    merged and sorted once per judgement (``merged``), not once per model.
    """
    out = []
    for (reason, detail), views in sorted(blocks.items()):
        key = tuple(id(v) for v in views)
        hosts = merged.get(key)
        if hosts is None:
            hosts = merged[key] = (
                tuple(views[0].hosts) if len(views) == 1 else tuple(sorted(h for v in views for h in v.hosts))
            )
        out.append(ModelBlock(reason, detail, hosts))
    return tuple(out)


def _unspeakable(
    names: Iterable[str], vocabularies: Sequence[tuple[frozenset[str], list[str]]]
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


@dataclass(frozen=True)
class Judged:
    """One pool's judgement, kept so that a smaller pool of the same records can reuse it."""

    verdicts: tuple[ModelVerdict, ...]
    #: name -> its first-tier verdict; name -> its second-tier verdict, where one was made.
    strict: dict[str, ModelVerdict]
    loose: dict[str, ModelVerdict]
    superseded_by: dict[str, str]
    #: id of a verdict -> (that verdict, held so the id stays its own; its block reasons, its
    #: smallest block's host count, host -> the reasons left without that host for each host
    #: some block names alone), or None when a block follows the result (``block_summary``).
    _summary: dict[int, tuple[ModelVerdict, tuple[frozenset[str], int, dict[str, frozenset[str]]] | None]] = (
        field(default_factory=dict, compare=False, repr=False)
    )
    #: False for a ``Subpool`` judgement: its dicts hold only the verdicts it built.
    complete: bool = True

    def block_summary(self, v: ModelVerdict) -> tuple[frozenset[str], int, dict[str, frozenset[str]]] | None:
        """``v``'s reasons, smallest block size and reasons left without each lone host, once
        per verdict rather than per what-if: a removal of fewer hosts than every block names
        leaves every reason in place, and a what-if removes one host (a group's label)."""
        held = self._summary.get(id(v))
        if held is not None and held[0] is v:
            return held[1]
        found = None
        if not any(b.reason in _RESULT_REASONS for b in v.blocks):
            lone = {b.hosts[0] for b in v.blocks if len(b.hosts) == 1}
            found = (
                frozenset(b.reason for b in v.blocks),
                min(len(b.hosts) for b in v.blocks),
                {h: frozenset(b.reason for b in v.blocks if b.hosts != (h,)) for h in lone},
            )
        self._summary[id(v)] = (v, found)
        return found


@dataclass(frozen=True)
class Subpool:
    """The pool being judged is ``parent``'s pool without the hosts ``removed``, every
    other member with the very same records.

    Then a model blocked for reasons that belong to the models alone (absent,
    unusable, alias...) stays blocked, as long as its superseded-by text is
    unchanged and some block names a host still in the pool: no member needs
    judging again, and no verdict is built for it. Only a model whose verdict
    may change is judged afresh: a candidate (its spelling follows the
    result), one blocked only on removed hosts, one blocked by feature names
    (they follow the result). Such a judgement holds the candidates alone:
    ``blockers`` judges ~100 such pools, each its pool without one group, and
    asks only which models are candidates and which one is chosen.
    """

    parent: Judged
    removed: frozenset[str]


#: Block reasons that follow the pool's result, not the models: never reused by a Subpool.
_RESULT_REASONS = frozenset({"unknown-feature-name"})


def _naming(views: Sequence[_View], context: JudgingContext) -> tuple[list[str], dict[str, str]]:
    """The model names a pool of these views judges, and each superseded name's versions.

    Both depend on the set of ``models`` tuples alone (names are a sorted set,
    versions a set per base name), so they are memoized on it: the result is
    equal whatever the order or host counts of the views.
    """
    key = tuple(sorted(id(v.data) for v in views))
    found = context.naming.get(key)
    if found is not None:
        return found
    names = sorted(frozenset().union(*(v.data.names for v in views)) - NOT_POOL_MODELS)
    versions: dict[str, set[str]] = {}
    for base, n in frozenset().union(*(v.data.versioned for v in views)):
        versions.setdefault(base, set()).add(n)
    superseded_by: dict[str, str] = {}
    for name in names:
        base, number = split_version(name)
        if number == 0 and base in versions:
            superseded_by[name] = ", ".join(sorted(versions[base], key=split_version)[-3:])
    found = context.naming[key] = (names, superseded_by)
    return found


def judge_models(
    members: Sequence[Member], result: frozenset[str], context: JudgingContext | None = None
) -> tuple[ModelVerdict, ...]:
    """Every model any member lists (host/max/base aside), judged; sorted best candidate first.

    ``context`` may be shared by calls on pools of the same members' records (see ``JudgingContext``).
    """
    return judge(members, result, context).verdicts


def judge(
    members: Sequence[Member],
    result: frozenset[str],
    context: JudgingContext | None = None,
    sub: Subpool | None = None,
) -> Judged:
    """``judge_models`` with what a smaller pool can reuse; ``sub`` says this pool is one.

    With ``sub`` the candidates alone come back: a model the parent's verdict
    still blocks is known to be no candidate without building its verdict
    (building ~280 verdicts per what-if was most of the what-ifs' cost). Such
    a judgement cannot be a parent.
    """
    context = context or JudgingContext()
    views = _views(members, context)
    vocab_hosts: dict[frozenset[str], list[str]] = {}
    for m in members:
        vocab_hosts.setdefault(context.vocabulary(m.vocabulary), []).append(m.host)
    vocabularies = list(vocab_hosts.items())
    names, superseded_by = _naming(views, context)
    before = sub.parent if sub is not None else None
    assert before is None or before.complete, "a Subpool judgement is no parent"
    merged: dict[tuple[int, ...], tuple[str, ...]] = {}

    def verdict(name: str, *, loose: bool) -> ModelVerdict | frozenset[str]:
        """The verdict, or (with ``sub``) the reasons of a model that stays blocked."""
        superseded = superseded_by.get(name)
        if sub is not None and before is not None:
            same = before.superseded_by.get(name) == superseded
            previous = (before.loose if loose else before.strict).get(name)
            still = _still_blocked(previous, sub, same)
            if still:
                return still
        return _judge(name, views, superseded, result, vocabularies, loose=loose, merged=merged)

    strict = {name: verdict(name, loose=False) for name in names}
    loose: dict[str, ModelVerdict | frozenset[str]] = {}
    if not any(isinstance(v, ModelVerdict) and v.candidate for v in strict.values()):
        loose = {
            name: verdict(name, loose=True)
            for name, v in strict.items()
            if (why := _reasons(v)) and why <= RESOLVING
        }
    verdicts = [
        v
        for name, s in strict.items()
        if isinstance(v := loose.get(name, s), ModelVerdict) and (v.candidate or sub is None)
    ]
    context.last = Judged(
        tuple(sorted(verdicts, key=_rank)), _built(strict), _built(loose), superseded_by, complete=sub is None
    )
    return context.last


def _reasons(found: ModelVerdict | frozenset[str]) -> frozenset[str]:
    """The block reasons of a verdict, or the reasons ``_still_blocked`` found."""
    if isinstance(found, frozenset):
        return found
    return frozenset(b.reason for b in found.blocks)


def _built(found: dict[str, ModelVerdict | frozenset[str]]) -> dict[str, ModelVerdict]:
    return {name: v for name, v in found.items() if isinstance(v, ModelVerdict)}


def _still_blocked(previous: ModelVerdict | None, sub: Subpool, same_text: bool) -> frozenset[str]:
    """The reasons still blocking ``previous`` in the smaller pool; empty when it must be
    judged afresh. Builds no verdict: a ``Subpool`` judgement returns candidates alone."""
    if previous is None or previous.candidate or not same_text:
        return frozenset()
    summary = sub.parent.block_summary(previous)
    if summary is None:
        return frozenset()
    removed = sub.removed
    reasons, smallest, without_lone = summary
    if smallest > len(removed):
        return reasons
    if len(removed) == 1 and smallest:
        (host,) = removed
        return without_lone.get(host, reasons)
    # A block vanishes only when the removal takes every host it names (few: test length first).
    return frozenset(
        b.reason
        for b in previous.blocks
        if not (len(b.hosts) <= len(removed) and removed.issuperset(b.hosts))
    )


def _judge(
    name: str,
    views: Sequence[_View],
    superseded: str | None,
    result: frozenset[str],
    vocabularies: Sequence[tuple[frozenset[str], list[str]]],
    *,
    loose: bool,
    merged: dict[tuple[int, ...], tuple[str, ...]],
) -> ModelVerdict:
    """One model for the pool; ``loose`` forgives names that resolve per machine type.
    ``merged`` caches sorted host lists of view sets for one judgement (``_collect_views``)."""
    blocks: dict[tuple[str, str], list[_View]] = {}
    resolves_on: list[str] = []
    models: list[CpuModel] = []
    key = (name, superseded, loose)
    for v in views:
        found = v.data.blocks.get(key)
        why, model, resolves = found if found is not None else _block(v.data, key)
        if resolves:
            resolves_on.extend(v.hosts)
        if why is not None:
            blocks.setdefault(why, []).append(v)
        elif model is not None:
            models.append(model)
    if blocks:
        return ModelVerdict(name, candidate=False, blocks=_collect_views(blocks, merged))
    feature_sets = []
    for v, model in zip(views, models, strict=True):
        fkey = name if model.alias_of is None and v.by_name[name] is model else "=" + name
        feats = v.data.features.get(fkey)
        if feats is None:
            assert model.features is not None  # _model_block refused None
            feats = v.data.features[fkey] = frozenset(model.features)
        feature_sets.append(feats)
    inter = frozenset.intersection(*feature_sets)
    union = frozenset.union(*feature_sets)
    enable = tuple(sorted(result - inter))
    disable = tuple(sorted(union - result))
    bad = _unspeakable(disable, vocabularies)
    if bad:
        return ModelVerdict(name, candidate=False, blocks=_collect(bad))
    return ModelVerdict(
        name,
        candidate=True,
        enable=enable,
        disable=disable,
        own_features=len(inter),
        resolves_on=tuple(sorted(resolves_on)),
    )


def _rank(v: ModelVerdict) -> tuple[int, int, int, int, str]:
    """Candidates first: fewest changes, richest model, highest -vN, then the name."""
    if not v.candidate:
        return (1, 0, 0, 0, v.model)
    return (0, v.cost, -v.own_features, -split_version(v.model)[1], v.model)


def best(verdicts: Sequence[ModelVerdict]) -> ModelVerdict | None:
    """The chosen candidate (``judge_models`` sorts it first), None when there is none."""
    return verdicts[0] if verdicts and verdicts[0].candidate else None
