"""``--require`` and x86-64 levels on real CPUs from ../shared/realdata: the level mapping,
the pool CPU's and each host's level everywhere they are reported, requirements met and
unmet (exit 27, naming the hosts to leave out), a required feature lost after adoption
(26), and the adopted machine type deprecated on a member's QEMU (``status``).

The captures used span the levels: a Core 2 (v1: no SSE4), a Sandy Bridge Xeon
(v2: AVX but no AVX2), Haswell and Broadwell Xeons (v3) and Skylake-SP and Cascade
Lake Xeons (v4).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow.parquet as pq
import pytest

from fleetcpu.baseline import Policy, compute_baseline
from fleetcpu.baseline.require import leave_out, unmet_message
from fleetcpu.errors import UsageError
from fleetcpu.probe.abi_level import LEVEL_FEATURES, features_of, level_of, requirement
from fleetcpu.probe.features import canonical, is_feature
from fleetcpu.store import Store
from fleetcpu.store.schema import INDEX, META_TABLE, META_VERSION
from fleetcpu.vocabulary import AbiLevel

from .conftest import REPO, invoke
from .support import contract_fleet as cf
from .support.replay import members as replay
from .support.replay.hosts import catalogue
from .test_store_support import failed_document

BASELINE_SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "baseline-1.json").read_text())
STATUS_SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "status-1.json").read_text())

#: One real CPU per level, lowest first.
BY_LEVEL = {
    "Core2-E6850": AbiLevel.V1,
    "Xeon-E5-2650": AbiLevel.V2,
    "Xeon-E5-2650-v3": AbiLevel.V3,
    "Xeon-Gold-6130": AbiLevel.V4,
}
HOSTS = ("kvm01", "kvm02", "kvm03", "kvm04")  # cf.POOL: Skylake-SP, Cascade Lake x2, Broadwell


def _members(names: Any) -> list[Any]:
    return [dataclasses.replace(replay.member(n), host=n) for n in names]


def _baseline(names: Any, policy: Policy | None = None) -> Any:
    return compute_baseline(
        "p", replay.machine_probe(next(iter(names))).machine_type, "kvm", _members(names), policy
    )


# --------------------------------------------------------------------------- the mapping
def test_every_name_of_the_mapping_is_qemus_own_and_offered_by_a_real_cpu() -> None:
    offered_somewhere = frozenset().union(*(replay.member(c.name).offered for c in catalogue()))
    for level, names in LEVEL_FEATURES.items():
        for name in names:
            assert is_feature(name) and canonical(name) == name, (level, name)
            assert name in offered_somewhere, (level, name)
    assert "osxsave" not in features_of(AbiLevel.V4)  # the baseline strips it: xsave stands in
    assert "xsave" in LEVEL_FEATURES[AbiLevel.V3] and "abm" in LEVEL_FEATURES[AbiLevel.V3]


def test_a_level_implies_the_lower_ones() -> None:
    levels = AbiLevel.values()
    for lower, higher in itertools.pairwise(levels):
        assert features_of(lower) < features_of(higher)
        assert level_of(features_of(higher)) == higher
        assert level_of(features_of(higher) - {sorted(LEVEL_FEATURES[higher])[0]}) == lower
    assert level_of(features_of(AbiLevel.V1) - {"lm"}) is None
    with pytest.raises(ValueError, match="not an x86-64 level"):
        features_of("x86-64-v5")


def test_real_cpus_reach_the_level_of_their_generation() -> None:
    got = {name: level_of(replay.member(name).offered) for name in BY_LEVEL}
    assert got == BY_LEVEL
    # Every Haswell-or-later Intel server capture is v3 or v4; every pre-Haswell one is below v3.
    for name in ("Xeon-E5-2609-v3", "Xeon-E5-2630-v3", "Xeon-E5-2623-v4", "Xeon-Platinum-8268"):
        assert level_of(replay.member(name).offered) in (AbiLevel.V3, AbiLevel.V4), name
    for name in ("Xeon-E7-4830", "Xeon-W3520", "Xeon-E5-2650"):
        assert level_of(replay.member(name).offered) in (AbiLevel.V1, AbiLevel.V2), name


def test_requirement_items_are_folded_and_checked() -> None:
    r = requirement(["x86-64-v2,sse4_1", "md-clear", "sse4-1"])
    assert r.asked == ("x86-64-v2", "sse4.1", "md-clear")
    assert r.features == features_of(AbiLevel.V2) | {"md-clear"}
    assert r.why["cmov"] == "x86-64-v1" and r.why["pni"] == "x86-64-v2" and r.why["md-clear"] == "md-clear"
    assert not requirement([]) and not requirement([" , "])
    for bad in ("x86-64-v5", "avx3", "sse4"):
        with pytest.raises(UsageError, match=bad):
            requirement([bad])


# --------------------------------------------------------------------------- the pure core
def test_a_real_haswell_or_later_pool_is_v3_and_meets_it() -> None:
    b = _baseline(cf.POOL)  # the Broadwell makes it v3; OSXSAVE counts as xsave
    assert b.abi_level == AbiLevel.V3 and "osxsave" not in b.features and "xsave" in b.features
    members = _members(cf.POOL)
    for asked in ("x86-64-v1", "x86-64-v2", "x86-64-v3", "x86-64-v3,avx2,hle"):
        assert unmet_message(b, members, requirement([asked])) is None, asked


def test_unmet_requirements_name_the_hosts_to_leave_out_across_the_levels() -> None:
    names = list(BY_LEVEL)
    b = _baseline(names)
    members = _members(names)
    assert b.abi_level == AbiLevel.V1
    for level, out in (
        ("x86-64-v2", ["Core2-E6850"]),
        ("x86-64-v3", ["Core2-E6850", "Xeon-E5-2650"]),
        ("x86-64-v4", ["Core2-E6850", "Xeon-E5-2650", "Xeon-E5-2650-v3"]),
    ):
        req = requirement([level])
        assert list(leave_out(members, req)) == out
        # Leaving exactly those out meets it, and leaving out one fewer does not.
        rest = [n for n in names if n not in out]
        assert unmet_message(_baseline(rest), _members(rest), req) is None
        kept = [*rest, out[-1]]
        assert unmet_message(_baseline(kept), _members(kept), req) is not None
        message = unmet_message(b, members, req)
        assert message is not None
        assert f"cannot meet --require {level}" in message and "its CPU is x86-64-v1" in message
        assert f"leave out {len(out)} of 4 member(s)" in message
        for host in out:
            assert f"{host} ({BY_LEVEL[host]})" in message
    message = unmet_message(b, members, requirement(["x86-64-v2"]))
    assert message is not None
    assert "popcnt, sse4.1, sse4.2 (x86-64-v2) lacking on 1 of 4: Core2-E6850" in message
    assert unmet_message(b, members, requirement(["x86-64-v1"])) is None


def test_a_feature_and_a_level_together_leave_out_every_host_lacking_either() -> None:
    members = _members(cf.POOL)
    b = _baseline(cf.POOL)
    req = requirement(["x86-64-v4,md-clear"])
    # Cascade Lake 8268 is v4 without md-clear; the Broadwell lacks both.
    assert list(leave_out(members, req)) == ["Xeon-E5-2650-v4", "Xeon-Platinum-8268"]
    message = unmet_message(b, members, req)
    assert message is not None
    assert "md-clear (required) lacking on 2 of 4: Xeon-E5-2650-v4, Xeon-Platinum-8268" in message
    assert "(x86-64-v4) lacking on 1 of 4: Xeon-E5-2650-v4" in message


def test_a_required_feature_the_policy_removes_is_the_policys() -> None:
    b = _baseline(cf.POOL, Policy(tsx=False))
    message = unmet_message(b, _members(cf.POOL), requirement(["hle"]))
    assert message is not None
    assert "hle (required) offered by every member but removed by policy (TSX dropped (--no-tsx))" in message
    assert "no host needs leaving out" in message


def test_no_part_of_a_pool_meets_what_no_member_offers() -> None:
    names = ["Core2-E6850", "Xeon-E5-2650"]
    message = unmet_message(_baseline(names), _members(names), requirement(["x86-64-v3"]))
    assert message is not None and "no member offers every required feature" in message


# --------------------------------------------------------------------------- the CLI
@pytest.fixture
def fleet(tmp_path: Path) -> Callable[..., Any]:
    run = cf.importing_fleet(tmp_path, invoke)
    add = run.add  # type: ignore[attr-defined]
    when = datetime.now(UTC) - timedelta(hours=2)
    for host, name in zip(HOSTS, cf.POOL, strict=True):
        assert add(host, name, when=when).returncode == 0
    for name in BY_LEVEL:
        assert add(name.lower(), name, pool="mixed", when=when).returncode == 0
    return run


def test_baseline_reports_the_level_and_meets_or_refuses(fleet: Callable[..., Any]) -> None:
    res = fleet("baseline", "--pool", "prod", "--require", "x86-64-v3", "--require", "avx2")
    assert res.returncode == 0, res.stderr
    assert "72 features, x86-64-v3;" in res.stderr.splitlines()[0]
    res = fleet("baseline", "--pool", "prod", "--format", "json", "--require", "x86-64-v3")
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, BASELINE_SCHEMA)
    assert doc["abi_level"] == "x86-64-v3"
    res = fleet("baseline", "--pool", "mixed", "--format", "json")
    assert json.loads(res.stdout)["abi_level"] == "x86-64-v1"
    res = fleet("baseline", "--pool", "mixed", "--require", "x86-64-v3")
    assert res.returncode == 27 and res.stdout == ""
    [line] = res.stderr.splitlines()
    assert line.startswith("error: pool 'mixed' cannot meet --require x86-64-v3 (its CPU is x86-64-v1")
    assert "leave out 2 of 4 member(s)" in line
    assert "core2-e6850 (x86-64-v1), xeon-e5-2650 (x86-64-v2)" in line
    res = fleet("baseline", "--pool", "prod", "--require", "x86-64-v9")
    assert res.returncode == 2 and "x86-64-v9" in res.stderr


def test_adopt_with_an_unmet_requirement_stores_nothing(fleet: Callable[..., Any]) -> None:
    res = fleet("adopt", "--pool", "prod", "--require", "x86-64-v4,md-clear", "--yes")
    assert res.returncode == 27, res.stdout + res.stderr
    assert "kvm02 (x86-64-v4), kvm04 (x86-64-v3)" in res.stderr and "nothing stored" in res.stderr
    res = fleet(
        "adopt",
        "--pool",
        "prod",
        "--cpu",
        "Haswell-noTSX,vendor=GenuineIntel",
        "--require",
        "x86-64-v4",
        "--yes",
    )
    assert res.returncode == 27 and "avx512f (x86-64-v4)" in res.stderr, res.stderr
    assert Store.open(fleet.store).runs_with("adoptions") == []  # type: ignore[attr-defined]


def test_a_member_losing_a_required_feature_is_non_compliant(fleet: Callable[..., Any]) -> None:
    res = fleet("adopt", "--pool", "prod", "--require", "x86-64-v3", "--yes")
    assert res.returncode == 0, res.stderr
    assert "72 features, x86-64-v3," in res.stdout and "meets --require x86-64-v3" in res.stdout
    [row] = Store.open(fleet.store).table("adoptions").to_pylist()  # type: ignore[attr-defined]
    assert row["required"] == ["x86-64-v3"] and features_of(AbiLevel.V3) <= set(row["features"])
    # kvm04's next probe: its QEMU lost movbe (a v3 feature).
    mp = cf.lose(replay.machine_probe(cf.POOL[3]), {"movbe"})
    res = fleet.add("kvm04", cf.POOL[3], mp=mp)  # type: ignore[attr-defined]
    assert res.returncode == 26, res.stdout + res.stderr
    assert "non-compliant: kvm04: features-lacking: movbe" in res.stdout
    res = fleet("status", "--pool", "prod", "--format", "json")
    assert res.returncode == 26
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, STATUS_SCHEMA)
    [pool] = doc["pools"]
    assert pool["adopted"]["required"] == ["x86-64-v3"] and pool["adopted"]["abi_level"] == "x86-64-v3"
    table = fleet("status", "--pool", "prod")
    assert "required: x86-64-v3" in table.stdout and "x86-64-v3, pc-q35-0.0" in table.stdout
    # The host is v2 now, and hosts says so from the index.
    res = fleet("hosts", "--pool", "prod", "--format", "json")
    levels = {h["host"]: h["abi_level"] for h in json.loads(res.stdout)}
    assert levels == {"kvm01": "x86-64-v4", "kvm02": "x86-64-v4", "kvm03": "x86-64-v4", "kvm04": "x86-64-v2"}


def test_hosts_shows_each_hosts_level_from_the_index(fleet: Callable[..., Any]) -> None:
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    index = pq.read_table(store.layout.index_file)
    levels = dict(zip(index["host"].to_pylist(), index["abi_level"].to_pylist(), strict=True))
    assert {h: levels[h.lower()] for h in BY_LEVEL} == dict(BY_LEVEL)
    table = fleet("hosts", "--pool", "mixed").stdout.splitlines()
    assert table[0].split()[:6] == ["HOST", "POOL", "STATUS", "ACCEL", "QEMU", "LEVEL"]
    assert {line.split()[0]: line.split()[5] for line in table[1:]} == {
        h.lower(): v for h, v in BY_LEVEL.items()
    }
    # A failed run has no level: the latest record's.
    path = cf.write_doc(Path(fleet.store).parent / "failed.json", failed_document())  # type: ignore[attr-defined]
    assert fleet("import", "--pool", "prod", "--host", "kvm01", str(path)).returncode == 0
    rows = {h["host"]: h for h in json.loads(fleet("hosts", "--format", "json").stdout)}
    assert rows["kvm01"]["status"] == "failed" and rows["kvm01"]["abi_level"] is None


def test_an_index_written_before_the_level_still_reads(fleet: Callable[..., Any]) -> None:
    """An index of schema 1 (no ``abi_level``) reads with the level unknown; the next
    commit folds the new rows in and writes the column."""
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    path = store.layout.index_file
    old = pq.read_table(path).drop_columns(["abi_level"])
    meta = {META_TABLE: INDEX.name.encode(), META_VERSION: b"1"}
    pq.write_table(old.replace_schema_metadata(meta), path)
    res = fleet("hosts", "--pool", "prod", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert {h["abi_level"] for h in json.loads(res.stdout)} == {None}
    assert "-" in fleet("hosts", "--pool", "prod").stdout.splitlines()[1].split()
    assert fleet.add("kvm01", cf.POOL[0]).returncode == 0  # type: ignore[attr-defined]
    levels = {
        h["host"]: h["abi_level"]
        for h in json.loads(fleet("hosts", "--pool", "prod", "--format", "json").stdout)
    }
    assert levels["kvm01"] == "x86-64-v4" and levels["kvm04"] is None


# --------------------------------------------------------------------------- machine-type lifecycle
def test_status_warns_when_the_adopted_machine_type_is_deprecated_on_a_members_qemu(
    fleet: Callable[..., Any],
) -> None:
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    mt = replay.machine_probe(cf.POOL[1]).machine_type
    res = fleet("status", "--pool", "prod", "--format", "json")
    [pool] = json.loads(res.stdout)["pools"]
    assert res.returncode == 0 and pool["machine_type_deprecated_on"] == []
    # kvm02's QEMU, upgraded, now lists the machine type as deprecated (as QEMU does about
    # three years after a release): still compliant, but warned about.
    listed = cf.machine_list(cf.POOL[1])
    assert any(m.name == mt and not m.deprecated for m in listed)
    deprecated = tuple(dataclasses.replace(m, deprecated=True) if m.name == mt else m for m in listed)
    assert fleet.add("kvm02", cf.POOL[1], machines=deprecated).returncode == 0  # type: ignore[attr-defined]
    res = fleet("status", "--pool", "prod", "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, STATUS_SCHEMA)
    [pool] = doc["pools"]
    assert pool["machine_type_deprecated_on"] == ["kvm02"] and pool["counts"]["compliant"] == 4
    table = fleet("status", "--pool", "prod")
    assert table.returncode == 0
    assert f"warning: machine type {mt} is deprecated on the QEMU of 1 member(s): kvm02;" in table.stdout
