"""The pool's CPU as a contract: the judging rule, adopt, compliance on every import and
collect, status (table, JSON, Prometheus), on real CPUs from ../shared/realdata.

The pool is the issue's: four real Intel server captures whose baseline is 72
features (Broadwell-noTSX plus hle/rtm). Changes are made as QEMU reports them
(``tests/support/contract_fleet.py``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetcpu.baseline import compute_baseline, member_from_probe
from fleetcpu.baseline.choose import JudgingContext
from fleetcpu.baseline.compute import judged_baseline
from fleetcpu.contract import HostCpu, headroom, judge, parse_cpu
from fleetcpu.contract.judge import RULE_REVISION, Judge
from fleetcpu.errors import UsageError
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.store import Store
from fleetcpu.store.layout import Layout, new_run_id
from fleetcpu.store.schema import HOSTS as HOSTS_TABLE
from fleetcpu.store.schema import META_TABLE, META_VERSION, RUNS

from .conftest import REPO, invoke
from .support import contract_fleet as cf
from .support.replay import members as replay
from .support.replay.hosts import make_replay_host

SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "status-1.json").read_text())
HOSTS = ("kvm01", "kvm02", "kvm03", "kvm04")


def _host(name: str, mp: Any = None, listed: Any = None) -> HostCpu:
    mp = mp or replay.machine_probe(name)
    return HostCpu(name, "kvm", {mp.machine_type: mp}, listed, None)


@pytest.fixture(scope="module")
def pool_baseline() -> Any:
    members = [replay.member(n) for n in cf.POOL]
    return compute_baseline("prod", replay.machine_probe(cf.POOL[0]).machine_type, "kvm", members)


# --------------------------------------------------------------------------- the rule
def test_parse_follows_qemus_rules() -> None:
    s = parse_cpu(
        "Skylake-Server-v1,vendor=GenuineIntel,sse4_1=off,+sse4-1,pcid,-hle,model-id=A,,B,hv-relaxed=on"
    )
    assert s.model == "Skylake-Server-v1"
    assert s.enabled == {"sse4.1", "pcid"} and s.disabled == {"hle"}  # +/- win over key=value
    assert dict(s.props) == {"vendor": "GenuineIntel", "model-id": "A,B", "hv-relaxed": "on"}
    for bad in ("", "+avx", "Haswell,+avx,-avx", "Haswell,", "Haswell,=on"):
        with pytest.raises(UsageError):
            parse_cpu(bad)


def test_every_member_starts_the_pools_own_strings(pool_baseline: Any) -> None:
    b = pool_baseline
    assert len(b.features) == 72 and b.model == "Broadwell-noTSX" and {"hle", "rtm"} <= set(b.features)
    for text in (b.cpu, b.custom):
        rule = Judge(parse_cpu(text), b.machine_type, "kvm", frozenset(b.features))
        assert [rule(_host(n)).state for n in cf.POOL] == ["compliant"] * 4


def test_a_host_that_lost_tsx_lacks_exactly_hle_and_rtm(pool_baseline: Any) -> None:
    b = pool_baseline
    host = _host("x", cf.lose(replay.machine_probe(cf.POOL[0]), {"hle", "rtm"}))
    for text in (b.cpu, b.custom):
        v = judge(parse_cpu(text), b.machine_type, "kvm", host, frozenset(b.features))
        assert (v.state, v.reason, v.lacking) == ("non-compliant", "features-lacking", ("hle", "rtm"))
    # Turning the lost features off is a different CPU: it starts, but not with every feature.
    off = parse_cpu(b.cpu.replace(",+hle", "").replace(",+rtm", ""))
    v = judge(off, b.machine_type, "kvm", host, frozenset(b.features))
    assert v.state == "non-compliant" and v.reason == "model-differs" and v.lacking == ("hle", "rtm")
    assert judge(off, b.machine_type, "kvm", host).state == "compliant"  # start only


def test_a_name_only_the_static_expansion_holds_is_known() -> None:
    """The rule's vocabulary is the chooser's (both host expansions): a feature name the
    baseline may write is never called unknown. (collect_bench's variants found this:
    they drop one name from the full expansion of this host's real probe.)"""
    doc = document_from_json((REPO / "tests" / "golden" / "probe-kvm-q35.json").read_text())
    [mp] = doc.machine_types
    assert mp.static_expansion is not None and mp.full_expansion is not None
    member = member_from_probe("this", "kvm", None, datetime.now(UTC), doc.host, mp)
    b = compute_baseline("local", mp.machine_type, "kvm", [member])
    named = [*b.enable, *b.disable]
    gone = next(n for n in named if n in mp.static_expansion.features)
    full = {k: v for k, v in mp.full_expansion.features.items() if k != gone}
    thin = dataclasses.replace(mp, full_expansion=dataclasses.replace(mp.full_expansion, features=full))
    for probe in (mp, thin):
        v = judge(parse_cpu(b.cpu), b.machine_type, "kvm", _host("x", probe), frozenset(b.features))
        assert v.state == "compliant", v


def test_model_unknown_vendor_machine_type_and_undecidable(pool_baseline: Any) -> None:
    b = pool_baseline
    name = cf.POOL[3]  # the Broadwell
    mt = b.machine_type
    v = judge(parse_cpu("NoSuchCPU"), mt, "kvm", _host(name))
    assert (v.state, v.reason) == ("non-compliant", "model-unusable")
    v = judge(parse_cpu("Skylake-Server-v1"), mt, "kvm", _host(name))  # its QEMU predates it
    assert (v.state, v.reason) == ("non-compliant", "model-unusable")
    v = judge(parse_cpu("Skylake-Client"), mt, "kvm", _host(name))
    assert (v.state, v.reason, v.lacking) == (
        "non-compliant",
        "features-lacking",
        ("mpx", "xgetbv1", "xsavec"),
    )
    v = judge(parse_cpu(b.cpu.replace("GenuineIntel", "AuthenticAMD")), mt, "kvm", _host(name))
    assert (v.state, v.reason) == ("non-compliant", "vendor-differs")
    v = judge(parse_cpu(b.cpu + ",+no-such-feature"), mt, "kvm", _host(name))
    assert (v.state, v.reason) == ("non-compliant", "model-unusable")
    # A machine type the host's QEMU does not list is proven missing; one it lists but
    # was not probed, or with no list recorded, cannot be decided.
    listed = cf.machine_list(name)
    v = judge(parse_cpu(b.cpu), "pc-q35-9.9", "kvm", _host(name, listed=listed))
    assert (v.state, v.reason) == ("non-compliant", "machine-type-missing")
    v = judge(parse_cpu(b.cpu), "pc-i440fx-0.0", "kvm", _host(name, listed=listed))
    assert v.state == "undecided" and "not probed" in v.detail
    assert judge(parse_cpu(b.cpu), "pc-q35-9.9", "kvm", _host(name)).state == "undecided"
    # Properties fleetcpu does not record are undecided, never compliant.
    v = judge(parse_cpu(b.cpu + ",hv-evmcs=on"), mt, "kvm", _host(name))
    assert v.state == "undecided" and "hv-evmcs" in v.detail
    # No model list (a capture without query-cpu-definitions): undecided.
    assert judge(parse_cpu(b.cpu), mt, "kvm", _host("Xeon-Gold-6148")).state == "undecided"


def test_the_rules_memo_never_answers_for_a_probe_it_did_not_judge(pool_baseline: Any) -> None:
    """collect judges each host's freshly decoded records with one ``Judge`` for the whole
    run, and drops each document once stored: a new probe then often lands at a freed
    one's address. The memo is keyed by ``id``, so it must check that the probe it judged
    is the one asked about, or a host without TSX is called compliant (and status, which
    takes the stored verdict, says so too)."""
    b = pool_baseline
    whole = json.dumps(cf.document(cf.POOL[0]).to_dict())
    no_tsx = json.dumps(
        cf.document(cf.POOL[0], mp=cf.lose(replay.machine_probe(cf.POOL[0]), {"hle", "rtm"})).to_dict()
    )
    rule = Judge(parse_cpu(b.cpu), b.machine_type, "kvm", frozenset(b.features))
    ids, wrong = [], []
    for i in range(200):
        doc = document_from_json(no_tsx if i % 2 else whole)
        host = HostCpu("h", "kvm", {mp.machine_type: mp for mp in doc.machine_types}, None, None)
        ids.append(id(doc.machine_types[0]))
        want = Judge(parse_cpu(b.cpu), b.machine_type, "kvm", frozenset(b.features))(host).state
        if rule(host).state != want:
            wrong.append(i)
        del doc, host
    assert len(set(ids)) < len(ids)  # addresses were reused: the case at stake happened
    assert wrong == []


# --------------------------------------------------------------------------- the CLI
@pytest.fixture
def fleet(tmp_path: Path) -> Callable[..., Any]:
    run = cf.importing_fleet(tmp_path, invoke)
    add = run.add  # type: ignore[attr-defined]
    for host, name in zip(HOSTS, cf.POOL, strict=True):
        assert add(host, name, when=datetime.now(UTC) - timedelta(hours=2)).returncode == 0
    return run


def _status(fleet: Callable[..., Any], *args: str) -> tuple[int, Any]:
    res = fleet("status", "--format", "json", *args)
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, SCHEMA)
    return res.returncode, doc


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_adopt_asks_and_refuses_without_a_terminal(fleet: Callable[..., Any]) -> None:
    res = fleet("adopt", "--pool", "prod")
    assert res.returncode == 2 and "--yes" in res.stderr and "72 features" in res.stdout
    assert fleet("status", "--pool", "prod").returncode == 0  # nothing recorded: no contract
    res = fleet("adopt", "--pool", "prod", "--yes", "--note", "after the rack move")
    assert res.returncode == 0, res.stderr
    assert "first adoption" in res.stdout
    rows = Store.open(fleet.store).table("adoptions").to_pylist()  # type: ignore[attr-defined]
    [row] = rows
    assert row["note"] == "after the rack move" and row["source"] == "baseline"
    assert len(row["features"]) == 72 and sorted(row["members"]) == list(HOSTS)
    assert "@" in row["adopted_by"] and row["cpu"].startswith("Broadwell-noTSX,")


def test_the_tsx_scenario(fleet: Callable[..., Any]) -> None:
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    rc, doc = _status(fleet)
    [pool] = doc["pools"]
    assert rc == 0 and pool["counts"]["compliant"] == 4
    assert pool["adopted"]["feature_count"] == 72
    assert pool["headroom"]["gain"] == [] and pool["headroom"]["lost"] == []
    # kvm01's next probe: new microcode, TSX gone.
    mp = cf.lose(replay.machine_probe(cf.POOL[0]), {"hle", "rtm"})
    res = fleet.add("kvm01", cf.POOL[0], microcode="0x2006e05", mp=mp)  # type: ignore[attr-defined]
    assert res.returncode == 26, res.stdout + res.stderr
    assert "non-compliant: kvm01: features-lacking: hle, rtm" in res.stdout
    assert "compliant until run" in res.stdout and "microcode 0x1 -> 0x2006e05" in res.stdout
    rc, doc = _status(fleet)
    [pool] = doc["pools"]
    assert rc == 26
    states = {m["host"]: (m["state"], m["lacking"]) for m in pool["members"]}
    assert states == {
        "kvm01": ("non-compliant", ["hle", "rtm"]),
        "kvm02": ("compliant", []),
        "kvm03": ("compliant", []),
        "kvm04": ("compliant", []),
    }
    assert pool["headroom"]["lost"] == ["hle", "rtm"]  # today's baseline dropped them
    table = fleet("status", "--pool", "prod")
    assert table.returncode == 26 and "kvm01: non-compliant (features-lacking): hle, rtm" in table.stdout
    # The stored verdicts: per host and run.
    rows = Store.open(fleet.store).table("compliance").to_pylist()  # type: ignore[attr-defined]
    mine = sorted((r for r in rows if r["host"] == "kvm01"), key=lambda r: r["run_id"])
    assert [r["state"] for r in mine] == ["compliant", "non-compliant"]  # at adopt, then import
    assert mine[1]["microcode"] == "0x2006e05" and mine[1]["last_compliant_microcode"] == "0x1"
    assert mine[1]["last_compliant_run"] == mine[0]["last_compliant_run"] != mine[0]["run_id"]


def test_prometheus_values_through_the_official_parser(fleet: Callable[..., Any], tmp_path: Path) -> None:
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    mp = cf.lose(replay.machine_probe(cf.POOL[1]), {"hle", "rtm"})
    assert fleet.add("kvm02", cf.POOL[1], mp=mp).returncode == 26  # type: ignore[attr-defined]
    out = tmp_path / "textfile" / "fleetcpu.prom"
    res = fleet("status", "--format", "prometheus", "-o", str(out))
    assert res.returncode == 26 and res.stdout == ""
    m = _metrics(out.read_text())
    assert [p.name for p in out.parent.iterdir()] == ["fleetcpu.prom"]  # no temporary left
    for host in HOSTS:
        assert m[("fleetcpu_host_compliant", (("host", host), ("pool", "prod")))] == (
            0 if host == "kvm02" else 1
        )
    counts = {dict(k[1])["state"]: v for k, v in m.items() if k[0] == "fleetcpu_pool_members"}
    assert counts == {
        "compliant": 3,
        "non-compliant": 1,
        "undecided": 0,
        "failed": 0,
        "stale": 0,
        "tcg-only": 0,
    }
    assert m[("fleetcpu_pool_adopted_features", (("pool", "prod"),))] == 72
    assert m[("fleetcpu_pool_headroom_features", (("pool", "prod"),))] == 0
    assert m[("fleetcpu_pool_lost_features", (("pool", "prod"),))] == 2
    last = m[("fleetcpu_pool_last_successful_collect_timestamp_seconds", (("pool", "prod"),))]
    assert abs(last - datetime.now(UTC).timestamp()) < 300


def test_a_microcode_update_adding_a_feature_shows_headroom(fleet: Callable[..., Any]) -> None:
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    # The members lacking md-clear (the Cascade Lake and the Broadwell captures) get it from
    # new microcode: first one (the pool still cannot have it), then the other.
    lacking = [n for n in cf.POOL if "md-clear" not in replay.member(n).offered]
    assert lacking == [cf.POOL[1], cf.POOL[3]], lacking
    for i in (1, 3):
        mp = cf.gain(replay.machine_probe(cf.POOL[i]), {"md-clear"})
        assert fleet.add(HOSTS[i], cf.POOL[i], microcode="0xb000040", mp=mp).returncode == 0  # type: ignore[attr-defined]
        rc, doc = _status(fleet)
        assert doc["pools"][0]["headroom"]["gain"] == ([] if i == 1 else ["md-clear"])
    [pool] = doc["pools"]
    assert rc == 0 and pool["counts"]["compliant"] == 4
    assert pool["headroom"]["gain"] == ["md-clear"] and pool["headroom"]["lost"] == []
    assert "re-adopt to gain md-clear" in fleet("status").stdout
    # Re-adopting raises the contract, and says so.
    res = fleet("adopt", "--pool", "prod", "--yes")
    assert res.returncode == 0 and "adds 1 feature(s): md-clear" in res.stdout


def test_headroom_over_distinct_members_is_the_whole_pools_cpu(fleet: Callable[..., Any]) -> None:
    """status computes the headroom over one member per distinct content (a speed-up):
    the CPU must be the one the whole pool gives, repeats and differing facts included."""
    from fleetcpu.baseline import Policy
    from fleetcpu.baseline.select import build_members
    from fleetcpu.contract import shell

    add = fleet.add  # type: ignore[attr-defined]
    assert add("kvm05", cf.POOL[0]).returncode == 0  # a repeat of kvm01's CPU
    assert add("kvm06", cf.POOL[1], microcode="0x5003302").returncode == 0  # the same CPU, other microcode
    tsx_gone = cf.lose(replay.machine_probe(cf.POOL[2]), {"hle", "rtm"})
    assert add("kvm07", cf.POOL[2], mp=tsx_gone).returncode == 0  # a different content
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    a = shell.adopted(store)["prod"]
    snaps = store.snapshots([s.host for s in store.latest("prod")], "kvm")
    distinct = headroom.distinct(list(snaps.values()), a.machine_type)
    assert len(snaps) == 7 and len(distinct) == 5, [s.host for s in distinct]
    whole = compute_baseline(
        "prod", a.machine_type, "kvm", build_members(list(snaps.values()), a.machine_type)
    )
    part = judged_baseline(
        JudgingContext(),
        "prod",
        a.machine_type,
        "kvm",
        build_members(distinct, a.machine_type),
        Policy(),
        reasons=False,
    )
    assert (part.features, part.cpu, part.custom, part.model) == (
        whole.features,
        whole.cpu,
        whole.custom,
        whole.model,
    )
    assert "hle" not in whole.features  # kvm07 counted: it is the one that lowers the CPU
    _rc, doc = _status(fleet)
    assert doc["pools"][0]["headroom"]["baseline_cpu"] == whole.cpu
    # The store's one snapshot per CPU data: whole snapshots, one per digest.
    reps = store.distinct_snapshots(sorted(snaps), "kvm")
    assert len(reps) == 5 and all(r == snaps[r.host] for r in reps)
    assert len({r.cpu_digest for r in reps}) == 5 and [r.host for r in reps] == sorted(r.host for r in reps)


def _vendorless(mp: Any) -> Any:
    """``mp`` as a QEMU that names no vendor in the vCPU nor the expansions reports it."""

    def unnamed(e: Any) -> Any:
        return (
            None
            if e is None
            else dataclasses.replace(e, props={k: v for k, v in e.props.items() if k != "vendor"})
        )

    return dataclasses.replace(
        mp,
        vcpu=dataclasses.replace(mp.vcpu, vendor=None),
        static_expansion=unnamed(mp.static_expansion),
        full_expansion=unnamed(mp.full_expansion),
    )


def test_status_over_vendorless_probes_judged_at_import(fleet: Callable[..., Any]) -> None:
    """Members whose probe names no vendor, imported after the adoption (so their stored
    verdicts are taken, and the headroom reads representatives, then every host of such
    a CPU): the holder of that CPU was read twice, and the baseline refused the pool
    ("host given twice", a traceback) instead of giving the headroom."""
    from fleetcpu.contract import shell

    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    mp = _vendorless(replay.machine_probe(cf.POOL[0]))
    for host in ("kvm05", "kvm06"):
        assert fleet.add(host, cf.POOL[0], mp=mp).returncode == 0  # type: ignore[attr-defined]
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    taken = shell._pool_statuses(store, None, timedelta(days=7), now)
    assert taken == shell._pool_statuses(store, None, timedelta(days=7), now, reuse=False)
    assert taken[0].headroom is not None and taken[0].headroom.cpu is not None, taken[0].headroom
    rc, doc = _status(fleet)
    assert rc == 0 and doc["pools"][0]["headroom"]["baseline_cpu"] == taken[0].headroom.cpu


def test_headroom_reads_every_host_of_a_cpu_whose_probe_names_no_vendor(fleet: Callable[..., Any]) -> None:
    """Without a vendor of its own, a probe's hosts take their facts' vendor, which hosts of
    one CPU data could differ in: the headroom then reads each of them, not one."""
    from fleetcpu.contract import shell

    mp = _vendorless(replay.machine_probe(cf.POOL[0]))
    for host in ("kvm05", "kvm06"):
        assert fleet.add(host, cf.POOL[0], mp=mp).returncode == 0  # type: ignore[attr-defined]
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    a = shell.adopted(store)["prod"]
    states = store.latest("prod")
    fresh = {s.host for s in states}
    reps = headroom._representatives(store, a, states, fresh, {})
    assert {"kvm05", "kvm06"} <= {r.host for r in reps}
    assert len({r.host for r in reps}) == len(reps)  # each host once: the baseline refuses a repeat
    assert len(store.distinct_snapshots(sorted(fresh), "kvm")) == 5  # the two share one digest


def _stored_verdicts(store: Store, a: Any, states: Any) -> Any:
    """``shell._stored_verdicts`` over the runs of this fleetcpu version, as status asks it."""
    from fleetcpu.contract import shell

    mine = shell._runs_of_this_version(store, {s.run for s in states})
    return shell._stored_verdicts(store, a, states, mine)


def test_status_takes_the_verdicts_runs_stored_only_where_judging_gives_them(
    fleet: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """status takes a member's verdict from its latest run when that run judged it against
    this adoption (a speed-up): the statuses must equal judging every member again."""
    from fleetcpu.contract import shell

    def statuses(reuse: bool) -> Any:
        store = Store.open(fleet.store)  # type: ignore[attr-defined]
        return shell._pool_statuses(store, None, timedelta(days=7), now, reuse=reuse)

    def stored() -> set[str]:
        store = Store.open(fleet.store)  # type: ignore[attr-defined]
        a = shell.adopted(store)["prod"]
        return set(_stored_verdicts(store, a, store.latest("prod")))

    add = fleet.add  # type: ignore[attr-defined]
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    now = datetime.now(UTC)
    assert stored() == set()  # imported before the adoption: nothing judged them yet
    assert statuses(True) == statuses(False)
    # Judged by their imports: kvm01 lost TSX, kvm02 as before, kvm05 joins with kvm01's CPU.
    tsx_gone = cf.lose(replay.machine_probe(cf.POOL[0]), {"hle", "rtm"})
    assert add("kvm01", cf.POOL[0], mp=tsx_gone, microcode="0x2006e05").returncode == 26
    assert add("kvm02", cf.POOL[1]).returncode == 0
    assert add("kvm05", cf.POOL[0]).returncode == 0
    now = datetime.now(UTC)
    assert stored() == {"kvm01", "kvm02", "kvm05"}
    taken, judged = statuses(True), statuses(False)
    assert taken == judged
    states = {m.host: m.state for m in taken[0].members}
    assert states == {
        "kvm01": "non-compliant",
        "kvm02": "compliant",
        "kvm03": "compliant",
        "kvm04": "compliant",
        "kvm05": "compliant",
    }
    assert taken[0].headroom.lost == ("hle", "rtm")  # today's baseline, over kvm01's new data
    # Another fleetcpu's verdicts are judged again, not taken.
    monkeypatch.setattr(shell, "__version__", "0.0.0+other")
    assert stored() == set()
    monkeypatch.undo()
    # So are another rule's: each verdict row says which rule gave it (compliance v2).
    rows = Store.open(fleet.store).table("compliance").to_pylist()  # type: ignore[attr-defined]
    assert {r["rule"] for r in rows} == {RULE_REVISION}
    monkeypatch.setattr(shell, "RULE_REVISION", RULE_REVISION + 1)
    assert stored() == set()
    monkeypatch.undo()
    # A new adoption: the runs' verdicts were against the old one.
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    now = datetime.now(UTC)
    assert stored() == set() and statuses(True) == statuses(False)


def test_a_stale_member_is_the_same_whether_its_verdict_was_stored_or_not(fleet: Callable[..., Any]) -> None:
    """A member judged at import but stale now is ``stale`` either way, with the same
    record: its stored verdict must not keep its data (microcode, kernel) from being read."""
    from fleetcpu.contract import shell

    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    then = datetime.now(UTC) - timedelta(days=2)
    assert fleet.add("kvm05", cf.POOL[0], when=then, microcode="0xabc").returncode == 0  # type: ignore[attr-defined]
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    taken = shell._pool_statuses(store, None, timedelta(days=1), now)
    judged = shell._pool_statuses(store, None, timedelta(days=1), now, reuse=False)
    [c] = [m for m in judged[0].members if m.host == "kvm05"]
    assert c.state == "stale" and c.microcode == "0xabc"
    assert taken == judged


@pytest.mark.parametrize("second", ["whole", "tcg"])
def test_a_document_naming_a_machine_type_twice_is_judged_as_stored(
    fleet: Callable[..., Any], tmp_path: Path, second: str
) -> None:
    """The store keeps the first probe of each machine type (``unique_machines``), whatever
    its accelerator; an imported document may hold two (nothing refuses it). Its import's
    verdict is the one status takes, so it must judge what is stored, not the last probe
    of that machine type under the adopted accelerator."""
    from fleetcpu.contract import shell

    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    mp = replay.machine_probe(cf.POOL[0])
    first = cf.lose(mp, {"hle", "rtm"}) if second == "whole" else dataclasses.replace(mp, accel="tcg")
    doc = dataclasses.replace(cf.document(cf.POOL[0]), machine_types=(first, mp))
    res = fleet(
        "import", "--pool", "prod", "--host", "kvm05", str(cf.write_doc(tmp_path / "twice.json", doc))
    )
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    assert "kvm05" in _stored_verdicts(store, shell.adopted(store)["prod"], store.latest("prod"))
    now = datetime.now(UTC)
    taken = shell._pool_statuses(store, None, timedelta(days=7), now)
    judged = shell._pool_statuses(store, None, timedelta(days=7), now, reuse=False)
    assert taken == judged
    [c] = [m for m in judged[0].members if m.host == "kvm05"]
    assert c.state == ("non-compliant" if second == "whole" else "undecided")
    assert res.returncode == (26 if second == "whole" else 0)


def test_a_member_leaves_and_a_new_one_does_not_comply(fleet: Callable[..., Any]) -> None:
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    # kvm04 (the Broadwell, the pool's floor) moves to another pool: not judged in prod any more.
    assert fleet.add("kvm04", cf.POOL[3], pool="lab").returncode == 0  # type: ignore[attr-defined]
    rc, doc = _status(fleet, "--pool", "prod")
    [pool] = doc["pools"]
    assert rc == 0 and [m["host"] for m in pool["members"]] == ["kvm01", "kvm02", "kvm03"]
    # A Haswell joins: lacks what Broadwell added.
    res = fleet.add("kvm05", "Xeon-E5-2609-v3")  # type: ignore[attr-defined]
    assert res.returncode == 26 and "non-compliant: kvm05" in res.stdout
    assert "never compliant in the store" in res.stdout
    rc, doc = _status(fleet, "--pool", "prod")
    [m] = [m for m in doc["pools"][0]["members"] if m["host"] == "kvm05"]
    assert rc == 26 and m["state"] == "non-compliant"
    assert {"adx", "rdseed", "3dnowprefetch"} <= set(m["lacking"])


def test_cpu_strings_accepted_and_refused(fleet: Callable[..., Any]) -> None:
    res = fleet("adopt", "--pool", "prod", "--cpu", "Haswell-noTSX,vendor=GenuineIntel", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    [row] = Store.open(fleet.store).table("adoptions").to_pylist()  # type: ignore[attr-defined]
    assert row["source"] == "operator" and row["model"] == "Haswell-noTSX"
    assert "avx2" in row["features"] and "hle" not in row["features"]
    rc, doc = _status(fleet)
    assert rc == 0 and doc["pools"][0]["counts"]["compliant"] == 4
    # Raising to a CPU the Broadwell cannot start is refused, naming it and what it lacks.
    res = fleet("adopt", "--pool", "prod", "--cpu", "Skylake-Client", "--yes")
    assert res.returncode == 26 and "kvm04: non-compliant, lacks mpx, xgetbv1, xsavec" in res.stderr
    assert "1 of 4 member(s)" in res.stderr and "not adopted" in res.stderr
    res = fleet("adopt", "--pool", "prod", "--cpu", "host", "--yes")
    assert res.returncode == 2 and "host-passthrough" in res.stderr
    res = fleet("adopt", "--pool", "prod", "--cpu", "Haswell,+avx,-avx", "--yes")
    assert res.returncode == 2
    assert len(Store.open(fleet.store).table("adoptions")) == 1  # type: ignore[attr-defined]
    # Lowering is allowed, and stated for what it is.
    res = fleet("adopt", "--pool", "prod", "--cpu", "Westmere,vendor=GenuineIntel", "--yes")
    assert res.returncode == 0 and "LOWERS" in res.stdout and "cold boot" in res.stdout


def test_status_exit_codes(fleet: Callable[..., Any]) -> None:
    assert fleet("status", "--pool", "nope").returncode == 20
    assert invoke("status", "--store", str(fleet.store) + "-empty").returncode == 21  # type: ignore[attr-defined]
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    # A TCG-only probe is not compliant; only --strict makes it an error.
    res = fleet.add("kvm03", "qemu-5.0-Xeon-E3-1245-v5", accel="tcg")  # type: ignore[attr-defined]
    assert res.returncode == 0, res.stdout
    rc, doc = _status(fleet)
    assert rc == 0 and doc["pools"][0]["counts"]["tcg-only"] == 1
    assert fleet("status", "--strict").returncode == 26


def test_collect_precedence_over_a_mixed_run(fleet: Callable[..., Any], tmp_path: Path) -> None:
    """A real collect (local transport, replayed CPUs): a failed host and a non-compliant
    one give 26, not 5; the failed host alone gives 5."""
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    ok = make_replay_host(tmp_path / "r", cf.POOL[2], hostname="r-ok")
    weak = make_replay_host(tmp_path / "r", "Xeon-E5-2609-v3", hostname="r-weak")
    inv = tmp_path / "hosts.txt"
    line = "{} transport=local accel=kvm qemu={} host_root={}\n"
    inv.write_text(
        "[prod]\n"
        + line.format("kvm03", ok.binary, ok.root)
        + line.format("kvm06", weak.binary, weak.root)
        + "kvm07 transport=local qemu=/nonexistent/qemu accel=kvm\n"
    )
    res = fleet("collect", str(inv), "--timeout", "30")
    assert res.returncode == 26, res.stdout + res.stderr
    assert "non-compliant: kvm06" in res.stdout and "1 failed" in res.stdout
    assert "also 1 of 3 host(s) failed" in res.stderr
    inv.write_text(
        "[prod]\n"
        + line.format("kvm03", ok.binary, ok.root)
        + "kvm07 transport=local qemu=/nonexistent/qemu accel=kvm\n"
    )
    res = fleet("collect", str(inv), "--timeout", "30")
    assert res.returncode == 5, res.stdout + res.stderr
    assert "1 compliant" in res.stdout and "1 failed" in res.stdout


#: A real QEMU 5.0 (its own ``query-machines``: 46 types, none of them pc-q35-0.0, the
#: pool's adopted type), as on a host whose QEMU was upgraded past that machine type.
NEWER_QEMU = "qemu-5.0-Xeon-E3-1245-v5"


def _as_older_file(store_dir: Path, host: str) -> str:
    """``host``'s latest hosts row, rewritten as a run of its own by a fleetcpu from before
    ``qemu_machines`` (hosts schema 1, and a commit record without a file list)."""
    store = Store.open(store_dir)
    [state] = [s for s in store.latest() if s.host == host]
    row = next(r for r in store.table("hosts", runs=[state.run]).to_pylist() if r["host"] == host)
    assert row["qemu_machines"], "the newer fleetcpu stores the list"
    now = datetime.now(UTC)
    old_run = new_run_id(now)
    row.update(run_id=old_run, collected_at=now)
    narrow = pa.schema([f for f in HOSTS_TABLE.schema if f.name != "qemu_machines"]).with_metadata(
        {META_TABLE: b"hosts", META_VERSION: b"1"}
    )
    layout = Layout(store_dir)
    path = layout.run_file("hosts", old_run)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{k: row[k] for k in narrow.names}], schema=narrow), path)
    record = store.table("runs").to_pylist()[-1]
    record.update(
        run_id=old_run,
        started_at=now,
        finished_at=now,
        command="import",
        status="complete",
        hosts_ok=1,
        hosts_failed=0,
        hosts_detail=0,
        files=None,
        part=None,
    )
    rpath = layout.run_file("runs", old_run)
    rpath.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([record], schema=RUNS.with_metadata), rpath)
    store.reindex()
    return old_run


def test_status_sees_a_machine_type_gone_from_a_hosts_qemu(fleet: Callable[..., Any]) -> None:
    """Item 2: the machine list is stored per host, so ``status`` (which judges stored data
    only) proves the adopted machine type missing, as the import did from the document."""
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    mt = replay.machine_probe(cf.POOL[0]).machine_type
    assert mt not in {m.name for m in cf.machine_list(NEWER_QEMU)}
    res = fleet.add("kvm01", NEWER_QEMU)  # type: ignore[attr-defined]
    assert res.returncode == 26 and "non-compliant: kvm01: machine-type-missing" in res.stdout
    rc, doc = _status(fleet)
    [pool] = doc["pools"]
    states = {m["host"]: (m["state"], m["reason"]) for m in pool["members"]}
    assert rc == 26 and states == {
        "kvm01": ("non-compliant", "machine-type-missing"),
        "kvm02": ("compliant", None),
        "kvm03": ("compliant", None),
        "kvm04": ("compliant", None),
    }
    [m] = [m for m in pool["members"] if m["host"] == "kvm01"]
    assert m["detail"] == f"its QEMU does not list machine type {mt}"
    table = fleet("status")
    assert table.returncode == 26
    assert (
        f"kvm01: non-compliant (machine-type-missing): its QEMU does not list machine type {mt}"
        in table.stdout
    )
    # What was stored is QEMU's own list, deprecation included.
    [row] = [
        r
        for r in Store.open(fleet.store).table("hosts").to_pylist()  # type: ignore[attr-defined]
        if r["host"] == "kvm01" and r["qemu_version"] == "5.0.0"
    ]
    listed = cf.machine_list(NEWER_QEMU)
    assert [(e["name"], e["alias"], e["is_default"], e["deprecated"]) for e in row["qemu_machines"]] == [
        (m.name, m.alias, m.is_default, m.deprecated) for m in listed
    ]
    assert any(m.deprecated for m in listed) and any(m.alias for m in listed)


def test_a_host_from_an_older_store_file_is_judged_as_before(fleet: Callable[..., Any]) -> None:
    """A hosts file from before ``qemu_machines`` reads it as null: the machine type is then
    undecided (not recorded), never proven missing; other hosts are unaffected."""
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    assert fleet.add("kvm01", NEWER_QEMU).returncode == 26  # type: ignore[attr-defined]
    old_run = _as_older_file(fleet.store, "kvm01")  # type: ignore[attr-defined]
    store = Store.open(fleet.store)  # type: ignore[attr-defined]
    [row] = store.table("hosts", runs=[old_run]).to_pylist()
    assert row["host"] == "kvm01" and row["qemu_machines"] is None
    rc, doc = _status(fleet)
    [pool] = doc["pools"]
    states = {m["host"]: m["state"] for m in pool["members"]}
    assert rc == 0 and states == {
        "kvm01": "undecided",
        "kvm02": "compliant",
        "kvm03": "compliant",
        "kvm04": "compliant",
    }
    [m] = [m for m in pool["members"] if m["host"] == "kvm01"]
    assert "not probed" in m["detail"] and "machine list is not recorded" in m["detail"]
    assert fleet("status", "--strict").returncode == 26


def test_strict_collect_and_import(fleet: Callable[..., Any], tmp_path: Path) -> None:
    """26 is for non-compliant members only; ``--strict`` adds failed, tcg-only (and
    undecided) members, in the same place of the precedence: collect still gives 6 when
    every host failed, import still 3 for a bad file (nothing stored)."""
    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    ok = make_replay_host(tmp_path / "r", cf.POOL[2], hostname="r-ok")
    inv = tmp_path / "hosts.txt"
    good = f"kvm03 transport=local accel=kvm qemu={ok.binary} host_root={ok.root}\n"
    down = "kvm07 transport=local qemu=/nonexistent/qemu accel=kvm\n"
    inv.write_text("[prod]\n" + good + down)
    res = fleet("collect", str(inv), "--timeout", "30")
    assert res.returncode == 5, res.stdout + res.stderr  # a failed member: not non-compliant
    res = fleet("collect", str(inv), "--timeout", "30", "--strict")
    assert res.returncode == 26, res.stdout + res.stderr
    assert "1 host(s) cannot be shown to run their pool's adopted CPU: kvm07 (failed)" in res.stderr
    assert "also 1 of 2 host(s) failed" in res.stderr
    inv.write_text("[prod]\n" + down)
    res = fleet("collect", str(inv), "--timeout", "30", "--strict")
    assert res.returncode == 6, res.stdout + res.stderr  # 6 before 26
    inv.write_text("[prod]\n" + good)
    res = fleet("collect", str(inv), "--timeout", "30", "--strict")
    assert res.returncode == 0, res.stdout + res.stderr  # every member compliant
    # import: a TCG-only probe of a member is 0, and 26 under --strict.
    doc = cf.write_doc(tmp_path / "tcg.json", cf.document("qemu-5.0-Xeon-E3-1245-v5", accel="tcg"))
    res = fleet("import", "--pool", "prod", "--host", "kvm02", str(doc))
    assert res.returncode == 0, res.stdout + res.stderr
    res = fleet("import", "--pool", "prod", "--host", "kvm02", "--strict", str(doc))
    assert res.returncode == 26 and "kvm02 (tcg-only)" in res.stderr, res.stdout + res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    before = len(Store.open(fleet.store).runs())  # type: ignore[attr-defined]
    res = fleet("import", "--pool", "prod", "--strict", str(doc), str(bad))
    assert res.returncode == 3 and len(Store.open(fleet.store).runs()) == before  # type: ignore[attr-defined]


def test_status_json_text_is_the_document_with_a_member_per_line(fleet: Callable[..., Any]) -> None:
    """``status --format json`` is exactly ``fleetcpu.status/1`` (what ``json.dumps`` of the
    document would say), indented, with each member on one line of its own."""
    from fleetcpu.contract.status import status_text

    assert fleet("adopt", "--pool", "prod", "--yes").returncode == 0
    assert fleet.add("kvm05", "Xeon-E5-2609-v3", pool="lab").returncode == 0  # type: ignore[attr-defined]
    res = fleet("status", "--format", "json")
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert status_text(doc) == res.stdout
    lines = res.stdout.splitlines()
    members = [json.loads(line.strip().rstrip(",")) for line in lines if '"host": ' in line]
    assert members == [m for p in doc["pools"] for m in p["members"]] and len(members) == 4
    assert [(p["pool"], len(p["members"])) for p in doc["pools"]] == [("lab", 0), ("prod", 4)]
    assert res.stdout.startswith('{\n  "schema": "fleetcpu.status/1",\n')
    values: list[dict[str, Any]] = [{}, {"a": []}, {"pools": []}, {"a": {"b": [1, {"c": None}]}}]
    for value in values:
        assert json.loads(status_text(value)) == value
