"""A decoder that remembers parts gives exactly what one remembering nothing gives, errors included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.collect.probe_reply import interpret
from fleetcpu.errors import ProbeDocumentError
from fleetcpu.fleet.remote_run import RemoteRun
from fleetcpu.fleet.ssh import _config_chooses_ciphers, preferred_ciphers
from fleetcpu.probe.document_decoder import DocumentDecoder, document_from_json

from .conftest import REPO

GOLDEN = [REPO / "tests" / "golden" / name for name in ("probe-kvm-q35.json", "probe-tcg-i440fx-2.0.json")]


def _raw(path: Path) -> dict[str, Any]:
    return json.loads(document_from_json(path.read_text()).to_json())


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_same_document_on_a_miss_and_on_a_hit_and_records_are_shared(path: Path) -> None:
    decoder = DocumentDecoder()
    for text in (path.read_text(), document_from_json(path.read_text()).to_json() + "\n"):
        first = decoder.probe(text, "probe output")
        second = decoder.probe(text, "probe output")
        assert first == second == document_from_json(text)
        assert second.machine_types is first.machine_types
    assert decoder.hits >= 2


def test_a_host_with_the_same_cpu_keeps_its_own_facts() -> None:
    decoder = DocumentDecoder()
    raw = _raw(GOLDEN[0])
    decoder.probe(json.dumps(raw), "probe output")
    raw["host"]["hostname"] = "other-host"
    raw["attempts"] = []
    doc = decoder.probe(json.dumps(raw), "probe output")
    assert decoder.hits == 2  # machine_types and qemu
    assert doc == document_from_json(json.dumps(raw))
    assert doc.host.hostname == "other-host" and doc.attempts == ()


def test_another_cpu_is_decoded_not_matched() -> None:
    decoder = DocumentDecoder()
    raw = _raw(GOLDEN[0])
    decoder.probe(json.dumps(raw), "probe output")
    raw["machine_types"][0]["vcpu"]["model_id"] = "another CPU"
    doc = decoder.probe(json.dumps(raw), "probe output")
    assert decoder.hits == 1  # qemu only
    assert doc.machine_types[0].vcpu.model_id == "another CPU"
    raw["qemu"]["version"] = "9.9.9"
    doc = decoder.probe(json.dumps(raw), "probe output")
    assert decoder.hits == 2  # machine_types only
    assert doc.qemu is not None and doc.qemu.version == "9.9.9"
    assert doc == document_from_json(json.dumps(raw))


def _variants() -> list[tuple[str, str]]:
    raw = _raw(GOLDEN[0])
    good = json.dumps(raw)
    bad_family = json.loads(good)
    bad_family["host"]["cpu"]["family"] = "twenty-five"
    bad_status = json.loads(good)
    bad_status["status"] = "maybe"
    failed_no_stage = json.loads(good)
    failed_no_stage["status"] = "failed"
    mt = json.dumps(raw["machine_types"])
    deep31 = "[" * 31 + "]" * 31  # 32 levels inside the document's own object
    return [
        ("wrong type outside machine_types", json.dumps(bad_family)),
        ("bad status", json.dumps(bad_status)),
        ("failed without a stage", json.dumps(failed_no_stage)),
        ("truncated", good[: len(good) // 2]),
        ("trailing garbage", good + " x"),
        ("two documents", good + good),
        ("duplicate machine_types, the last one empty", good[:-1] + ', "machine_types": []}'),
        ("duplicate machine_types, the last one good", good[:-1] + f', "machine_types": {mt}}}'),
        ("BOM", "\ufeff" + good),
        ("an unknown key nested deeper than the bound", good[:-1] + ', "x": ' + "[" * 40 + "]" * 40 + "}"),
        (
            "a record's unknown key nested deeper",
            good.replace('"host": {', '"host": {"x": ' + "[" * 31 + "]" * 31 + ", ", 1),
        ),
        ("an unknown key nested exactly to the bound", good[:-1] + ', "x": ' + deep31 + "}"),
        ("not an object", f"[{good}]"),
        ("garbage", "\x89PNG <html>Segmentation fault</html>"),
    ]


@pytest.mark.parametrize(("label", "text"), _variants(), ids=[v[0] for v in _variants()])
def test_hits_and_misses_fail_or_succeed_exactly_like_the_reference(label: str, text: str) -> None:
    decoder = DocumentDecoder()
    decoder.probe(json.dumps(_raw(GOLDEN[0])), "probe output")  # machine_types remembered
    try:
        expected: object = document_from_json(text, "probe output")
    except ProbeDocumentError as exc:
        expected = ("error", exc.message)
    for _ in range(2):
        try:
            got: object = decoder.probe(text, "probe output")
        except ProbeDocumentError as exc:
            got = ("error", exc.message)
        assert got == expected, label


def test_each_decoder_keeps_its_own_cache() -> None:
    """No module-level memo: what one run's decoder saw, another (or the one-shot reader) never reuses."""
    text = json.dumps(_raw(GOLDEN[0]))
    first, second = DocumentDecoder(), DocumentDecoder()
    first.probe(text, "probe output")
    first.probe(text, "probe output")
    assert first.hits == 2
    document_from_json(text)
    second.probe(text, "probe output")
    assert second.hits == 0 and second.remembered("machine_types") == 1
    assert DocumentDecoder(remember=0).probe(text, "p") == first.probe(text, "p")


def test_a_collect_runs_decoder_shares_records_between_its_hosts_only() -> None:
    """``interpret`` reads with the run's decoder (collect's ``Collector.decoder``), or a fresh one."""
    stdout = json.dumps(_raw(GOLDEN[0])).encode()

    def ran() -> RemoteRun:
        return RemoteRun(stdout=stdout, stderr_tail=b"", exit_status=0, exit_signal=None, duration_s=0.1)

    run_decoder = DocumentDecoder()
    first, second = (interpret(ran(), "python3", run_decoder).document for _ in range(2))
    alone = interpret(ran(), "python3").document
    assert first is not None and second is not None and alone is not None
    assert second.machine_types is first.machine_types and run_decoder.hits == 2
    assert alone == first and alone.machine_types is not first.machine_types


def test_the_memo_is_bounded() -> None:
    decoder = DocumentDecoder(remember=2)
    raw = _raw(GOLDEN[0])
    for i in range(5):
        raw["machine_types"][0]["vcpu"]["model_id"] = f"cpu {i}"
        decoder.probe(json.dumps(raw), "probe output")
    assert decoder.remembered("machine_types") == 2


def test_aes_gcm_is_preferred_unless_the_ssh_config_speaks(tmp_path: Path) -> None:
    ciphers = preferred_ciphers()
    assert ciphers[0] == "aes128-gcm@openssh.com"
    assert "chacha20-poly1305@openssh.com" in ciphers
    plain = tmp_path / "plain"
    plain.write_text("Host *\n  User ops\n  Port 2222\n")
    chosen = tmp_path / "chosen"
    chosen.write_text("Host kvm*\n  Ciphers=chacha20-poly1305@openssh.com\n")
    included = tmp_path / "included"
    included.write_text("Include ~/.ssh/config.d/*\n")
    assert not _config_chooses_ciphers([str(plain), str(tmp_path / "absent")])
    assert _config_chooses_ciphers([str(plain), str(chosen)])
    assert _config_chooses_ciphers([str(included)])
