"""The real probe against replay hosts: ~45 real CPUs answering through ``tests/replay``.

Every test runs the real ``python -m fleetcpu.probe`` in a subprocess against
a real stand-in process (``tests/support/replay/replay_qemu.py``) and checks the
document against the capture as ``tests/support/realdata.py`` reads it (a reader
independent of the fake's own), so a fake that drifts from the capture, and
a probe that mangles what QEMU said, both fail here. Tests of QEMU-compatible
behaviour the probe never triggers (``enforce``, argv errors, QMP protocol)
drive the fake directly, with the probe's exact argv.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.probe.document import CpuModel, Expansion, MachineProbe, ProbeDocument
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.probe.qmp_decode import decode_cpu_definitions, decode_expansion

from .conftest import PYTHON, REPO
from .support.realdata import Exchange, conversation, cpuid_rows, cputest_replies
from .support.replay import replay_qemu
from .support.replay.hosts import (
    HostCapture,
    ReplayHost,
    catalogue,
    find_capture,
    make_replay_host,
    run_fake,
)

CATALOGUE = catalogue()
REPLIES = [c for c in CATALOGUE if c.kind == "replies"]
#: (leaf, subleaf, register, bits) of one CPUID register.
Word = tuple[int, int, str, int]


def run_probe(host: ReplayHost, *args: str, tmp: Path) -> tuple[int, ProbeDocument, str]:
    """The real probe CLI, stdlib ``__main__`` as shipped to hosts."""
    env = dict(os.environ, TMPDIR=str(tmp))
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", *host.probe_args(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        check=False,
    )
    doc = document_from_json(res.stdout, "probe stdout")
    assert doc.exit_code == res.returncode, res.stderr
    return res.returncode, doc, res.stderr


# ---------------------------------------------------------------------------
# What the capture says, read with tests/support/realdata.py (not with the fake's reader)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    props: dict[str, Any]  # the host expansion's props: vendor/family/... live here
    static: Expansion | None
    full: Expansion | None
    models: tuple[CpuModel, ...] | None
    words: set[Word] | None
    filtered: set[Word] | None


def _masks(path: Path) -> set[Word]:
    return {
        (leaf, sub, reg, bits) for leaf, sub, regs in cpuid_rows(path) for reg, bits in regs.items() if bits
    }


def _passes(path: Path) -> dict[str, list[Exchange]]:
    """A conversation split at its second qmp_capabilities: KVM pass, then TCG pass."""
    exchanges = conversation(path)
    starts = [e.index for e in exchanges if e.execute == "qmp_capabilities"]
    assert len(starts) == 2, f"{path.name}: expected a KVM and a TCG pass"
    return {"kvm": exchanges[: starts[1]], "tcg": exchanges[starts[1] :]}


def _ask(exchanges: list[Exchange], execute: str, arguments: dict[str, Any]) -> Any:
    [match] = [e for e in exchanges if e.execute == execute and e.arguments == arguments]
    return match.reply["return"]


def expected(cap: HostCapture, accel: str = "kvm") -> Expected:
    if cap.kind == "cputest":
        replies = cputest_replies(cap.path)
        full = replies["model-expansion"]
        defs = replies.get("definitions")
        stem = str(cap.path).removesuffix(".json")
        return Expected(
            props=full["model"]["props"],
            static=None,
            full=decode_expansion(full),
            models=decode_cpu_definitions(defs) if defs is not None else None,
            words=_masks(Path(stem + "-enabled.xml")),
            filtered=_masks(Path(stem + "-disabled.xml")),
        )
    exchanges = _passes(cap.path)[accel]
    model = "host" if accel == "kvm" else "max"
    static = decode_expansion(
        _ask(exchanges, "query-cpu-model-expansion", {"type": "static", "model": {"name": model}})
    )
    full = None
    props = _ask(exchanges, "query-cpu-model-expansion", {"type": "static", "model": {"name": model}})[
        "model"
    ]["props"]
    if accel == "kvm":
        [ask] = [
            e
            for e in exchanges
            if e.execute == "query-cpu-model-expansion"
            and e.arguments["type"] == "full"
            and e.arguments["model"]["name"] == "host"
        ]
        full = decode_expansion(ask.reply["return"], tuple(static.features))
        props = ask.reply["return"]["model"]["props"]
    return Expected(
        props=props,
        static=static,
        full=full,
        models=decode_cpu_definitions(_ask(exchanges, "query-cpu-definitions", {})),
        words=None,
        filtered=None,
    )


def words(mp_words: Any) -> set[Word]:
    return {(w.leaf, w.subleaf, w.register, w.bits) for w in mp_words}


def assert_attempts_match_log(doc: ProbeDocument, host: ReplayHost) -> None:
    """What the probe says it launched is exactly what the stand-in saw, launch by launch."""
    launches = host.launches()
    assert [list(a.argv) for a in doc.attempts] == launches
    statuses = [e["status"] for e in host.log_entries() if e["event"] == "exit"]
    assert [a.exit_status for a in doc.attempts] == statuses


def assert_errors_are_the_refusals(mp: MachineProbe, host: ReplayHost) -> None:
    """Every partial result the probe recorded is a refusal the stand-in logged, and back."""
    ok_pids = [e["pid"] for e in host.log_entries() if e["event"] == "ready"]
    refused = [e["source"] for e in host.qmp_log(ok_pids[-1]) if e["answer"] == "refused"]
    assert sorted(f.message for f in mp.errors) == sorted(refused)
    assert all(f.error_class == "GenericError" and f.message.startswith("replay: ") for f in mp.errors)


# ---------------------------------------------------------------------------
# Every capture as a host
# ---------------------------------------------------------------------------


def test_catalogue_lists_every_capture() -> None:
    names = [c.name for c in CATALOGUE]
    cputest = [c for c in CATALOGUE if c.kind == "cputest"]
    assert len(cputest) == len(list(cputest[0].path.parent.glob("x86_64-cpuid-*.json"))) == 42
    assert {c.name for c in REPLIES} == {
        "qemu-10.0-Ryzen-9-3900X",
        "qemu-8.2-Ryzen-9-3900X",
        "qemu-5.0-Xeon-E3-1245-v5",
    }
    assert len(names) == len(set(names)) == 45
    assert find_capture("Hygon-C86-7185-32-core").kind == "cputest"


def without_features(models: tuple[CpuModel, ...]) -> tuple[CpuModel, ...]:
    """The definitions as captured: the per-model ``features`` come from the stand-in's
    synthetic model expansions (cpu_map), checked by the baseline's agreement test."""
    return tuple(dataclasses.replace(m, features=None) for m in models)


@pytest.mark.parametrize("cap", CATALOGUE, ids=[c.name for c in CATALOGUE])
def test_probe_replays_capture(cap: HostCapture, tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, cap.name, microcode="0xb00002e")
    rc, doc, err = run_probe(host, "--accel", "kvm", tmp=tmp_path)
    assert rc == 0, err
    exp = expected(cap)
    props = exp.props
    # Host facts: the synthetic root names the captured CPU.
    cpu = doc.host.cpu
    assert (cpu.vendor, cpu.family, cpu.model, cpu.stepping) == (
        props["vendor"],
        props["family"],
        props["model"],
        props["stepping"],
    )
    assert cpu.model_name == str(props["model-id"]).strip()
    assert cpu.microcode == "0xb00002e"
    assert doc.host.synthetic == cap.label
    assert doc.host.kvm_module == ("kvm_intel" if props["vendor"] == "GenuineIntel" else "kvm_amd")
    # QEMU: the capture's version, or the labelled synthetic one.
    assert doc.qemu is not None and doc.qemu.kvm_enabled is True and doc.accel == "kvm"
    if cap.kind == "cputest":
        assert (doc.qemu.version, doc.qemu.package) == ("0.0.0", cap.label)
    else:
        assert doc.qemu.version == cap.name.split("-")[1] + ".0"
    [mp] = doc.machine_types
    assert mp.cpu == "host" and mp.machine_type != "q35"
    assert any(m.alias == "q35" and m.name == mp.machine_type for m in doc.qemu.machines)
    # What QEMU said about the CPU, equal to the capture decoded by the product's decoder.
    assert mp.static_expansion == exp.static
    assert mp.full_expansion == exp.full
    assert without_features(mp.models) == (exp.models if exp.models is not None else ())
    if exp.words is not None:
        assert words(mp.feature_words) == exp.words
        assert words(mp.filtered_features) == exp.filtered
    else:
        assert mp.feature_words == () and mp.filtered_features == ()
    assert (mp.vcpu.vendor, mp.vcpu.family, mp.vcpu.model, mp.vcpu.stepping, mp.vcpu.model_id) == (
        props["vendor"],
        props["family"],
        props["model"],
        props["stepping"],
        props["model-id"],
    )
    assert (mp.vcpu.level, mp.vcpu.xlevel) == (props.get("level"), props.get("xlevel"))
    # The probe's evidence and the stand-in's log agree.
    assert_attempts_match_log(doc, host)
    assert len(host.launches()) == 1  # one launch for the one machine type; its greeting proved QEMU
    assert_errors_are_the_refusals(mp, host)
    assert list(tmp_path.glob("fleetcpu-probe-*")) == []


@pytest.mark.parametrize("cap", REPLIES, ids=[c.name for c in REPLIES])
def test_tcg_pass_of_a_conversation(cap: HostCapture, tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, cap.name)
    rc, doc, err = run_probe(host, "--accel", "tcg", tmp=tmp_path)
    assert rc == 0, err
    exp = expected(cap, "tcg")
    [mp] = doc.machine_types
    assert doc.accel == mp.accel == "tcg" and mp.cpu == "max"
    assert doc.qemu is not None and doc.qemu.kvm_enabled is False
    assert mp.static_expansion == exp.static
    assert mp.full_expansion is None  # libvirt's TCG pass has no full expansion: refused
    assert without_features(mp.models) == exp.models
    assert without_features(mp.models) != expected(cap, "kvm").models, "TCG and KVM disagree on usability"
    assert_attempts_match_log(doc, host)
    assert_errors_are_the_refusals(mp, host)


@pytest.mark.parametrize("name", ["Xeon-Gold-6148", "Hygon-C86-7185-32-core"])
def test_tcg_on_a_kvm_only_capture_fails_cleanly(name: str, tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, name)
    rc, doc, _ = run_probe(host, "--accel", "tcg", tmp=tmp_path)
    assert rc == 12 and doc.status == "failed"
    assert "replay: not captured" in (doc.error or "")
    assert_attempts_match_log(doc, host)
    *launches, proof = doc.attempts  # no launch greeted: -version then proved it is QEMU
    assert proof.argv[-1] == "-version" and proof.outcome == "ok"
    assert launches[-1].exit_status == 1 and "KVM capture only" in launches[-1].stderr_tail


def test_one_host_two_qemus_differ(tmp_path: Path) -> None:
    """The Ryzen 9 3900X at QEMU 8.2 and 10.0: same silicon, different model lists."""
    docs = {}
    for name in ("qemu-8.2-Ryzen-9-3900X", "qemu-10.0-Ryzen-9-3900X"):
        rc, docs[name], err = run_probe(make_replay_host(tmp_path, name), "--accel", "kvm", tmp=tmp_path)
        assert rc == 0, err
    old, new = (docs[n].machine_types[0] for n in docs)
    assert (old.machine_type, new.machine_type) == ("pc-q35-8.2", "pc-q35-10.0")
    old_models = {m.name for m in old.models}
    new_models = {m.name for m in new.models}
    assert old_models < new_models, "10.0 only adds models"
    assert {"ClearwaterForest", "YongFeng", "SierraForest"} <= new_models - old_models
    # Shared models are judged alike once de-duplicated (the raw lists differ in order only).
    old_unavailable = {m.name: m.unavailable_features for m in old.models}
    assert all(
        old_unavailable[m.name] == m.unavailable_features for m in new.models if m.name in old_unavailable
    )
    assert docs["qemu-8.2-Ryzen-9-3900X"].host.cpu == docs["qemu-10.0-Ryzen-9-3900X"].host.cpu


def test_hosts_of_one_capture_differ_in_microcode_and_nesting(tmp_path: Path) -> None:
    a = make_replay_host(tmp_path, "Xeon-Platinum-8268", microcode="0x5002f01", nested=True, hostname="cl-a")
    b = make_replay_host(tmp_path, "Xeon-Platinum-8268", microcode="0x5003003", hostname="cl-b")
    (rc_a, doc_a, _), (rc_b, doc_b, _) = (run_probe(h, "--accel", "kvm", tmp=tmp_path) for h in (a, b))
    assert rc_a == rc_b == 0
    assert (doc_a.host.hostname, doc_a.host.cpu.microcode, doc_a.host.kvm_nested) == (
        "cl-a",
        "0x5002f01",
        "true",
    )
    assert (doc_b.host.hostname, doc_b.host.cpu.microcode, doc_b.host.kvm_nested) == (
        "cl-b",
        "0x5003003",
        "false",
    )
    assert doc_a.machine_types[0].full_expansion == doc_b.machine_types[0].full_expansion
    with pytest.raises(FileExistsError):
        make_replay_host(tmp_path, "Xeon-Platinum-8268", hostname="cl-a")


@pytest.mark.parametrize("name", ["Core-i5-6600", "qemu-5.0-Xeon-E3-1245-v5"])
def test_unknown_machine_type(name: str, tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, name)
    rc, doc, err = run_probe(host, "--accel", "kvm", "--machine-type", "pc-q35-99.9", tmp=tmp_path)
    assert rc == 13, err
    assert "unsupported machine type" in (doc.error or "")
    assert_attempts_match_log(doc, host)
    # Once QEMU's machine list is known, an unknown name is refused without a launch.
    host.clear_log()
    rc, doc, err = run_probe(
        host, "--accel", "kvm", "--machine-type", "q35", "--machine-type", "pc-q35-99.9", tmp=tmp_path
    )
    assert rc == 13, err
    assert_attempts_match_log(doc, host)
    assert len(host.launches()) == 1  # the q35 guest; pc-q35-99.9 refused from its machine list


# ---------------------------------------------------------------------------
# The stand-in itself, with the probe's exact argv
# ---------------------------------------------------------------------------


def test_version_banner(tmp_path: Path) -> None:
    for name, banner in [
        ("Opteron-6234", "QEMU emulator version 0.0.0 (replay:x86_64-cpuid-Opteron-6234.json)"),
        ("qemu-8.2-Ryzen-9-3900X", "QEMU emulator version 8.2.0 (replay:caps_8.2.0_x86_64.replies)"),
    ]:
        host = make_replay_host(tmp_path, name)
        res = subprocess.run(
            [str(host.binary), "-version"], capture_output=True, text=True, timeout=10, check=False
        )
        assert res.returncode == 0 and res.stdout.splitlines()[0] == banner


def test_unknown_machine_gets_qemus_words(tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, "EPYC-7601-32-Core")
    with run_fake(host, machine="pc-q35-99.9") as run:
        rc, err = run.wait()
    assert rc == 1
    assert err.splitlines() == [
        "qemu-system-x86_64: unsupported machine type",
        "Use -machine help to list supported machines",
    ]


@pytest.mark.parametrize(
    ("name", "cpu", "accel", "message"),
    [
        ("Xeon-Gold-6130", "Skylake-Serverr", "kvm", "unable to find CPU model 'Skylake-Serverr'"),
        ("Core2-E6850", "GraniteRapidz", "kvm", "unable to find CPU model 'GraniteRapidz'"),
        ("qemu-10.0-Ryzen-9-3900X", "host", "tcg", "CPU model 'host' requires KVM or HVF"),
        (
            "Core-i7-7700",
            "host,frobnicate=on",
            "kvm",
            "can't apply global host-x86_64-cpu.frobnicate=on: "
            "Property 'host-x86_64-cpu.frobnicate' not found",
        ),
    ],
)
def test_bad_cpu_gets_qemus_words(name: str, cpu: str, accel: str, message: str, tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, name)
    with run_fake(host, cpu=cpu, accel=accel) as run:
        rc, err = run.wait()
    assert (rc, err) == (1, f"qemu-system-x86_64: {message}\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["-nodefaults", "-frobnicate"],
        ["-accel", "hax", "-machine", "q35"],
        ["-m"],
        ["disk.img"],
    ],
)
def test_bad_command_line_exits_1(argv: list[str], tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, "Phenom-B95")
    with run_fake(host, argv=argv) as run:
        rc, err = run.wait()
    assert rc == 1 and err.startswith("qemu-system-x86_64: ") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "cpu", "line"),
    [
        # A named model the captured definitions call usable, plus a feature the host lacks.
        ("Xeon-Gold-6130", "Skylake-Server,avx512vnni=on,enforce", "CPUID.07H:ECX.avx512vnni [bit 11]"),
        ("Core-i7-7700", "Skylake-Client,+avx512f,enforce", "CPUID.07H:EBX.avx512f [bit 16]"),
        # No definitions captured: the model is judged through libvirt's cpu_map.
        ("Xeon-Gold-6148", "Skylake-Server,avx512vnni=on,enforce", "CPUID.07H:ECX.avx512vnni [bit 11]"),
        ("Phenom-B95", "host,avx2=on,enforce", "CPUID.07H:EBX.avx2 [bit 5]"),
        # A conversation: judged against the pass's host expansion.
        ("qemu-8.2-Ryzen-9-3900X", "EPYC-v2,avx512f=on,enforce", "CPUID.07H:EBX.avx512f [bit 16]"),
        # The model's own captured unavailable-features.
        ("Xeon-Gold-6130", "Cascadelake-Server,enforce", "CPUID.07H:ECX.avx512vnni [bit 11]"),
    ],
)
def test_enforce_refuses_a_missing_feature(name: str, cpu: str, line: str, tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, name)
    with run_fake(host, cpu=cpu) as run:
        rc, err = run.wait()
    assert rc == 1
    assert f"qemu-system-x86_64: warning: host doesn't support requested feature: {line}" in err.splitlines()
    assert err.splitlines()[-1] == "qemu-system-x86_64: Host doesn't support requested features"
    # The same CPU without the feature starts.
    usable = ",".join(p for p in cpu.split(",") if not (p.startswith("+") or p.endswith("=on")))
    if not usable.startswith("Cascadelake"):
        with run_fake(host, cpu=usable) as run:
            greeting = run.negotiate()
            assert "QMP" in greeting
            reply = run.qmp.command(
                "qom-get", {"path": "/machine/unattached/device[0]", "property": "filtered-features"}
            )
            assert "return" in reply
            if not usable.startswith("host"):
                assert reply["return"] == [], "a usable model filters nothing"


def test_without_enforce_a_missing_feature_is_filtered(tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, "Core2-E6850")
    with run_fake(host, cpu="host,avx512f=on") as run:
        run.negotiate()
        reply = run.qmp.command(
            "qom-get", {"path": "/machine/unattached/device[0]", "property": "filtered-features"}
        )
        assert run.qmp.command("quit") == {"return": {}, "id": "t3"}
        rc, err = run.wait()
    assert rc == 0
    assert err == (
        "qemu-system-x86_64: warning: host doesn't support requested feature: "
        "CPUID.07H:EBX.avx512f [bit 16]\n"
    )
    got = {
        (w["cpuid-input-eax"], w.get("cpuid-input-ecx", 0), w["cpuid-register"], w["features"])
        for w in reply["return"]
    }
    leaf7 = [w for w in got if w[0] == 7 and w[2] == "EBX"]
    assert leaf7 == [(7, 0, "EBX", 1 << 16)]
    disabled = expected(find_capture("Core2-E6850")).filtered
    assert disabled is not None
    assert {(leaf, sub, reg.upper(), bits) for leaf, sub, reg, bits in disabled} <= got


def test_qmp_protocol(tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, "Xeon-E5-2650-v3")
    with run_fake(host) as run:
        greeting = run.qmp.read()
        assert greeting == {
            "QMP": {
                "version": {"qemu": {"major": 0, "minor": 0, "micro": 0}, "package": host.capture.label},
                "capabilities": [],
            }
        }
        early = run.qmp.command("query-status")
        assert early["error"]["class"] == "CommandNotFound"
        assert run.qmp.command("qmp_capabilities") == {"return": {}, "id": "t2"}
        again = run.qmp.command("qmp_capabilities")
        assert again["error"]["class"] == "CommandNotFound"
        assert run.qmp.command("query-status")["return"] == {"status": "prelaunch", "running": False}
        nope = run.qmp.command("query-frobnicator")
        assert nope["error"] == {
            "class": "CommandNotFound",
            "desc": "The command query-frobnicator has not been found",
        }
        refused = run.qmp.command("query-cpu-definitions")
        assert refused["error"] == {
            "class": "GenericError",
            "desc": "replay: query-cpu-definitions not captured in x86_64-cpuid-Xeon-E5-2650-v3.json",
        }
        missing = run.qmp.command("qom-get", {"path": "/machine/peripheral/x", "property": "family"})
        assert missing["error"]["class"] == "DeviceNotFound"
        # A captured answer is replayed verbatim.
        full = run.qmp.command("query-cpu-model-expansion", {"type": "full", "model": {"name": "host"}})
        assert full["return"] == cputest_replies(host.capture.path)["model-expansion"]
        assert run.qmp.command("quit") == {"return": {}, "id": "t9"}
        rc, _ = run.wait()
        assert rc == 0
        assert run.qmp.read()["event"] == "SHUTDOWN"
    logged = [e["execute"] for e in host.qmp_log()]
    assert logged == [
        "query-status",
        "qmp_capabilities",
        "qmp_capabilities",
        "query-status",
        "query-frobnicator",
        "query-cpu-definitions",
        "qom-get",
        "query-cpu-model-expansion",
        "quit",
    ]


def test_a_conversation_replays_other_captured_commands(tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, "qemu-10.0-Ryzen-9-3900X")
    with run_fake(host) as run:
        run.negotiate()
        assert run.qmp.command("query-target") == {"return": {"arch": "x86_64"}, "id": "t2"}
        sev = run.qmp.command("query-sev-capabilities")
        assert sev["error"]["desc"].startswith("SEV: Failed to open /dev/sev")
        props = run.qmp.command("device-list-properties", {"typename": "e1000"})
        assert props["error"]["desc"].startswith("replay: device-list-properties with arguments")
        # The probe's fallback asks with props: answered by the captured ask without them.
        exp = run.qmp.command(
            "query-cpu-model-expansion",
            {"type": "static", "model": {"name": "host", "props": {"arch-capabilities": False}}},
        )
        plain = _ask(
            _passes(host.capture.path)["kvm"],
            "query-cpu-model-expansion",
            {"type": "static", "model": {"name": "host"}},
        )
        assert exp["return"] == plain
    [entry] = [e for e in host.qmp_log() if e["execute"] == "query-cpu-model-expansion"]
    assert "not applied" in entry["source"]


def test_no_stand_in_outlives_its_socket_owner(tmp_path: Path) -> None:
    """QEMU outlives a closed monitor; the stand-in too, until its starter kills it."""
    host = make_replay_host(tmp_path, "Xeon-W3520")
    with run_fake(host) as run:
        run.negotiate()
        run.qmp.sock.shutdown(socket.SHUT_RDWR)
        with pytest.raises(subprocess.TimeoutExpired):
            run.proc.wait(timeout=0.3)
    assert run.proc.returncode is not None


def test_answer_table_is_complete() -> None:
    """One table holds every choice; each cell is a known kind with a reason."""
    kinds = {
        replay_qemu.CAPTURED,
        replay_qemu.CAPTURED_OR_REFUSED,
        replay_qemu.DERIVED,
        replay_qemu.SYNTHETIC,
        replay_qemu.REFUSED,
    }
    columns = {"cputest", "replies-kvm", "replies-tcg"}
    for item, cells in replay_qemu.ANSWERS.items():
        assert cells and set(cells) <= columns, item
        for how, why in cells.values():
            assert how in kinds and why, item
