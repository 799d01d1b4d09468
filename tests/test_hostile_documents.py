"""Hostile probe output: one host's document never aborts or wipes a run.

A document is untrusted input (a compromised or broken host writes it), so
every path that decodes one (``import``, ``check``, collect's ``interpret``)
must turn anything unusable into a ``ProbeDocumentError``: a failure row
(stage ``output``) for collect, a one-line exit 3 for ``import`` and
``check``. These tests pin the cases a fault campaign found: nesting deep
enough to exhaust the parser's recursion, and integers that pass the type
check but not the Parquet column they end up in.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.collect.probe_reply import interpret
from fleetcpu.errors import ProbeDocumentError
from fleetcpu.fleet.remote_run import RemoteRun
from fleetcpu.probe.document_decoder import DocumentDecoder, document_from_json
from fleetcpu.store.importer import load, rehearse

from .conftest import REPO, invoke
from .support.sshd import latest_rows

GOLDEN = REPO / "tests" / "golden" / "probe-kvm-q35.json"
DEEP = "[" * 100_000 + "]" * 100_000


def golden() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(GOLDEN.read_text())
    return value


def with_value(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    doc = copy.deepcopy(golden())
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def ran(stdout: bytes) -> RemoteRun:
    return RemoteRun(stdout=stdout, stderr_tail=b"", exit_status=0, exit_signal=None, duration_s=0.1)


MP = ("machine_types", 0)
#: (where, a value its column or its meaning cannot hold)
OUT_OF_RANGE: list[tuple[tuple[str | int, ...], int]] = [
    (("host", "cpu", "family"), 2**31),
    (("host", "cpu", "model"), 2**31),
    (("host", "cpu", "stepping"), 2**31),
    (("host", "cpu", "family"), -1),
    ((*MP, "vcpu", "family"), 2**31),
    ((*MP, "vcpu", "model"), 2**31),
    ((*MP, "vcpu", "stepping"), 2**31),
    ((*MP, "vcpu", "phys_bits"), 2**31),
    ((*MP, "vcpu", "level"), 2**63),
    ((*MP, "vcpu", "xlevel"), 2**64),
    ((*MP, "vcpu", "level"), -5),
    ((*MP, "feature_words", 0, "leaf"), 2**63),
    ((*MP, "feature_words", 0, "subleaf"), 2**64),
    ((*MP, "feature_words", 0, "bits"), 2**64),
    ((*MP, "feature_words", 0, "bits"), 2**32),
    ((*MP, "feature_words", 0, "leaf"), -1),
    ((*MP, "filtered_features", 0, "bits"), 2**70),
    (("attempts", 0, "exit_status"), 2**40),
]


def _key(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@pytest.mark.parametrize(("path", "value"), OUT_OF_RANGE, ids=[f"{_key(p)}={v}" for p, v in OUT_OF_RANGE])
def test_an_integer_out_of_its_columns_range_is_refused_at_decode(
    path: tuple[str | int, ...], value: int
) -> None:
    text = json.dumps(with_value(path, value))
    with pytest.raises(ProbeDocumentError) as caught:
        document_from_json(text, "h.json")
    assert caught.value.key == _key(path), caught.value.message
    assert "must be an integer from" in caught.value.problem
    # Collect's reader (with its memo of known-good parts) says exactly the same.
    for decoder in (DocumentDecoder(), DocumentDecoder()):
        memo_doc = json.dumps(golden())
        decoder.probe(memo_doc, "probe output")  # the good parts are now remembered
        with pytest.raises(ProbeDocumentError) as again:
            decoder.probe(text, "h.json")
        assert again.value.message == caught.value.message


def test_a_float_too_large_or_not_finite_is_refused_not_a_crash() -> None:
    for raw in ("1" + "0" * 400, "1e999", "NaN", "-Infinity"):
        text = json.dumps(golden()).replace('"duration_s": ', f'"duration_s": {raw}, "x": ', 1)
        with pytest.raises(ProbeDocumentError) as caught:
            document_from_json(text, "h.json")
        assert caught.value.key == "duration_s", caught.value.message


def test_deep_nesting_is_refused_before_parsing() -> None:
    for text in (
        DEEP,
        '{"schema": "fleetcpu.probe/1", "host": ' + DEEP + "}",
        '{"a": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001,
    ):
        with pytest.raises(ProbeDocumentError) as caught:
            document_from_json(text, "h.json")
        assert "nested deeper than" in caught.value.problem
        with pytest.raises(ProbeDocumentError):
            DocumentDecoder().probe(text, "h.json")
        verdict = interpret(ran(text.encode()), "python3")
        assert (verdict.stage, verdict.code) == ("output", "bad-output")
        assert "nested deeper than" in str(verdict.error)


def test_an_out_of_range_document_is_an_output_failure_for_collect() -> None:
    doc = with_value(("host", "cpu", "family"), 2**31)
    verdict = interpret(ran(json.dumps(doc).encode()), "python3")
    assert verdict.document is None
    assert verdict.stage == "output"
    assert "host.cpu.family: must be an integer from 0 to 2147483647" in str(verdict.error)


def _hostile_python(directory: Path, name: str, payload: str) -> str:
    """A ``python=`` that reads the bundle and prints ``payload`` as its probe document."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = directory / f"{name}.out"
    doc.write_text(payload)
    script = directory / f"{name}-python"
    # Read exactly the bundle, as the real bootstrap does: stdin stays open (EOF means "stop").
    script.write_text(f'#!/bin/sh\nread magic size sum\nhead -c "$size" >/dev/null\ncat {doc}\n')
    script.chmod(0o755)
    return str(script)


def collect_hostile(tmp_path: Path, hosts: dict[str, str]) -> tuple[Any, Path]:
    """``fleetcpu collect`` over local hosts each printing its text as the probe's output."""
    inv = tmp_path / "hosts.txt"
    inv.write_text(
        "".join(
            f"{name} transport=local python={_hostile_python(tmp_path / 'bin', name, text)}\n"
            for name, text in hosts.items()
        )
    )
    store = tmp_path / "store"
    res = invoke("collect", str(inv), "--store", str(store), env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    return res, store


def test_a_collect_with_hostile_hosts_stores_every_row(tmp_path: Path) -> None:
    """Two good hosts, one deeply nested, one out of range: exit 5, four rows, the good data kept."""
    good = json.dumps(golden())
    hosts = {
        "good1": good,
        "deep": DEEP,
        "huge": json.dumps(with_value((*MP, "feature_words", 0, "bits"), 2**64)),
        "good2": good,
    }
    res, store = collect_hostile(tmp_path, hosts)
    assert res.returncode == 5, res.stdout + res.stderr
    rows = latest_rows(store)
    assert {n: (r["status"], r["stage"]) for n, r in rows.items()} == {
        "good1": ("ok", None),
        "good2": ("ok", None),
        "deep": ("failed", "output"),
        "huge": ("failed", "output"),
    }
    assert "machine_types[0].feature_words[0].bits" in str(rows["huge"]["error"])
    assert "nested deeper than" in str(rows["deep"]["error"])


def test_import_and_check_of_hostile_documents_exit_3_on_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(golden()))
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(with_value(("host", "cpu", "stepping"), 2**31)))
    for bad, key in ((deep, "<document>"), (huge, "host.cpu.stepping")):
        res = invoke("import", str(good), str(bad), "--store", str(store))
        assert res.returncode == 3, res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"error: {bad}: {key}: ")
        assert not store.exists(), "nothing of the batch is stored"
    res = invoke("import", str(good), "--pool", "p", "--store", str(store))
    assert res.returncode == 0, res.stderr
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    for bad in (deep, huge):
        res = invoke("check", str(bad), "--pool", "p", "--max-age", "36500d", "--store", str(store))
        assert res.returncode == 3, res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"error: {bad}: ")
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


def test_import_rehearses_every_row_before_storing_any(tmp_path: Path) -> None:
    """A value decode let through (here, built past it) is refused by the rehearsal, naming the file."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps(golden()))
    item = load(str(good), None)
    rehearse(item)  # the golden document converts
    doc = item.document
    cpu = dataclasses.replace(doc.host.cpu, family=2**40)
    bad = dataclasses.replace(
        item, document=dataclasses.replace(doc, host=dataclasses.replace(doc.host, cpu=cpu))
    )
    with pytest.raises(ProbeDocumentError) as caught:
        rehearse(bad)
    assert caught.value.message.startswith(f"{good}: <document>: a value its store column cannot hold")
