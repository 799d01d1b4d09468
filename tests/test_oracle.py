"""libvirt judges fleetcpu's baseline: eight real host pairs, virsh's second opinion, model usability.

The oracle is libvirt's own expected answer for real host pairs
(``cputestdata/x86_64-cpuid-baseline-*.xml``), expanded through its cpu_map;
fleetcpu computes on members built from the same two hosts' captures
(``tests/oracle/judge.py`` says how every difference is classified). What
may legitimately differ is listed ONCE, in ``KNOWN`` below, each row with
its reason and a check against the data; a row no pair needs fails.

The results of this module are also the source of ``docs/oracle.md``: the
last test renders them with ``scripts/gen_oracle_doc.py`` and compares.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.baseline import Policy
from fleetcpu.probe.features import KVM_PV

from .conftest import PYTHON, REPO
from .oracle import cpu_map, judge, sweep, usability, virsh
from .oracle.judge import PAIRS, Known, PairResult, View
from .support.realdata import CPU_MAP, CPUTESTDATA

DOC = REPO / "docs" / "oracle.md"
GENERATOR = REPO / "scripts" / "gen_oracle_doc.py"
#: What the generator accepts (it refuses any other), so a change is caught by running it.
RESULTS_SCHEMA = "fleetcpu.oracle-results/1"


# --------------------------------------------------------------------------- the known differences


def _a_host_without_vmx(feature: str, v: View) -> str | None:
    """libvirt's vmx-* rows are right only where some host of the pair has no VMX to offer them."""
    without = [m.host for m in v.members if feature not in m.offered and "vmx" not in m.offered]
    if without:
        return None
    return "every host that lacks it still offers vmx (nesting on): no capture excuses it"


def _unnameable_and_offered(feature: str, v: View) -> str | None:
    """Ours alone is right only if libvirt cannot name it and both hosts really offer it."""
    if feature in v.nameable:
        return f"libvirt's cpu_map names it ({v.cpu_map.libvirt_names[feature]})"
    if v.lacking(feature):
        return f"{', '.join(v.lacking(feature))} does not offer it"
    return None


#: THE table of known correct differences between libvirt's baseline and ours.
KNOWN: tuple[Known, ...] = (
    Known(
        "vmx-* of libvirt's Intel models",
        "libvirt-only",
        lambda f: f.startswith("vmx-"),
        "libvirt 11.3's Intel models list ~70 VMX capability bits (added='yes'); QEMU drops "
        "them from any CPU without vmx, and at least one host of the pair was captured with "
        "nesting off (no vmx, so none of these bits): the guest would not get them either",
        _a_host_without_vmx,
    ),
    Known(
        "KVM paravirtual",
        "ours-only",
        lambda f: f in KVM_PV,
        "KVM's own CPUID leaf 0x40000001 (kvmclock, kvm-pv-eoi, ...): no cpu_map feature has "
        "those bits, so libvirt cannot name them (QEMU adds its defaults on its own); both "
        "hosts' KVM offers each one we keep",
        _unnameable_and_offered,
    ),
    Known(
        "lmce",
        "ours-only",
        lambda f: f == "lmce",
        "local machine-check exceptions (MCG_CAP bit 27, MSR 0x179): a QEMU CPU property with "
        "no cpu_map feature, so libvirt cannot name it; both hosts offer it",
        _unnameable_and_offered,
    ),
)


# --------------------------------------------------------------------------- the usability table


@dataclasses.dataclass(frozen=True)
class Justified:
    """A model only the probe lists in one domaincaps file: which, why, and the check on the data."""

    label: str
    covers: Callable[[str, usability.UsabilityResult], bool]
    reason: str
    check: Callable[[str, usability.UsabilityResult], str | None]


def _not_in(directory: Path, what: str) -> Callable[[str, usability.UsabilityResult], str | None]:
    def check(model: str, _: usability.UsabilityResult) -> str | None:
        if not (directory / "x86_features.xml").exists():
            return f"cannot check: no cpu_map at {directory}"
        return f"{what} defines {model}" if model in cpu_map.load(directory).models else None

    return check


def _lists_blockers(r: usability.UsabilityResult) -> bool:
    """Files written by libvirt >= 8 list <blockers> for unusable models; older ones never do."""
    return r.blockers_compared > 0


HOST_CPUS = frozenset({"host", "max", "base"})

#: Models the probe reads from the replies that a domaincaps file does not list.
USABILITY_KNOWN: tuple[Justified, ...] = (
    Justified(
        "host, max, base",
        lambda m, _: m in HOST_CPUS,
        "QEMU's host-dependent and empty CPUs, not models: libvirt offers the host through its "
        "host-passthrough/host-model modes and lists as custom models only what its cpu_map "
        "defines, which has none of the three",
        _not_in(CPU_MAP, "libvirt 11.3's cpu_map"),
    ),
    Justified(
        "newer than libvirt 11.3's cpu_map",
        lambda m, r: m not in HOST_CPUS and _lists_blockers(r),
        "libvirt lists only models its cpu_map defines; QEMU 10.0's newest (ClearwaterForest, "
        "SierraForest-v2, YongFeng) are not in 11.3's",
        _not_in(CPU_MAP, "libvirt 11.3's cpu_map"),
    ),
    Justified(
        "older libvirt wrote the QEMU 5.0 files",
        lambda m, r: m not in HOST_CPUS and not _lists_blockers(r),
        "these files carry no `canonical=` and no `<blockers>`: an older libvirt wrote them, whose "
        "cpu_map had no versioned names, Denverton or KnightsMill; Debian 12's libvirt 9.0 "
        "cpu_map here lacks exactly these too",
        _not_in(virsh.SYSTEM_CPU_MAP, "Debian's libvirt cpu_map"),
    ),
)


# --------------------------------------------------------------------------- computing the results


def _judged() -> dict[str, PairResult]:
    old = cpu_map.load(virsh.SYSTEM_CPU_MAP) if virsh.available() else None
    new = cpu_map.load(CPU_MAP)
    out = {}
    for pair in PAIRS:
        v = judge.view(pair)
        result = judge.judge(v, KNOWN)
        if old is not None:
            hosts = tuple(
                virsh.host_definition(c, new.expand(CPUTESTDATA / judge.host_file(c)), new, old)
                for c in pair.hosts
            )
            assert len(hosts) == 2
            opinion = virsh.opinion((hosts[0], hosts[1]), v.theirs, v.libvirt.model, old)
            result = dataclasses.replace(result, virsh=dataclasses.asdict(opinion))
        out[pair.name] = result
    return out


@pytest.fixture(scope="module")
def judged() -> dict[str, PairResult]:
    return _judged()


def _justify(r: usability.UsabilityResult) -> dict[str, str | None]:
    """Model -> the label of the first row covering it (None: nothing covers it)."""
    return {m: next((j.label for j in USABILITY_KNOWN if j.covers(m, r)), None) for m in r.only_ours}


@pytest.fixture(scope="module")
def usable() -> dict[str, usability.UsabilityResult]:
    return {case.file: usability.compare(case) for case in usability.CASES}


# --------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("pair", PAIRS, ids=[p.name for p in PAIRS])
def test_pair_against_libvirt(pair: judge.Pair, judged: dict[str, PairResult]) -> None:
    result = judged[pair.name]
    assert not result.failures, "\n".join(result.failures)
    assert result.status != "FAILS"
    # Nothing else: the libvirt answer was really read (a model, dozens of features).
    assert result.libvirt_total > 40 and result.equal > 40


def test_every_known_difference_is_needed(judged: dict[str, PairResult]) -> None:
    used = {label for r in judged.values() for label in r.known_used}
    stale = [k.label for k in KNOWN if k.label not in used]
    assert not stale, f"KNOWN rows no pair needs (remove them): {stale}"


def test_policy_reasons_are_the_only_reasons() -> None:
    """A feature we drop 'by policy' comes back when the policy allows it (nesting on everywhere)."""
    permissive = Policy(non_migratable=True, nested=True, kvm_pv=True, tsx=True)
    seen = 0
    for pair in PAIRS:
        strict = judge.judge(judge.view(pair), KNOWN)
        dropped = [d.feature for d in strict.differences if d.verdict == "policy"]
        if not dropped:
            continue
        loose = judge.view(pair, permissive, nested=True)
        assert set(dropped) <= loose.ours, pair.name
        seen += len(dropped)
    assert seen, "no pair exercises a policy reason: this test would prove nothing"


def test_the_judge_fails_a_wrong_baseline() -> None:
    """Deliberately wrong baselines: one feature a host lacks, one feature silently lost."""
    pair = next(p for p in PAIRS if p.name == "Skylake-Client+Server")
    v = judge.view(pair)
    assert "avx512f" in v.members[1].offered and "avx512f" not in v.members[0].offered
    wrong = dataclasses.replace(
        v.baseline, features=tuple(sorted((set(v.baseline.features) | {"avx512f"}) - {"sse4.2"}))
    )
    result = judge.judge(dataclasses.replace(v, baseline=wrong), KNOWN)
    assert any(f.startswith("we enable avx512f, which Core-i5-6600") for f in result.failures)
    assert any(
        "sse4.2: both hosts offer it and we drop it without a policy reason" in f for f in result.failures
    )
    # A known row whose check no longer holds fails too, and so does a missing row.
    lying = (dataclasses.replace(KNOWN[1], check=lambda _f, _v: "contradicted"), *KNOWN[::2])
    result = judge.judge(v, lying)
    assert any("known row 'KVM paravirtual' does not hold: contradicted" in f for f in result.failures)
    result = judge.judge(v, KNOWN[:1])
    assert [d.verdict for d in result.differences if d.feature == "kvmclock"] == ["larger"]
    result = judge.judge(v, KNOWN[1:])
    assert {d.verdict for d in result.differences if d.feature.startswith("vmx-")} == {"fail"}


def test_libvirt_reads_each_host_as_we_do() -> None:
    """Both readings of every capture agree, bar the known rows: 'a host lacks it' means the same."""
    for pair in PAIRS:
        v = judge.view(pair)
        for member, reading in zip(v.members, v.readings, strict=True):
            ours = {f for f in member.offered if f in v.nameable and not f.startswith("vmx-")}
            theirs = {f for f in reading if not f.startswith("vmx-")}
            assert ours == theirs, (member.host, sorted(ours ^ theirs))


# --------------------------------------------------------------------------- virsh


@pytest.mark.skipif(not virsh.available(), reason="Debian's libvirt-clients (virsh) not installed")
def test_virsh_second_opinion(judged: dict[str, PairResult]) -> None:
    """Recorded, never failed on: where Debian's older virsh errs or differs, the row says so."""
    for result in judged.values():
        opinion = result.virsh
        assert opinion is not None
        assert opinion["verdict"] in ("agrees", "oracles disagree"), opinion
        if opinion["verdict"] == "agrees":
            assert opinion["model"] and opinion["features"], opinion
        for host in opinion["hosts"]:
            assert host["xml"].startswith("<cpu>\n  <arch>x86_64</arch>\n  <model>"), host


@pytest.mark.skipif(not virsh.available(), reason="Debian's libvirt-clients (virsh) not installed")
def test_virsh_errors_and_differences_are_recorded_not_failed() -> None:
    """The path the eight real pairs do not take here: virsh refusing, or answering otherwise."""
    new, old = cpu_map.load(CPU_MAP), cpu_map.load(virsh.SYSTEM_CPU_MAP)
    pair = PAIRS[0]
    a, b = (
        virsh.host_definition(c, new.expand(CPUTESTDATA / judge.host_file(c)), new, old) for c in pair.hosts
    )
    expected = new.to_qemu(new.expand(CPUTESTDATA / judge.baseline_file(pair)).features)
    bogus = dataclasses.replace(a, xml=a.xml.replace("</cpu>", "  <feature name='no-such-bit'/>\n</cpu>"))
    refused = virsh.opinion((bogus, b), expected, "Broadwell-IBRS", old)
    assert refused.verdict == "oracles disagree" and "no-such-bit" in refused.detail
    other = virsh.opinion((a, b), expected | {"avx512f"}, "Skylake-Server", old)
    assert other.verdict == "oracles disagree"
    assert other.detail.startswith("features differ from libvirt 11.3's: -avx512f")
    assert "names the model Broadwell-IBRS, libvirt 11.3 Skylake-Server" in other.detail


@pytest.mark.skipif(not virsh.available(), reason="Debian's libvirt-clients (virsh) not installed")
def test_virsh_reads_every_capture_back_as_the_host() -> None:
    """The rewriting is faithful for every captured host virsh's cpu_map can describe at all.

    ``python -m tests.oracle.sweep`` relies on it to ask virsh about hundreds of pairs
    libvirt has no expected answer for; only the Hygon host is out (no Hygon model in 9.0).
    """
    every, skipped = sweep.hosts()
    assert len(every) >= 40
    assert [s.split(":")[0] for s in skipped] == ["Hygon-C86-7185-32-core"]
    misread = {h.name: h.definition.readback_diff for h in every if not h.definition.faithful}
    assert not misread, misread
    assert {h.definition.model for h in every} >= {"Opteron_G3", "Skylake-Server", "EPYC-IBPB"}


# --------------------------------------------------------------------------- usability


@pytest.mark.parametrize("case", usability.CASES, ids=[c.file for c in usability.CASES])
def test_model_usability_against_domaincaps(
    case: usability.Case, usable: dict[str, usability.UsabilityResult]
) -> None:
    r = usable[case.file]
    assert r.compared > 50
    assert not r.disagreements, "\n".join(r.disagreements)
    assert r.usable_agree == r.compared and r.blockers_agree == r.blockers_compared
    assert not r.only_libvirt, f"libvirt lists models the replies lack: {r.only_libvirt}"
    unexplained = [m for m, label in _justify(r).items() if label is None]
    assert not unexplained, f"models only we list, with no row in USABILITY_KNOWN: {unexplained}"
    for model, label in _justify(r).items():
        row = next(j for j in USABILITY_KNOWN if j.label == label)
        contradiction = row.check(model, r)
        assert contradiction is None, f"{model}: row {label!r} does not hold: {contradiction}"


def test_blockers_need_libvirt_spellings_translated(usable: dict[str, usability.UsabilityResult]) -> None:
    """The translation through x86_features.xml is exercised: some blockers are spelt differently."""
    assert sum(r.blockers_respelt for r in usable.values()) > 0


def test_every_usability_row_is_needed(usable: dict[str, usability.UsabilityResult]) -> None:
    used = {label for r in usable.values() for label in _justify(r).values()}
    stale = [j.label for j in USABILITY_KNOWN if j.label not in used]
    assert not stale, f"USABILITY_KNOWN rows no file needs (remove them): {stale}"


# --------------------------------------------------------------------------- docs/oracle.md


def results_json(
    judged: dict[str, PairResult], usable: dict[str, usability.UsabilityResult]
) -> dict[str, Any]:
    """Everything docs/oracle.md shows, as plain JSON (the generator's only input)."""
    pairs = []
    for pair in PAIRS:
        r = judged[pair.name]
        pairs.append({**dataclasses.asdict(r), "status": r.status})
    used_by = {k.label: [p.name for p in PAIRS if k.label in judged[p.name].known_used] for k in KNOWN}
    files_by = {
        j.label: [c.file for c in usability.CASES if j.label in _justify(usable[c.file]).values()]
        for j in USABILITY_KNOWN
    }
    return {
        "schema": RESULTS_SCHEMA,
        "libvirt_data": "libvirt v11.3.0 test data in ../shared/realdata/libvirt",
        "virsh_version": virsh.version() if virsh.available() else None,
        "known": [
            {"label": k.label, "side": k.side, "reason": k.reason, "used_by": used_by[k.label]} for k in KNOWN
        ],
        "pairs": pairs,
        "usability": [
            {**dataclasses.asdict(usable[c.file]), "justified": _justify(usable[c.file])}
            for c in usability.CASES
        ],
        "usability_known": [
            {"label": j.label, "side": "only ours", "reason": j.reason, "used_by": files_by[j.label]}
            for j in USABILITY_KNOWN
        ],
    }


def test_docs_oracle_md_is_generated_from_these_results(
    judged: dict[str, PairResult],
    usable: dict[str, usability.UsabilityResult],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = tmp_path_factory.getbasetemp() / "oracle-results.json"
    path.write_text(json.dumps(results_json(judged, usable), indent=1, sort_keys=True) + "\n")
    res = subprocess.run(
        [PYTHON, str(GENERATOR), str(path)], capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )
    assert res.returncode == 0, res.stderr
    assert DOC.exists() and DOC.read_text() == res.stdout, (
        f"docs/oracle.md is not what the generator makes of this run's results; regenerate:\n"
        f"  {PYTHON} {GENERATOR.relative_to(REPO)} {path} -o docs/oracle.md"
    )
