"""The pure core, one rule at a time, on real hosts (``tests/support/replay/members.py``) and this host.

Where a rule needs a situation no capture shows (a host offering invtsc, two
QEMUs disagreeing about a model), the member is a real one with exactly that
one field changed, and the test says so.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

import fleetcpu.baseline
from fleetcpu.baseline import (
    Baseline,
    Member,
    Policy,
    compute_baseline,
    member_from_probe,
)
from fleetcpu.baseline.choose import judge_models, split_version
from fleetcpu.baseline.cpuarg import MODEL_ID
from fleetcpu.baseline.machine import choose_machine_type, family_version, newest
from fleetcpu.baseline.select import classify
from fleetcpu.errors import MixedVendorsError, NoCommonMachineTypeError, NoUsableDataError
from fleetcpu.export import FORMATS, render
from fleetcpu.export.json_doc import to_json
from fleetcpu.probe.document import CpuModel
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.probe.features import KVM_PV, NESTED, is_nested
from fleetcpu.store import AccelLatest, HostState

from .conftest import REPO
from .support.replay import members as replay

SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "baseline-1.json").read_text())
GOLDEN = REPO / "tests" / "golden"


def compute(members: list[Member], policy: Policy | None = None, accel: str = "kvm") -> Baseline:
    b = compute_baseline("pool", "pc-q35-test", accel, members, policy)
    jsonschema.validate(to_json(b), SCHEMA)  # every baseline any test makes obeys the contract
    return b


def golden_member(name: str, host: str = "vm") -> Member:
    doc = document_from_json((GOLDEN / name).read_text(), name)
    assert doc.qemu is not None
    [mp] = doc.machine_types
    return member_from_probe(host, mp.accel, doc.qemu.version, datetime(2026, 1, 1, tzinfo=UTC), doc.host, mp)


def codes(b: Baseline) -> list[str]:
    return [w.code for w in b.warnings]


# --------------------------------------------------------------------------- this host


def test_this_host_under_kvm_is_pentium3_plus_features() -> None:
    """The paravirtualized nested KVM here hides SSE3+, so only old models are usable."""
    b = compute([golden_member("probe-kvm-q35.json")])
    assert b.model == "pentium3-v1" and b.disable == ()
    assert b.vendor == "AuthenticAMD"
    assert "pni" not in b.features and "sse2" in b.enable and "lm" in b.enable
    assert b.cpu == ("pentium3-v1,vendor=AuthenticAMD,phys-bits=48," + ",".join("+" + f for f in b.enable))
    assert b.custom.startswith(
        "base,vendor=AuthenticAMD,family=25,model=17,stepping=1,level=28,xlevel=0x80000021,"
        f"phys-bits=48,model-id={MODEL_ID},+"
    )
    assert b.custom.split(f"model-id={MODEL_ID},")[1].split(",") == ["+" + f for f in b.features]
    assert b.warnings == () and b.missing == ()


def test_this_host_under_tcg_is_westmere_plus_features() -> None:
    b = compute([golden_member("probe-tcg-i440fx-2.0.json")], accel="tcg")
    assert (b.model, b.machine_type, b.accel) == ("Westmere-v1", "pc-q35-test", "tcg")
    assert not set(b.features) & KVM_PV
    assert "svm" not in b.features  # TCG's max offers it; nesting is opt-in
    assert {blk.feature for blk in b.blocked if blk.reason == "nested-policy"} == {
        f for f in golden_member("probe-tcg-i440fx-2.0.json").offered if is_nested(f)
    }


def test_os_controlled_bits_are_never_offered() -> None:
    m = golden_member("probe-kvm-q35.json")
    exp_doc = json.loads((GOLDEN / "probe-kvm-q35.json").read_text())
    static = exp_doc["machine_types"][0]["static_expansion"]["features"]
    assert {k for k, v in static.items() if v} - m.offered <= {"osxsave", "ospke"}


# --------------------------------------------------------------------------- refusals


def test_mixed_vendors_is_exit_23_naming_hosts_per_vendor() -> None:
    pool = [
        replay.member("Xeon-Gold-6130"),
        replay.member("Ryzen-9-3900X-12-Core"),
        replay.member("Hygon-C86-7185-32-core"),
    ]
    with pytest.raises(MixedVendorsError) as err:
        compute(pool)
    assert err.value.exit_code == 23
    assert (
        "AuthenticAMD: Ryzen-9-3900X-12-Core; GenuineIntel: Xeon-Gold-6130; "
        "HygonGenuine: Hygon-C86-7185-32-core"
    ) in err.value.message


def test_no_member_is_exit_21() -> None:
    with pytest.raises(NoUsableDataError) as err:
        compute([])
    assert err.value.exit_code == 21


def test_a_member_of_another_accelerator_is_a_bug() -> None:
    with pytest.raises(ValueError, match="has tcg data"):
        compute([replay.member("qemu-8.2-Ryzen-9-3900X", "tcg")], accel="kvm")


def test_a_host_given_twice_is_a_bug() -> None:
    m = replay.member("Xeon-Gold-6130")
    with pytest.raises(ValueError, match="given twice"):
        compute([m, m])


# --------------------------------------------------------------------------- policy


def test_non_migratable_out_unless_allowed() -> None:
    """No capture offers invtsc (libvirt probed migratable CPUs): one host is given it."""
    real = replay.member("Xeon-Gold-6130")
    with_invtsc = dataclasses.replace(real, offered=real.offered | {"invtsc"})
    b = compute([with_invtsc])
    assert "invtsc" not in b.features
    [blk] = [x for x in b.blocked if x.feature == "invtsc"]
    assert blk.reason == "non-migratable" and blk.hosts == ()
    assert "invtsc" in compute([with_invtsc], Policy(non_migratable=True)).features
    both = [with_invtsc, dataclasses.replace(real, host="other")]
    assert "invtsc" not in compute(both, Policy(non_migratable=True)).features


def test_nested_only_with_the_flag_and_nesting_everywhere() -> None:
    on = [replay.member("Xeon-Platinum-9242", host=f"n{i}", nested=True) for i in range(2)]
    vmx = {f for f in on[0].offered if is_nested(f)}
    assert "vmx" in vmx and len(vmx) > 60
    default = compute(on)
    assert not {f for f in default.features if is_nested(f)}
    assert {b.feature for b in default.blocked if b.reason == "nested-policy"} == vmx
    nested = compute(on, Policy(nested=True))
    assert vmx <= set(nested.features) and "nested-unavailable" not in codes(nested)
    off = [*on, replay.member("Xeon-Platinum-9242", host="n-off", nested=False)]
    refused = compute(off, Policy(nested=True))
    assert not {f for f in refused.features if is_nested(f)}
    [w] = [w for w in refused.warnings if w.code == "nested-unavailable"]
    assert w.hosts == ("n-off",)
    assert {b.hosts for b in refused.blocked if b.reason == "nested-off"} == {("n-off",)}


def test_nesting_facts_do_not_matter_under_tcg() -> None:
    m = replay.member("qemu-8.2-Ryzen-9-3900X", "tcg", nested=False)
    assert {"svm", "npt"} <= m.offered
    assert {"svm", "npt"} <= set(compute([m], Policy(nested=True), accel="tcg").features)


def test_kvm_pv_features_only_when_every_member_offers_them() -> None:
    rich, poor = replay.member("Xeon-Gold-6130"), replay.member("Xeon-E3-1225-v5")
    extra = (rich.offered - poor.offered) & KVM_PV
    assert extra, "the two hosts' kernels offer different KVM PV features"
    b = compute([rich, poor])
    assert set(b.features) & KVM_PV == rich.offered & poor.offered & KVM_PV
    for name in extra:
        [blk] = [x for x in b.blocked if x.feature == name]
        assert blk.reason == "not-offered" and blk.hosts == (poor.host,)
        assert "KVM paravirtual" in blk.message
    assert compute([rich]).features != b.features
    dropped = compute([rich, poor], Policy(kvm_pv=False))
    assert not set(dropped.features) & KVM_PV
    assert {x.feature for x in dropped.blocked if x.reason == "kvm-pv-policy"} == (
        rich.offered & poor.offered & KVM_PV
    )


def test_tsx_flagged_when_microcode_differs() -> None:
    a = replay.member("Xeon-E3-1225-v5", host="a", microcode="0xd6")
    b_same = replay.member("Xeon-E3-1245-v5", host="b", microcode="0xd6")
    b_new = replay.member("Xeon-E3-1245-v5", host="b", microcode="0xea")
    assert {"hle", "rtm"} <= a.offered & b_same.offered
    assert "tsx-microcode-differs" not in codes(compute([a, b_same]))
    flagged = compute([a, b_new])
    tsx = [w for w in flagged.warnings if w.code == "tsx-microcode-differs"]
    assert [w.feature for w in tsx] == ["hle", "rtm"]
    assert all(w.hosts == ("a", "b") and "0xd6: a; 0xea: b" in w.message for w in tsx)
    assert {"hle", "rtm"} <= set(flagged.features)  # flagged, not dropped
    no_tsx = compute([a, b_new], Policy(tsx=False))
    assert not {"hle", "rtm"} & set(no_tsx.features)
    assert "tsx-microcode-differs" not in codes(no_tsx)
    assert {x.feature for x in no_tsx.blocked if x.reason == "tsx-policy"} == {"hle", "rtm"}


def test_security_feature_some_lack_names_them_and_their_microcode() -> None:
    has = replay.member("Xeon-E3-1225-v5", host="patched", microcode="0xd6")
    lacks = replay.member("Xeon-E3-1245-v5", host="old", microcode="0x8e")
    b = compute([has, lacks])
    sec = {w.feature: w for w in b.warnings if w.code == "security-feature-mixed"}
    assert set(sec) == {"md-clear", "spec-ctrl", "ssbd", "stibp"}
    assert all(w.hosts == ("old",) and "old (microcode 0x8e)" in w.message for w in sec.values())
    assert not set(sec) & set(b.features)


# --------------------------------------------------------------------------- scalars


def test_scalars_smallest_signature_and_minimum_levels() -> None:
    pool = [
        replay.member("Xeon-Gold-6130"),
        replay.member("Xeon-Platinum-9242"),
        replay.member("Core-i7-2600"),
    ]
    b = compute(pool)
    assert (b.scalars.family, b.scalars.model, b.scalars.stepping) == (6, 42, 7)  # Core-i7-2600
    assert b.scalars.level == min(m.scalars.level or 99 for m in pool) == 13
    assert b.scalars.xlevel == 0x80000008
    assert b.scalars.phys_bits is None  # the captures never hold a vCPU's phys-bits
    assert "family=6,model=42,stepping=7,level=13,xlevel=0x80000008,model-id" in b.custom
    [w] = [w for w in b.warnings if w.code == "scalar-unknown"]
    assert "phys-bits" in w.message and len(w.hosts) == 3


def test_unknown_scalars_on_some_members_are_warned_about() -> None:
    known = replay.member("Core-i7-2600")
    unknown = replay.member("Core-i5-2500")  # capture without level/xlevel
    assert known.scalars.level is not None and unknown.scalars.level is None
    b = compute([known, unknown])
    assert b.scalars.level == known.scalars.level
    levels = [w for w in b.warnings if w.code == "scalar-unknown" and w.message.startswith("level")]
    assert [w.hosts for w in levels] == [("Core-i5-2500",)]


# --------------------------------------------------------------------------- the model


def test_versioned_names_preferred_over_unversioned_twins() -> None:
    """QEMU 4.1-era captures list Skylake-Server and -v1 without alias-of."""
    m = replay.member("Xeon-Gold-6130")
    names = {c.name: c for c in m.models}
    assert names["Skylake-Server"].alias_of is None and "Skylake-Server-v1" in names
    b = compute([m])
    verdicts = {v.model: v for v in b.models}
    assert verdicts["Skylake-Server"].blocks[0].reason == "superseded"
    assert b.model == "Skylake-Server-v2"


def test_alias_and_unusable_models_are_never_candidates() -> None:
    m = replay.member("qemu-10.0-Ryzen-9-3900X")
    verdicts = {v.model: v for v in compute([m]).models}
    assert verdicts["EPYC"].blocks[0].reason == "alias"
    unusable = [c.name for c in m.models if c.unavailable_features and c.alias_of is None]
    assert unusable
    for name in unusable:
        assert verdicts[name].blocks[0].reason == "unusable"
        assert verdicts[name].blocks[0].hosts == (m.host,)


def test_qemus_disagreeing_about_a_model_still_yield_the_result() -> None:
    """Two QEMUs give the chosen model different features: the string works on both."""
    a = replay.member("qemu-8.2-Ryzen-9-3900X", host="a")
    b0 = compute([a])
    model = b0.model
    assert model != "base"
    dropped = sorted(set(next(c.features or () for c in a.models if c.name == model)) & set(b0.features))[0]
    other_models = tuple(
        dataclasses.replace(c, features=tuple(f for f in c.features or () if f != dropped))
        if c.name == model
        else c
        for c in a.models
    )
    b = dataclasses.replace(a, host="b", models=other_models)
    both = compute([a, b])
    assert both.model == model and dropped in both.enable
    for m in (a, b):
        [c] = [c for c in m.models if c.name == model]
        assert (set(c.features or ()) | set(both.enable)) - set(both.disable) == set(both.features)


def test_a_disable_name_some_qemu_lacks_rules_the_model_out() -> None:
    a = replay.member("qemu-10.0-Ryzen-9-3900X", host="a")
    chosen = compute([a]).model
    extra = "a-feature-only-qemu-a-has"
    models = tuple(
        dataclasses.replace(c, features=(*(c.features or ()), extra)) if c.name == chosen else c
        for c in a.models
    )
    knows = dataclasses.replace(a, models=models, vocabulary=a.vocabulary | {extra})
    lacks = dataclasses.replace(a, host="b")
    verdicts = {v.model: v for v in judge_models([knows, lacks], frozenset(compute([a]).features))}
    [blk] = verdicts[chosen].blocks
    assert blk.reason == "unknown-feature-name" and blk.hosts == ("b",) and extra in blk.detail
    assert compute([knows, lacks]).model != chosen


def test_ties_by_richness_then_version_then_name() -> None:
    m = golden_member("probe-kvm-q35.json")
    p3 = next(c for c in m.models if c.name == "pentium3-v1")
    twins = (
        dataclasses.replace(p3, name="pentium3-v2"),
        dataclasses.replace(p3, name="pentium3-v10"),
        dataclasses.replace(p3, name="apentium3-v10"),
    )
    b = compute([dataclasses.replace(m, models=(*m.models, *twins))])
    assert b.model == "apentium3-v10"  # same cost, same richness, v10 > v2 > v1, then the name
    ranked = [v.model for v in b.models if v.candidate][:4]
    assert ranked == ["apentium3-v10", "pentium3-v10", "pentium3-v2", "pentium3-v1"]
    assert split_version("EPYC-Rome-v2") == ("EPYC-Rome", 2) and split_version("486") == ("486", 0)


def test_no_candidate_falls_back_to_base_spelt_in_full() -> None:
    b = compute([replay.member("Xeon-Gold-6148")])  # a capture without query-cpu-definitions
    assert (b.model, b.disable) == ("base", ())
    assert b.enable == b.features and b.cpu == b.custom
    assert "no-common-model" in codes(b)


def test_mixed_qemu_generations_fall_back_to_a_resolving_name() -> None:
    """Naples' QEMU has no -vN names, Rome's makes the old names aliases: no stable name is
    common, so the second tier picks a name resolved per machine type, and warns."""
    naples = replay.member("EPYC-7601-32-Core-ibpb", host="naples")
    rome = replay.member("Ryzen-9-3900X-12-Core", host="rome")
    assert not any(split_version(c.name)[1] for c in naples.models)
    b = compute([naples, rome])
    assert b.model != "base"
    chosen = next(v for v in b.models if v.model == b.model)
    assert chosen.candidate and chosen.resolves_on
    assert "model-resolves-per-machine-type" in codes(b)
    # The string is still exact on both: each member's resolved model plus the changes.
    for m in (naples, rome):
        c = next(c for c in m.models if c.name == b.model)
        target = next(t for t in m.models if t.name == (c.alias_of or c.name))
        assert not c.unavailable_features
        assert (set(target.features or ()) | set(b.enable)) - set(b.disable) == set(b.features)
    # A stable name common to every member always wins over a resolving one.
    assert not compute([rome]).models[0].resolves_on
    assert "model-resolves-per-machine-type" not in codes(compute([rome]))


def test_models_missing_on_one_member_are_absent_there() -> None:
    old, new = replay.member("qemu-8.2-Ryzen-9-3900X"), replay.member("qemu-10.0-Ryzen-9-3900X")
    verdicts = {v.model: v for v in compute([old, new]).models}
    assert verdicts["YongFeng-v1"].blocks[0].reason == "absent"
    assert verdicts["YongFeng-v1"].blocks[0].hosts == (old.host,)


# --------------------------------------------------------------------------- machine types


def test_machine_type_order_is_numeric_within_a_family() -> None:
    assert family_version("pc-q35-10.0") == ("pc-q35", (10, 0))
    assert family_version("pc-q35-rhel9.2.0") == ("pc-q35-rhel", (9, 2, 0))
    assert newest({"pc-q35-9.2", "pc-q35-10.0", "pc-q35-2.12"}) == "pc-q35-10.0"
    assert newest({"pc-i440fx-9.2", "pc-q35-7.2", "none"}) == "pc-q35-7.2"
    assert newest({"none"}) is None


def test_machine_type_choice() -> None:
    probed = {
        "a": {"pc-q35-7.2": "q35", "pc-i440fx-7.2": "pc-i440fx-7.2"},
        "b": {"pc-q35-8.2": "q35", "pc-i440fx-7.2": "pc-i440fx-7.2"},
    }
    assert choose_machine_type(probed) == ("pc-i440fx-7.2", [])
    assert choose_machine_type(probed, explicit="pc-i440fx-7.2")[0] == "pc-i440fx-7.2"
    chosen, notices = choose_machine_type(probed, declared=("pc-q35-7.2", "pc-i440fx-7.2"))
    assert chosen == "pc-i440fx-7.2"
    assert [n.code for n in notices] == ["other-declared-machine-types"]
    with pytest.raises(NoCommonMachineTypeError) as err:
        choose_machine_type(probed, explicit="pc-q35-7.2")
    assert err.value.exit_code == 22
    assert "not probed on 1 of 2 members (b has pc-q35-8.2, pc-i440fx-7.2)" in err.value.message
    with pytest.raises(NoCommonMachineTypeError, match="alias standing for different"):
        choose_machine_type(probed, explicit="q35")
    same = {"a": {"pc-q35-7.2": "q35"}, "b": {"pc-q35-7.2": "q35"}}
    assert choose_machine_type(same, explicit="q35")[0] == "pc-q35-7.2"
    apart = {"a": {"pc-q35-7.2": "q35"}, "b": {"pc-q35-8.2": "q35"}}
    with pytest.raises(NoCommonMachineTypeError) as err:
        choose_machine_type(apart)
    assert "a has pc-q35-7.2; b has pc-q35-8.2" in err.value.message
    assert "machine_types=" in err.value.message
    with pytest.raises(NoCommonMachineTypeError, match=r"declares machine_types=pc-q35-9\.2"):
        choose_machine_type(apart, declared=("pc-q35-9.2",))


# --------------------------------------------------------------------------- member selection


NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def state(
    host: str,
    *,
    status: str = "ok",
    accel: str | None = "kvm",
    kvm_age: timedelta | None = timedelta(hours=1),
    tcg_age: timedelta | None = None,
    age: timedelta = timedelta(hours=1),
) -> HostState:
    def slot(a: timedelta | None, tag: str) -> AccelLatest | None:
        if a is None:
            return None
        run = "latest" if a == age and status == "ok" and accel == tag else f"{tag}-run"
        return AccelLatest(run, NOW - a, run, "digest")

    return HostState(
        host=host,
        pool="p",
        run="latest",
        collected_at=NOW - age,
        status=status,
        stage=None if status == "ok" else "connect",
        error=None if status == "ok" else "ssh: connection refused",
        error_code=None,
        accel=accel,
        qemu_version="7.2.0",
        cpu_digest=None,
        detail_run=None,
        kvm=slot(kvm_age, "kvm"),
        tcg=slot(tcg_age, "tcg"),
    )


def test_classify_missing_codes_and_warnings() -> None:
    states = [
        state("fresh"),
        state("stale", kvm_age=timedelta(days=8), age=timedelta(days=8)),
        state("tcg-only", accel="tcg", kvm_age=None, tcg_age=timedelta(hours=1)),
        state("never", status="failed", accel=None, kvm_age=None),
        state("flaky", status="failed", accel=None, kvm_age=timedelta(days=2)),
        state("fell-back", accel="tcg", kvm_age=timedelta(days=1), tcg_age=timedelta(hours=1)),
    ]
    found = classify(states, "kvm", timedelta(days=7), NOW)
    assert [s.host for s in found.usable] == ["fell-back", "flaky", "fresh"]
    assert {(m.host, m.code) for m in found.missing} == {
        ("stale", "stale"),
        ("tcg-only", "probed-under-tcg"),
        ("never", "no-successful-probe"),
    }
    stale = next(m for m in found.missing if m.code == "stale")
    assert "8d 0h old" in stale.message and "--max-age 7d 0h" in stale.message
    never = next(m for m in found.missing if m.code == "no-successful-probe")
    assert "failed at connect: ssh: connection refused" in never.message
    flaky = next(n for n in found.notices if n.code == "latest-run-failed")
    assert flaky.hosts == ("flaky",) and "connection refused" in flaky.message
    assert "(2d 0h old)" in flaky.message
    assert [n.hosts for n in found.notices if n.code == "latest-run-other-accel"] == [("fell-back",)]
    tcg = classify(states, "tcg", timedelta(days=7), NOW)
    assert {s.host for s in tcg.usable} == {"tcg-only", "fell-back"}
    assert {m.code for m in tcg.missing if m.host == "fresh"} == {"probed-under-kvm"}


# --------------------------------------------------------------------------- output


def test_json_document_shape_and_schema() -> None:
    b = compute(
        [
            replay.member("Xeon-E3-1225-v5", microcode="0xd6"),
            replay.member("Xeon-E3-1245-v5", microcode="0xea"),
        ]
    )
    doc = json.loads(render(b, "json").stdout)
    jsonschema.validate(doc, SCHEMA)
    assert list(doc) == [
        "schema",
        "pool",
        "machine_type",
        "accel",
        "vendor",
        "model",
        "enable",
        "disable",
        "features",
        "scalars",
        "cpu",
        "custom",
        "hosts",
        "missing",
        "warnings",
        "abi_level",
    ]
    assert doc["schema"] == "fleetcpu.baseline/1"
    assert doc["hosts"][0] == {
        "host": "Xeon-E3-1225-v5",
        "accel": "kvm",
        "qemu_version": "0.0.0",
        "collected_at": "2026-01-01T00:00:00.000Z",
    }
    assert {w["code"] for w in doc["warnings"]} >= {"tsx-microcode-differs", "security-feature-mixed"}
    broken = dict(doc, accel="hvf")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_qemu_format_prints_two_strings_and_comments_apart() -> None:
    b = compute(
        [
            replay.member("Xeon-E3-1225-v5", microcode="0xd6"),
            replay.member("Xeon-E3-1245-v5", microcode="0xea"),
        ]
    )
    out = render(b, "qemu")
    assert out.stdout == f"-cpu {b.cpu}\n-cpu {b.custom}\n"
    lines = out.stderr.splitlines()
    assert lines[0].startswith("# pool pool: 2 host(s), pc-q35-test, kvm, GenuineIntel; model ")
    assert len(lines) == 1 + len(b.warnings) and all(ln.startswith("# ") for ln in lines)


def test_cli_format_choices_are_the_renderers() -> None:
    from fleetcpu.cli import _BASELINE_FORMATS

    assert tuple(FORMATS) == _BASELINE_FORMATS


def test_nested_class_is_what_policy_drops() -> None:
    assert {"vmx", "svm", "npt"} <= NESTED


def test_schema_file_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_model_verdicts_cover_every_listed_model() -> None:
    m = replay.member("Xeon-Platinum-9242")
    verdicts = compute([m]).models
    assert {v.model for v in verdicts} == {c.name for c in m.models} - {"host", "max", "base"}
    assert all(v.candidate == (not v.blocks) for v in verdicts)
    assert verdicts[0].candidate and verdicts[0].model == compute([m]).model


def test_member_from_probe_prefers_static_expansion_and_vcpu_values() -> None:
    m = golden_member("probe-kvm-q35.json")
    assert m.scalars.phys_bits == 48 and m.scalars.level == 28
    assert "arch-capabilities" not in m.offered  # the probe had to start host without it
    assert m.vocabulary >= m.offered and len(m.vocabulary) == 320
    assert m.kvm_nested == "unknown" and m.microcode == "0x1000065"


def test_modelless_member_cannot_choose() -> None:
    m = dataclasses.replace(
        replay.member("Xeon-Gold-6130"),
        models=(CpuModel("Skylake-Server-v9", (), migration_safe=True, features=None),),
    )
    [v] = compute([m]).models
    assert v.blocks[0].reason == "features-unknown"


def test_public_surface() -> None:
    """Records and the two pure entry points; the store shell lives in fleetcpu.baseline.select."""
    import fleetcpu.baseline as pkg

    assert set(pkg.__all__) == {
        "SCHEMA",
        "Baseline",
        "FeatureBlock",
        "HostRef",
        "Member",
        "Missing",
        "ModelBlock",
        "ModelVerdict",
        "Notice",
        "Policy",
        "Scalars",
        "compute_baseline",
        "member_from_probe",
    }
    assert all(hasattr(pkg, name) for name in pkg.__all__)
    # The pure core and the renderers never load the store's data libraries.
    code = (
        "import sys, fleetcpu.baseline, fleetcpu.export; "
        "print(sorted(m for m in ('pyarrow', 'pandas', 'fleetcpu.store') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_call_holds_no_cache() -> None:
    """The judging context is internal (``judged_baseline``): the pure core's call is the pool alone."""
    params = inspect.signature(compute_baseline).parameters
    assert list(params) == ["pool", "machine_type", "accel", "members", "policy", "missing", "notices"]
    assert not hasattr(fleetcpu.baseline, "JudgingContext")
