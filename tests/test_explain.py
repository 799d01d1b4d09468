"""``blockers`` and ``check``, pure: on real CPUs (the replayed captures) and this host's probe.

Every what-if is held against ``compute_baseline`` run on the full members
without that group: the representatives trick (one member per group) must
never change an answer. Where a rule needs a situation no capture shows (a
host with fewer phys-bits, a QEMU defining a model differently), the member
is a real one with that one field changed, and the test says so.
"""

from __future__ import annotations

import dataclasses
import time

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcpu.baseline import Member, Scalars, compute_baseline
from fleetcpu.explain import check_join, explain_blockers
from fleetcpu.explain.blockers import scalar_changes
from fleetcpu.explain.groups import group_members
from fleetcpu.explain.printout import (
    BLOCKERS_JSON_SCHEMA,
    CHECK_JSON_SCHEMA,
    blockers_json,
    blockers_table,
    check_json,
    check_table,
)

from .support.replay import members as replay
from .support.replay.hosts import catalogue

MT = "pc-q35-0.0"


def m(name: str, host: str | None = None, **kw: object) -> Member:
    return replay.member(name, host=host, **kw)


def gold(i: int) -> Member:
    return m("Xeon-Gold-6130", f"gold{i}")


def pool_small() -> list[Member]:
    """Three identical Gold 6130, one E3-1225 v5 (no AVX-512), one Platinum 9242."""
    return [gold(0), gold(1), gold(2), m("Xeon-E3-1225-v5", "e3"), m("Xeon-Platinum-9242", "plat")]


def intel_cpus() -> list[str]:
    return [
        c.name for c in catalogue() if c.kind == "cputest" and replay.member(c.name).vendor == "GenuineIntel"
    ]


# --------------------------------------------------------------------------- groups


def test_groups_join_identical_cpu_data_only() -> None:
    groups = group_members(pool_small())
    assert [g.hosts for g in groups] == [("e3",), ("gold0", "gold1", "gold2"), ("plat",)]
    assert [g.label for g in groups] == ["g1", "g2", "g3"]
    assert groups[1].member.host == "g2" and groups[1].member.offered == gold(0).offered
    # Microcode and collection time never split a group; phys-bits or nesting do.
    other_ucode = dataclasses.replace(gold(3), microcode="0xdead")
    assert len(group_members([gold(0), other_ucode])) == 1
    fewer_bits = dataclasses.replace(gold(3), scalars=dataclasses.replace(gold(3).scalars, phys_bits=39))
    assert len(group_members([gold(0), fewer_bits])) == 2
    nesting = m("Xeon-Gold-6130", "gold9", nested=True)
    assert len(group_members([gold(0), nesting])) == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(intel_cpus()), min_size=1, max_size=12))
def test_representatives_compute_the_full_result(names: list[str]) -> None:
    """One member per group gives the pool's features, model, spelling and scalars."""
    members = [m(n, f"h{i}-{n}") for i, n in enumerate(names)]
    full = compute_baseline("p", MT, "kvm", members)
    reps = [g.member for g in group_members(members)]
    small = compute_baseline("p", MT, "kvm", reps)
    assert (small.features, small.model, small.enable, small.disable, small.scalars) == (
        full.features,
        full.model,
        full.enable,
        full.disable,
        full.scalars,
    )
    x = explain_blockers("p", MT, "kvm", members)  # asserts the same internally
    assert {h for w in x.groups for h in w.hosts} == ({mm.host for mm in members} if len(x.groups) else set())


# --------------------------------------------------------------------------- blockers


def test_what_ifs_are_the_core_without_that_group() -> None:
    members = pool_small()
    x = explain_blockers("prod", MT, "kvm", members)
    base = compute_baseline("prod", MT, "kvm", members)
    assert x.baseline == base
    for w in x.groups:
        rest = [mm for mm in members if mm.host not in w.hosts]
        without = compute_baseline("prod", MT, "kvm", rest)
        assert w.features == tuple(sorted(set(without.features) - set(base.features)))
        assert (w.model_before, w.model_after) == (base.model, without.model)
        assert set(w.new_models) == (
            {v.model for v in without.models if v.candidate} - {v.model for v in base.models if v.candidate}
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(intel_cpus()), st.integers(0, 3)), min_size=2, max_size=9))
def test_every_what_if_is_the_full_core_without_its_group(picks: list[tuple[str, int]]) -> None:
    """Random pools of real CPUs, some with a feature hidden (a kernel, say): the what-ifs
    reuse the pool's model verdicts (``Subpool``); each must equal ``compute_baseline`` on
    every member outside the group, judged from scratch."""
    members = []
    for i, (name, drop) in enumerate(picks):
        mm = m(name, f"h{i}-{name}")
        if drop:
            gone = sorted(mm.offered)[drop * 7 % len(mm.offered)]
            mm = dataclasses.replace(mm, offered=mm.offered - {gone})
        members.append(mm)
    x = explain_blockers("p", MT, "kvm", members)
    base = compute_baseline("p", MT, "kvm", members)
    candidates = {v.model for v in base.models if v.candidate}
    for w in x.groups:
        without = compute_baseline("p", MT, "kvm", [mm for mm in members if mm.host not in w.hosts])
        assert w.features == tuple(sorted(set(without.features) - set(base.features)))
        assert (w.model_before, w.model_after) == (base.model, without.model)
        assert set(w.new_models) == {v.model for v in without.models if v.candidate} - candidates
        assert w.scalars == scalar_changes(base.scalars, without.scalars, raised=True)


def test_cheapest_big_win_first() -> None:
    x = explain_blockers("prod", MT, "kvm", pool_small())
    first, *rest = x.groups
    assert first.hosts == ("e3",)  # one host, and AVX-512 comes back without it
    assert {"avx512f", "avx512bw", "avx512vl"} <= set(first.features)
    assert first.model_after != first.model_before
    assert first.score > max(w.score for w in rest)
    assert x.groups[-1].hosts == ("plat",) and not x.groups[-1].gains  # the richest host costs nothing
    table = blockers_table(x)
    assert table.index("hosts: e3") < table.index("hosts: gold0, gold1, gold2")


def test_blocked_features_and_models_name_hosts_and_reasons() -> None:
    x = explain_blockers("prod", MT, "kvm", pool_small())
    by_feature = {(f.feature, f.reason): f.hosts for f in x.features}
    assert by_feature[("avx512f", "not-offered")] == ("e3",)
    assert by_feature[("avx512vnni", "not-offered")] == ("e3", "gold0", "gold1", "gold2")
    models = {mb.model: mb for mb in x.models}
    cascade = models["Cascadelake-Server-v1"]
    unusable = [b for b in cascade.blocks if b.reason == "unusable"]
    assert unusable and unusable[0].hosts == ("gold0", "gold1", "gold2")
    assert "avx512vnni" in unusable[0].detail
    assert cascade.by_some_hosts and "plat" not in cascade.hosts
    # A naming rule is not something removing hosts fixes.
    alias_or_superseded = [mb for mb in x.models if {b.reason for b in mb.blocks} <= {"alias", "superseded"}]
    assert alias_or_superseded and not any(mb.by_some_hosts for mb in alias_or_superseded)
    doc = blockers_json(x)
    jsonschema.validate(doc, BLOCKERS_JSON_SCHEMA)
    assert doc["groups"][0]["gain"]["features"][:2] == ["arch-capabilities", "avx512bw"]
    broken = dict(doc, groups=[{"label": "g1"}])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, BLOCKERS_JSON_SCHEMA)


def test_one_cpu_type_has_nothing_to_remove() -> None:
    x = explain_blockers("p", MT, "kvm", [gold(0), gold(1)])
    assert x.groups == ()
    assert "no host removal changes the result" in blockers_table(x)


def test_policy_blocks_name_no_hosts() -> None:
    x = explain_blockers("p", MT, "kvm", [m("Xeon-Platinum-9242", "n0", nested=True)])
    nested = [f for f in x.features if f.reason == "nested-policy"]
    assert nested and all(f.hosts == () for f in nested)
    assert "nested-policy (policy): " in blockers_table(x)


def test_ten_thousand_members_take_about_a_second() -> None:
    """Shared records, as the store hands them; benchmarks/explain_bench.py has the figures."""
    names = intel_cpus()
    protos = [m(n) for n in names]
    members = [dataclasses.replace(protos[i % len(protos)], host=f"kvm{i:05d}") for i in range(10_000)]
    start = time.perf_counter()
    x = explain_blockers("big", MT, "kvm", members)
    elapsed = time.perf_counter() - start
    assert len(x.groups) == len({(p.offered, id(p.models), p.scalars) for p in protos})
    assert sum(len(w.hosts) for w in x.groups) == 10_000
    assert elapsed < 6.0, f"{elapsed:.2f}s for 10,000 members"


# --------------------------------------------------------------------------- check


def test_a_poorer_newcomer_is_refused_with_everything_it_takes_away() -> None:
    pool = [gold(0), gold(1)]
    e3 = m("Xeon-E3-1225-v5", "e3")
    c = check_join("prod", MT, "kvm", pool, e3, source="store")
    before = compute_baseline("prod", MT, "kvm", pool)
    after = compute_baseline("prod", MT, "kvm", [*pool, e3])
    assert not c.can_join and not c.member
    removed = [ch.feature for ch in c.changes if ch.kind == "feature-removed"]
    assert removed == sorted(set(before.features) - set(after.features))
    assert "avx512f" in removed
    assert {ch.kind for ch in c.changes} == {"feature-removed", "model-changed"}
    [model] = [ch for ch in c.changes if ch.kind == "model-changed"]
    assert (model.before, model.after) == (before.model, after.model)
    assert f"{before.model} on e3: absent" in model.message
    assert c.summary().startswith(f"e3 would lower pool prod: removes {len(removed)} feature(s)")
    jsonschema.validate(check_json(c), CHECK_JSON_SCHEMA)
    assert "CANNOT join" in check_table(c)


def test_an_equal_or_richer_host_joins() -> None:
    pool = [gold(0), gold(1)]
    for newcomer in (gold(7), m("Xeon-Platinum-9242", "plat")):
        c = check_join("prod", MT, "kvm", pool, newcomer, source="document")
        assert c.can_join and c.changes == (), c.changes
        assert c.before is not None and c.after is not None
        assert (c.before.cpu, c.before.custom) == (c.after.cpu, c.after.custom)
    richer = check_join("prod", MT, "kvm", pool, m("Xeon-Platinum-9242", "plat"), source="store")
    assert any(w.startswith("security-feature-mixed:") for w in richer.new_warnings)
    jsonschema.validate(check_json(richer), CHECK_JSON_SCHEMA)


def test_a_scalar_drop_alone_refuses() -> None:
    """No capture records phys-bits: the pool and the newcomer are given them."""

    def bits(mm: Member, n: int) -> Member:
        return dataclasses.replace(mm, scalars=dataclasses.replace(mm.scalars, phys_bits=n))

    pool = [bits(gold(0), 46), bits(gold(1), 46)]
    c = check_join("prod", MT, "kvm", pool, bits(gold(2), 39), source="store")
    assert [(ch.kind, ch.feature, ch.before, ch.after) for ch in c.changes] == [
        ("scalar-dropped", "phys-bits", 46, 39)
    ]
    older = dataclasses.replace(gold(3), scalars=Scalars(6, 85, 2, 13, 0x80000008, None))
    c = check_join("prod", MT, "kvm", [gold(0)], older, source="store")
    assert [ch.feature for ch in c.changes] == ["family/model/stepping"]
    assert c.changes[0].message == "family/model/stepping drops from 6/85/4 to 6/85/2"


def test_a_qemu_defining_the_model_differently_changes_the_spelling() -> None:
    """The same CPU whose QEMU's models all enable one more feature the pool lacks.

    (Every model, so the ranking stays and the chosen model with it: only the
    explicit ``-feat`` list changes.)
    """
    pool = [gold(0), gold(1)]
    chosen = compute_baseline("prod", MT, "kvm", pool).model
    extra = "avx512vnni"  # not offered by a Gold 6130, known to its QEMU
    assert extra in gold(0).vocabulary and extra not in gold(0).offered
    models = tuple(
        dataclasses.replace(c, features=(*c.features, extra)) if c.features is not None else c
        for c in gold(2).models
    )
    other_qemu = dataclasses.replace(gold(2), models=models)
    c = check_join("prod", MT, "kvm", pool, other_qemu, source="document")
    assert [ch.kind for ch in c.changes] == ["spelling-changed"]
    assert c.after is not None and c.after.model == chosen and f"-{extra}" in c.after.cpu
    assert c.changes[0].after == c.after.cpu
    assert c.changes[0].message.endswith(f"loses nothing and gains -{extra}")


def test_another_vendor_is_refused() -> None:
    c = check_join("prod", MT, "kvm", [gold(0)], m("EPYC-7601-32-Core", "amd"), source="store")
    assert not c.can_join and [ch.kind for ch in c.changes] == ["vendor-differs"]
    assert "AuthenticAMD" in c.changes[0].message and c.after is None
    jsonschema.validate(check_json(c), CHECK_JSON_SCHEMA)


def test_a_member_is_compared_with_the_pool_without_it() -> None:
    pool = [gold(0), gold(1), m("Xeon-E3-1225-v5", "e3")]
    c = check_join("prod", MT, "kvm", pool, pool[2], source="store")
    assert c.member and not c.can_join  # e3 holds the pool back
    assert c.before == compute_baseline("prod", MT, "kvm", pool[:2])
    alone = check_join("prod", MT, "kvm", [gold(0)], gold(0), source="store")
    assert alone.can_join and alone.member and alone.before is None


def test_the_pure_core_loads_no_store_libraries() -> None:
    """explain, libvirt and render stay pure: the store (pyarrow, pandas) is the CLI's business."""
    import subprocess
    import sys

    code = (
        "import sys, fleetcpu.explain, fleetcpu.explain.printout, fleetcpu.libvirt, "
        "fleetcpu.export, fleetcpu.export.libvirt_xml, fleetcpu.export.proxmox_conf; print(sorted(m for m"
        " in ('pyarrow', 'pandas', 'fleetcpu.store') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
