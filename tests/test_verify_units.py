"""``fleetcpu verify``'s parts on records and bytes: the host document, the verdicts, the report, the store.

The documents are real: the host half run once on this machine's QEMU under
TCG (a CPU that starts, one that QEMU refuses); variants (another host's
register, a scalar, a failed read) are derived from them with
``dataclasses.replace``, so every feature bit came from QEMU.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from fleetcpu.errors import ProbeDocumentError, UnknownPoolError, UsageError, VerifyFailedError
from fleetcpu.fleet.inventory import HostSpec
from fleetcpu.fleet.remote_run import HostFailure, RemoteRun
from fleetcpu.outcome import ConnectionSpec
from fleetcpu.probe.document import FeatureWord, QueryFailure
from fleetcpu.probe.enforce_document import VerifyDocument, missing_features, verify_from_json
from fleetcpu.speed import plain
from fleetcpu.store import Store
from fleetcpu.verify import HostRun, Target, VerifyReport, judge
from fleetcpu.verify.enforce_reply import interpret
from fleetcpu.verify.judge import differences, words_digest
from fleetcpu.verify.report import render, report_json
from fleetcpu.verify.targets import Unreachable, check_cpu, plan, spec_from_connection
from fleetcpu.verify.verify_rows import verify_row

from .conftest import PYTHON, REPO

SCHEMAS = REPO / "fleetcpu" / "schemas"
DOC_SCHEMA = json.loads((SCHEMAS / "verify-1.json").read_text())
REPORT_SCHEMA = json.loads((SCHEMAS / "verify-report-1.json").read_text())
TARGET = Target("lab", "tcg", "pc-q35-7.2", "qemu64,+avx2", "option")
WHEN = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@functools.cache
def real(cpu: str) -> tuple[str, VerifyDocument]:
    """The host half on this machine's QEMU (TCG): its stdout and the parsed document."""
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", "verify", "--cpu", cpu, "--machine-type", "q35", "--accel", "tcg"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout, verify_from_json(res.stdout)


def started() -> VerifyDocument:
    return real("qemu64,+avx2")[1]


def refused() -> VerifyDocument:
    return real("qemu64,+avx512f,+invtsc")[1]


def run_of(host: str, doc: VerifyDocument | None, **kw: object) -> HostRun:
    return HostRun(host, "lab", WHEN, 0.2, doc, **kw)


def with_word(doc: VerifyDocument, leaf: int, register: str, bits: int) -> VerifyDocument:
    """The document with one register's bits replaced (a host whose CPU differs there)."""
    assert doc.feature_words is not None
    words = tuple(
        dataclasses.replace(w, bits=bits) if (w.leaf, w.register) == (leaf, register) else w
        for w in doc.feature_words
    )
    return dataclasses.replace(doc, feature_words=words)


# --------------------------------------------------------------------------- the host document


def test_real_documents_validate_and_round_trip() -> None:
    for cpu in ("qemu64,+avx2", "qemu64,+avx512f,+invtsc"):
        text, doc = real(cpu)
        jsonschema.validate(json.loads(text), DOC_SCHEMA)
        assert verify_from_json(doc.to_json()) == doc
    ok = started()
    assert ok.started is True and ok.machine_type == "pc-q35-7.2" and ok.accel_used == "tcg"
    assert ok.feature_words and ok.filtered_features is not None
    assert not [w for w in ok.filtered_features if w.bits]
    assert ok.argv[ok.argv.index("-cpu") + 1] == "qemu64,+avx2,enforce"
    no = refused()
    assert (no.started, no.exit_status, no.feature_words) == (False, 1, None)
    assert no.missing == ("avx512f", "invtsc")
    assert "TCG doesn't support requested features" in no.stderr_tail


def test_a_failed_document_validates(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            PYTHON,
            "-m",
            "fleetcpu.probe",
            "verify",
            "--cpu",
            "qemu64",
            "--machine-type",
            "q35",
            "--accel",
            "tcg",
            "--qemu-binary",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert res.returncode == 10, res.stderr
    jsonschema.validate(json.loads(res.stdout), DOC_SCHEMA)
    doc = verify_from_json(res.stdout)
    assert (doc.status, doc.stage, doc.error_code, doc.started) == ("failed", "qemu", "qemu-missing", None)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"schema": "fleetcpu.probe/1"}, "schema"),
        ({"schema": "fleetcpu.verify/2"}, "schema"),
        ({"started": "yes"}, "started"),
        (
            {"feature_words": [{"leaf": 1, "subleaf": 0, "register": "exx", "bits": 1}]},
            "feature_words[0].register",
        ),
        ({"started": None}, "started"),
        ({"status": "failed"}, "stage"),
    ],
)
def test_a_bad_document_names_the_key_at_fault(change: dict[str, object], key: str) -> None:
    value = json.loads(real("qemu64,+avx2")[0])
    value.update(change)
    with pytest.raises(ProbeDocumentError) as exc:
        verify_from_json(json.dumps(value), "kvm07")
    assert exc.value.key == key, exc.value.message


@pytest.mark.parametrize(
    ("stderr", "names"),
    [
        # QEMU 7.2 under KVM on this machine (nested PVM hides SSE3+).
        (
            "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni "
            "[bit 0]\nqemu-system-x86_64: Host doesn't support requested features\n",
            ("pni",),
        ),
        # A dependency warning names a feature that is not missing.
        (
            "qemu-system-x86_64: warning: This feature depends on other features that were not "
            "requested: MSR(48BH).vmx-ept [bit 1]\nqemu-system-x86_64: warning: host doesn't support "
            "requested feature: MSR(10AH).taa-no [bit 8]\n",
            ("taa-no",),
        ),
        # A name with a dot, a legacy spelling (canonicalised), a bit without a name, twice one name.
        (
            "warning: TCG doesn't support requested feature: CPUID.01H:ECX.sse4.1 [bit 19]\n"
            "warning: TCG doesn't support requested feature: CPUID.01H:ECX.pclmuldq [bit 1]\n"
            "warning: TCG doesn't support requested feature: CPUID.07H:EBX [bit 5]\n"
            "warning: TCG doesn't support requested feature: CPUID.07H:EBX.avx2 [bit 5]\n",
            ("sse4.1", "pclmulqdq", "avx2"),
        ),
        ("qemu-system-x86_64: unsupported machine type\n", ()),
    ],
)
def test_missing_features_are_read_from_qemus_enforce_warnings(stderr: str, names: tuple[str, ...]) -> None:
    assert missing_features(stderr) == names


# --------------------------------------------------------------------------- bytes -> answer


def remote(
    stdout: bytes = b"", stderr: bytes = b"", status: int | None = 0, signal_: str | None = None, **kw: object
) -> RemoteRun:
    return RemoteRun(stdout, stderr, status, signal_, 0.1, **kw)


def failed_doc_bytes() -> bytes:
    doc = dataclasses.replace(
        started(), status="failed", stage="qmp", error="QMP failure", error_code="qmp", exit_code=14
    )
    return doc.to_json().encode()


@pytest.mark.parametrize(
    ("run", "stage", "code", "has_doc"),
    [
        (remote(real("qemu64,+avx2")[0].encode()), None, None, True),
        (remote(real("qemu64,+avx512f,+invtsc")[0].encode()), None, None, True),
        (remote(failed_doc_bytes(), status=14), "qmp", "qmp", True),
        (remote(b"", b"sh: 1: exec: python3: not found\n", 127), "python", "python-missing", False),
        (remote(b"\x89PNG garbage"), "output", "bad-output", False),
        (
            remote(real("qemu64,+avx2")[0].encode()[:300], status=None, signal_="KILL"),
            "output",
            "killed",
            False,
        ),
        (remote(b"", status=None, timed_out=True), "timeout", "timeout", False),
        (
            remote(real("qemu64,+avx2")[0].encode(), status=None, timed_out=True, killed=True),
            "cleanup",
            "cleanup",
            True,
        ),
        (remote(real("qemu64,+avx2")[0].encode(), status=None, signal_="SEGV"), "cleanup", "cleanup", True),
        (remote(failed_doc_bytes(), status=None, timed_out=True), "timeout", "timeout", True),
        (remote(json.dumps({"schema": "fleetcpu.probe/1"}).encode()), "output", "bad-output", False),
    ],
)
def test_answers_from_bytes(run: RemoteRun, stage: str | None, code: str | None, has_doc: bool) -> None:
    answer = interpret(run, "python3")
    assert (answer.stage, answer.code, answer.document is not None) == (stage, code, has_doc), answer.error
    if stage == "output":  # judged as what it should have been: a verify document
        assert answer.error
        assert "probe document" not in answer.error
        assert "verify output" in answer.error or "verify document" in answer.error


# --------------------------------------------------------------------------- verdicts


def test_equal_hosts_pass_against_the_first_host() -> None:
    doc = started()
    report = judge(TARGET, [run_of(h, doc) for h in ("c", "a", "b")])
    assert [h.host for h in report.hosts] == ["a", "b", "c"]
    assert report.reference == "a" and report.passed
    assert {h.verdict for h in report.hosts} == {"pass"}
    assert {h.equal_to_pool for h in report.hosts} == {True}
    assert report.reference_digest == report.hosts[0].words_digest
    assert report.hosts[0].vcpu == doc.vcpu


def test_the_odd_host_out_is_named_with_the_register_and_features_it_differs_in() -> None:
    doc = started()
    assert doc.feature_words is not None
    ebx7 = next(w.bits for w in doc.feature_words if (w.leaf, w.register) == (7, "ebx"))
    assert ebx7 & (1 << 5), "avx2 was asked for"
    odd = with_word(doc, 7, "ebx", (ebx7 & ~(1 << 5)) | (1 << 3))  # no avx2, bmi1 instead
    odd = dataclasses.replace(odd, vcpu=dataclasses.replace(doc.vcpu, phys_bits=39))
    # The odd host sorts first: the majority still makes the reference.
    report = judge(TARGET, [run_of("a-odd", odd), run_of("b", doc), run_of("c", doc)])
    assert report.reference == "b" and not report.passed
    verdict = {h.host: h for h in report.hosts}
    assert verdict["a-odd"].verdict == "differs" and verdict["a-odd"].equal_to_pool is False
    reg, scalar = verdict["a-odd"].differences
    assert (reg.kind, reg.name, reg.extra, reg.lacking) == ("register", "0x7.0.ebx", ("bmi1",), ("avx2",))
    assert (scalar.kind, scalar.name, scalar.host, scalar.pool) == (
        "scalar",
        "phys_bits",
        39,
        doc.vcpu.phys_bits,
    )
    assert "0x7.0.ebx +bmi1 -avx2" in verdict["a-odd"].reason
    assert "phys_bits 39" in verdict["a-odd"].reason
    # Two against two: the group holding the host that sorts first is the reference.
    tie = judge(TARGET, [run_of(h, odd) for h in ("a", "d")] + [run_of(h, doc) for h in "bc"])
    assert tie.reference == "a"
    assert {h.host for h in tie.hosts if h.verdict == "differs"} == {"b", "c"}


def test_zero_words_a_newer_qemu_lists_do_not_make_a_difference() -> None:
    doc = started()
    assert doc.feature_words is not None
    more = dataclasses.replace(doc, feature_words=(*doc.feature_words, FeatureWord(0x24, 0, "ebx", 0)))
    assert words_digest(more.feature_words or ()) == words_digest(doc.feature_words)
    assert differences(more.feature_words or (), doc.feature_words, doc.vcpu, doc.vcpu) == ()


def test_every_way_to_fall_short_is_its_own_verdict() -> None:
    doc = started()
    filtered = dataclasses.replace(
        doc, filtered_features=(FeatureWord(7, 0, "ebx", 1 << 5), FeatureWord(0xD, 0, "eax", 4))
    )
    unreadable = dataclasses.replace(
        doc,
        feature_words=None,
        errors=(QueryFailure("qom-get feature-words", "GenericError", "replay: not captured"),),
    )
    failed = dataclasses.replace(
        doc, status="failed", stage="timeout", error="too slow", error_code="timeout", started=True
    )
    runs = [
        run_of("ok", doc),
        run_of("refused", refused()),
        run_of("filtered", filtered),
        run_of("unreadable", unreadable),
        run_of("failed-doc", failed),
        run_of("no-route", None, stage="connect", error="cannot connect", error_code="connect"),
        run_of("dirty", doc, stage="cleanup", error="did not exit", error_code="cleanup"),
    ]
    report = judge(TARGET, runs)
    v = {h.host: h for h in report.hosts}
    assert {h: x.verdict for h, x in v.items()} == {
        "ok": "pass",
        "refused": "refused",
        "filtered": "filtered",
        "unreadable": "unverified",
        "failed-doc": "failed",
        "no-route": "failed",
        "dirty": "failed",
    }
    assert report.reference == "ok" and not report.passed
    assert v["refused"].missing == ("avx512f", "invtsc") and v["refused"].started is False
    assert "lacks avx512f, invtsc" in v["refused"].reason
    assert "TCG doesn't support" in v["refused"].stderr_tail
    assert v["filtered"].filtered == ("0xd.0.eax&0x4", "avx2")
    assert "replay: not captured" in v["unreadable"].reason and v["unreadable"].equal_to_pool is None
    assert (v["failed-doc"].stage, v["failed-doc"].error_code) == ("timeout", "timeout")
    assert v["no-route"].started is None and v["no-route"].reason == "connect: cannot connect"
    # A cleanup failure keeps its data but never passes, nor stands for the pool.
    assert v["dirty"].words_digest == v["ok"].words_digest and v["dirty"].stage == "cleanup"
    assert report.counts() == {"pass": 1, "refused": 1, "filtered": 1, "unverified": 1, "failed": 3}


def test_no_readable_vcpu_means_no_reference_and_no_pass() -> None:
    report = judge(TARGET, [run_of("a", refused()), run_of("b", refused())])
    assert report.reference is None and report.reference_digest is None
    assert not report.passed
    assert not judge(TARGET, []).passed, "an empty pool proves nothing"
    with pytest.raises(ValueError, match="twice"):
        judge(TARGET, [run_of("a", started()), run_of("a", started())])


# --------------------------------------------------------------------------- report and rows


def mixed_report() -> tuple[list[HostRun], VerifyReport]:
    doc = started()
    runs = [
        run_of("a", doc),
        run_of("b", with_word(doc, 1, "ecx", 1)),
        run_of("c", refused()),
        run_of("d", None, stage="hostkey", error="HOST KEY CHANGED", error_code="hostkey-changed"),
    ]
    return runs, judge(TARGET, runs, run_id="20261126T100000.000Z-0badc0de", elapsed_s=1.25)


def test_the_json_report_follows_its_schema_and_the_table_says_why() -> None:
    _, report = mixed_report()
    doc = report_json(report)
    jsonschema.validate(doc, REPORT_SCHEMA)
    assert json.loads(render(report, "json")) == doc
    assert doc["summary"] == {
        "hosts": 4,
        "passed": 1,
        "failed": 3,
        "verdicts": {"pass": 1, "refused": 1, "differs": 1, "failed": 1},
    }
    assert doc["reference"]["host"] == "a" and doc["passed"] is False
    table = render(report, "table")
    lines = table.splitlines()
    assert lines[1] == "  -cpu qemu64,+avx2,enforce"
    assert lines[-1] == (
        "verify of pool lab FAILED: 1 of 4 host(s) passed, refused 1, differs 1, "
        "failed 1 in 1.2s; run 20261126T100000.000Z-0badc0de"
    )
    row = {line.split()[0]: line for line in lines[3:-2]}
    assert "reference" in row["a"] and "lacks avx512f, invtsc" in row["c"]
    assert "hostkey: HOST KEY CHANGED" in row["d"]
    with pytest.raises(ValueError, match="format"):
        render(report, "yaml")


def test_a_verify_run_is_stored_in_its_own_table_and_leaves_hosts_latest_alone(tmp_path: Path) -> None:
    from .test_store_support import ok_document, outcome

    store = Store.create_or_open(tmp_path / "store")
    with store.run_writer(command="collect") as w:
        w.add(outcome("a", ok_document("tcg"), pool="lab"))
    before = store.latest()
    _, report = mixed_report()
    with store.run_writer(command="verify", inventory="hosts.txt") as w:
        for h in report.hosts:
            w.add_verify(verify_row(h, TARGET, report.reference), passed=h.passed)
        with pytest.raises(ValueError, match="twice"):
            w.add_verify(verify_row(report.hosts[0], TARGET, "a"), passed=True)
        with pytest.raises(Exception):  # noqa: B017, PT011 - pyarrow's own conversion error
            w.add_verify({"host": "e", "pool": "lab", "passed": "maybe"}, passed=False)
    assert store.latest() == before, "a verify run is not any host's latest record"
    run = store.runs()[-1]
    assert (run.command, run.inventory, run.status, run.hosts_ok, run.hosts_failed) == (
        "verify",
        "hosts.txt",
        "complete",
        1,
        3,
    )
    rows = {r["host"]: r for r in store.table("verify").to_pylist()}
    assert set(rows) == {"a", "b", "c", "d"}, "the bad row left no trace"
    assert {r["run_id"] for r in rows.values()} == {run.run_id}
    assert rows["a"]["passed"] and rows["a"]["equal_to_pool"] and rows["a"]["reference"] == "a"
    assert (
        rows["b"]["verdict"] == "differs" and json.loads(rows["b"]["differences"])[0]["name"] == "0x1.0.ecx"
    )
    assert rows["c"]["missing"] == ["avx512f", "invtsc"] and rows["c"]["started"] is False
    assert rows["c"]["exit_status"] == 1 and "doesn't support" in rows["c"]["stderr_tail"]
    assert rows["d"]["stage"] == "hostkey" and rows["d"]["started"] is None
    assert rows["d"]["error"] == "HOST KEY CHANGED"
    assert rows["a"]["cpu"] == TARGET.cpu and rows["a"]["resolved_machine_type"] == "pc-q35-7.2"


# --------------------------------------------------------------------------- plan


def test_stored_connection_specs_become_host_specs_or_a_stated_dead_end() -> None:
    ssh = spec_from_connection(
        "kvm1",
        "lab",
        "kvm",
        ConnectionSpec("ssh", "10.0.0.1", 2222, "ops", "/usr/bin/python3", "/opt/qemu"),
        "store:r1",
    )
    assert not isinstance(ssh, Unreachable)
    assert (ssh.address, ssh.port, ssh.user, ssh.python, ssh.qemu, ssh.transport, ssh.accel) == (
        "10.0.0.1",
        2222,
        "ops",
        "/usr/bin/python3",
        "/opt/qemu",
        "ssh",
        "kvm",
    )
    local = spec_from_connection("here", "lab", "tcg", ConnectionSpec("local"), "store:r1")
    assert not isinstance(local, Unreachable) and local.transport == "local"
    imported = spec_from_connection("kvm9", "lab", "kvm", ConnectionSpec("import"), "store:r1")
    assert isinstance(imported, Unreachable) and "give an inventory" in imported.message


@pytest.mark.parametrize("cpu", ["", " ", "Skylake Server", ",+avx", "qemu64,"])
def test_a_cpu_string_qemu_cannot_take_is_a_usage_error(cpu: str) -> None:
    with pytest.raises(UsageError):
        check_cpu(cpu)
    assert check_cpu(" EPYC-Rome-v2,+pcid ") == "EPYC-Rome-v2,+pcid"


def test_a_pool_the_inventory_does_not_name_is_exit_20_before_anything(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.txt"
    inv.write_text("[prod]\nkvm1\n[dev]\nkvm2\n")
    with pytest.raises(UnknownPoolError, match="its pools: dev, prod"):
        plan("lab", store=None, inventory_path=str(inv), accel="kvm", cpu="qemu64", machine_type="q35")
    p = plan("dev", store=None, inventory_path=str(inv), accel="kvm", cpu="qemu64", machine_type="q35")
    assert [h.name for h in p.hosts] == ["kvm2"] and p.target.cpu_source == "option"
    with pytest.raises(UsageError, match="--machine-type"):
        plan("dev", store=None, inventory_path=str(inv), accel="kvm", cpu="qemu64")
    assert VerifyFailedError.exit_code == 24


def test_the_history_queries_of_docs_verify_md_run_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    import duckdb

    text = (REPO / "docs" / "verify.md").read_text()
    store = Store.create_or_open(tmp_path / "store")
    _, failing = mixed_report()
    passing = judge(TARGET, [run_of(h, started()) for h in "ab"])
    for when, report in ((WHEN, passing), (WHEN.replace(hour=11), failing)):
        with store.run_writer(command="verify", started_at=when) as w:
            for h in report.hosts:
                w.add_verify(verify_row(h, TARGET, report.reference), passed=h.passed)
    [sql] = re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)
    rows = duckdb.execute(sql.replace("STORE", str(tmp_path / "store"))).fetchall()
    assert [(r[2], r[3], r[4]) for r in rows] == [(2, 2, None), (4, 1, "b differs, c refused, d failed")]
    [python] = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    exec(compile(python, "docs/verify.md", "exec"), {"store": str(tmp_path / "store")})  # noqa: S102
    out = capsys.readouterr().out
    assert "lab" in out and "11:00:00" in out and "10:00:00" not in out  # the first failing run


# --------------------------------------------------------------------------- collect's guarantees


class FakeTransport:
    """Answers like a host would, records the peak of commands in flight, resets some connects."""

    name = "ssh"

    def __init__(self, resets: dict[str, int]) -> None:
        self.resets = dict(resets)
        self.in_flight = 0
        self.peak = 0
        self.commands: list[str] = []

    async def run(self, host: HostSpec, command: str, stdin: bytes, timeout: float) -> RemoteRun:  # noqa: ARG002 - the Transport protocol
        import asyncio

        if self.resets.get(host.name, 0) > 0:
            self.resets[host.name] -= 1
            raise HostFailure("connect", "connection reset during the handshake", transient=True)
        if host.name == "changed":
            raise HostFailure("hostkey", "REMOTE HOST KEY CHANGED", code="hostkey-changed")
        assert stdin.startswith(b"FLEETCPU-BUNDLE/1 ")
        self.commands.append(command)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return remote(real("qemu64,+avx2")[0].encode())

    async def aclose(self) -> None:
        return None


def test_verifier_keeps_collects_bounds_retries_and_failure_rows(tmp_path: Path) -> None:
    import asyncio

    from fleetcpu.fleet.bundle import load_bundle
    from fleetcpu.fleet.fanout import RetryPolicy, fan_out
    from fleetcpu.fleet.options import FleetOptions
    from fleetcpu.verify.verify_fleet import Verifier

    bundle = load_bundle(tmp_path)
    assert "fleetcpu/probe/enforce.py" in bundle.names, "the host half travels in the bundle"
    names = [f"h{i:02d}" for i in range(20)] + ["changed"]
    hosts = [
        HostSpec(
            name=n,
            address=n,
            port=None,
            user=None,
            pool="lab",
            machine_types=(),
            qemu="/opt/qemu 7.2/bin/qemu-system-x86_64",
            python=None,
            accel="tcg",
            transport="ssh",
            groups=(),
            source="t",
        )
        for n in names
    ]
    transport = FakeTransport({"h03": 2, "h07": 5})
    verifier = Verifier(
        FleetOptions(concurrency=4, retries=2),
        {"ssh": transport},
        bundle,
        TARGET,
        retry=RetryPolicy(retries=2, base=0.001),
    )
    runs: list[HostRun] = []
    asyncio.run(fan_out(hosts, verifier.verify_host, concurrency=4, on_result=runs.append))
    assert transport.peak == 4, "at most --concurrency hosts in flight, and that many"
    report = judge(TARGET, runs)
    verdicts = {h.host: h for h in report.hosts}
    assert verdicts["h03"].verdict == "pass", "a reset connection is retried"
    assert (verdicts["h07"].stage, verdicts["h07"].verdict) == ("connect", "failed")
    assert "after 3 attempts" in str(verdicts["h07"].error)
    assert (verdicts["changed"].stage, verdicts["changed"].error_code) == ("hostkey", "hostkey-changed")
    assert sum(h.passed for h in report.hosts) == 19
    # Every command is the bootstrap with the host half's arguments, each one shell-quoted.
    start = "exec env FLEETCPU_PLAIN=1 python3" if plain() else "exec python3"  # the switch goes along
    assert all(c.startswith(f"{start} -E -s -c ") for c in transport.commands)
    assert all(
        c.endswith(
            " verify --cpu qemu64,+avx2 --machine-type pc-q35-7.2 --accel tcg "
            "--timeout 80 --qemu-binary '/opt/qemu 7.2/bin/qemu-system-x86_64'"
        )
        for c in transport.commands
    )
