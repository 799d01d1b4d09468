"""Properties of the pool baseline over the real CPUs of ``../shared/realdata``.

Pools are drawn from the 45 captured hosts (and the three TCG passes), each
made a ``Member`` by ``tests/support/replay/members.py``: the stand-in's own answers,
decoded by the probe's decoders, named models' features by the one cpu_map
rule. A drawn pool may hold one capture several times (renamed), as a real
fleet of one CPU type does. Feature-set properties use every host; model
properties the hosts whose capture has ``query-cpu-definitions``.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcpu.baseline import Baseline, Member, Policy, compute_baseline
from fleetcpu.probe.document import CpuModel
from fleetcpu.probe.features import NON_MIGRATABLE, is_nested

from .support.replay import members as replay
from .support.replay.hosts import catalogue

EXAMPLES = settings(max_examples=200, deadline=None)
PERMISSIVE = Policy(non_migratable=True, nested=True)


def _by_vendor(accel: str, with_models: bool) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for cap in catalogue():
        if accel not in replay.accels(cap.name):
            continue
        m = replay.member(cap.name, accel)
        if with_models and not any(c.features for c in m.models):
            continue
        assert m.vendor is not None
        out.setdefault(m.vendor, []).append(cap.name)
    return out


ALL_KVM = _by_vendor("kvm", with_models=False)
DEFS_KVM = _by_vendor("kvm", with_models=True)
ALL_TCG = _by_vendor("tcg", with_models=False)


def test_the_fleet_is_the_real_one() -> None:
    """Guard the strategies: every capture is drawn from, and the model pools are not empty."""
    assert sum(len(v) for v in ALL_KVM.values()) == len(catalogue()) == 45
    assert set(ALL_KVM) == {"GenuineIntel", "AuthenticAMD", "HygonGenuine"}
    assert sum(len(v) for v in DEFS_KVM.values()) == 24
    assert sum(len(v) for v in ALL_TCG.values()) == 3


@st.composite
def pools(
    draw: st.DrawFn, by_vendor: dict[str, list[str]], accel: str = "kvm", max_size: int = 6
) -> list[Member]:
    """A pool of one vendor's hosts; a capture drawn twice becomes two hosts."""
    vendor = draw(st.sampled_from(sorted(by_vendor)))
    names = draw(st.lists(st.sampled_from(by_vendor[vendor]), min_size=1, max_size=max_size))
    return [replay.member(name, accel, host=f"{name}#{i}") for i, name in enumerate(names)]


def baseline(members: list[Member], accel: str = "kvm", policy: Policy | None = None) -> Baseline:
    return compute_baseline("pool", "pc-q35-test", accel, members, policy)


def assert_named_string_yields_result(b: Baseline, members: list[Member]) -> None:
    """enable/disable against each member's own model features give exactly the result."""
    assert set(b.enable) <= set(b.features)
    assert not set(b.disable) & set(b.features)
    for m in members:
        if b.model == "base":
            own: frozenset[str] = frozenset()
        else:
            model = resolved(m, b.model)
            assert model.features is not None
            own = frozenset(model.features)
        assert (own | set(b.enable)) - set(b.disable) == set(b.features), m.host


def resolved(m: Member, name: str) -> CpuModel:
    """What ``-cpu name`` means on this member: the model, or its alias target."""
    [model] = [c for c in m.models if c.name == name]
    if model.alias_of is None:
        return model
    [target] = [c for c in m.models if c.name == model.alias_of]
    return target


@EXAMPLES
@given(pools(ALL_KVM))
def test_result_is_offered_by_every_member(members: list[Member]) -> None:
    b = baseline(members)
    for m in members:
        assert set(b.features) <= m.offered, m.host
    assert b.custom.endswith(",".join("+" + f for f in b.features)) or not b.features


@EXAMPLES
@given(pools(ALL_KVM), st.randoms(use_true_random=False))
def test_member_order_does_not_matter(members: list[Member], rnd: object) -> None:
    shuffled = list(members)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert baseline(shuffled) == baseline(members)


@EXAMPLES
@given(pools(ALL_KVM), st.data())
def test_adding_a_member_never_adds_a_feature(members: list[Member], data: st.DataObject) -> None:
    vendor = members[0].vendor
    assert vendor is not None
    extra = data.draw(st.sampled_from(ALL_KVM[vendor]))
    before = set(baseline(members).features)
    after = set(baseline([*members, replay.member(extra, host="extra")]).features)
    assert after <= before


@EXAMPLES
@given(pools(ALL_KVM), st.data())
def test_removing_a_feature_from_a_member_removes_it(members: list[Member], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(members) - 1))
    feature = data.draw(st.sampled_from(sorted(members[i].offered)))
    before = set(baseline(members).features)
    changed = list(members)
    changed[i] = dataclasses.replace(members[i], offered=members[i].offered - {feature})
    after = set(baseline(changed).features)
    assert feature not in after
    assert after == before - {feature}


@EXAMPLES
@given(st.sampled_from([c.name for c in catalogue()]), st.booleans())
def test_a_pool_of_one_host_gets_its_usable_best(name: str, nested: bool) -> None:
    m = replay.member(name, nested=nested)
    everything = baseline([m], policy=PERMISSIVE)
    expected = m.offered if nested else {f for f in m.offered if not is_nested(f)}
    assert set(everything.features) == expected
    default = baseline([m])
    assert set(default.features) == {f for f in m.offered if not is_nested(f) and f not in NON_MIGRATABLE}
    # The named model is the best this host's QEMU can spell it with.
    candidates = [v for v in default.models if v.candidate]
    if candidates:
        assert default.model == candidates[0].model
        assert all(default.enable.__len__() + default.disable.__len__() <= v.cost for v in candidates)


@EXAMPLES
@given(pools(DEFS_KVM))
def test_named_model_is_usable_on_every_member(members: list[Member]) -> None:
    b = baseline(members)
    if b.model == "base":
        assert any(w.code == "no-common-model" for w in b.warnings)
        assert b.cpu == b.custom
        return
    assert b.cpu.startswith(b.model + ",") or b.cpu == b.model
    [verdict] = [v for v in b.models if v.model == b.model]
    for m in members:
        [model] = [c for c in m.models if c.name == b.model]
        assert model.usable and not model.deprecated and model.migration_safe is True, m.host
        # A name that moves with the machine type only when no stable one was common.
        assert model.alias_of is None or m.host in verdict.resolves_on, m.host
        assert resolved(m, b.model).features is not None
    if verdict.resolves_on:
        assert not [v for v in b.models if v.candidate and not v.resolves_on]
        assert any(w.code == "model-resolves-per-machine-type" for w in b.warnings)
    assert_named_string_yields_result(b, members)


@EXAMPLES
@given(pools(ALL_KVM))
def test_enable_and_disable_bracket_the_result(members: list[Member]) -> None:
    b = baseline(members)
    assert_named_string_yields_result(b, members)
    assert b.features == tuple(sorted(b.features))
    assert b.enable == tuple(sorted(b.enable)) and b.disable == tuple(sorted(b.disable))


@EXAMPLES
@given(pools(ALL_TCG, accel="tcg"))
def test_tcg_pools_hold_the_same_properties(members: list[Member]) -> None:
    b = baseline(members, accel="tcg")
    assert b.accel == "tcg"
    for m in members:
        assert set(b.features) <= m.offered
    assert_named_string_yields_result(b, members)
    assert not any(f.startswith("kvm") for f in b.features), "TCG offers no KVM PV features"


@pytest.mark.parametrize("vendor", sorted(DEFS_KVM))
def test_a_whole_vendor_fleet(vendor: str) -> None:
    """Every captured host of a vendor at once: the largest real pool the data allows."""
    members = [replay.member(n) for n in ALL_KVM[vendor]]
    b = baseline(members)
    for m in members:
        assert set(b.features) <= m.offered
    assert_named_string_yields_result(b, members)
    lacking = {blk.feature for blk in b.blocked if blk.reason == "not-offered"}
    union = frozenset.union(*(m.offered for m in members))
    common = frozenset.intersection(*(m.offered for m in members))
    assert lacking == union - common
