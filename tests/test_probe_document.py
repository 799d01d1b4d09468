"""The probe document contract: the committed JSON Schema, the golden documents, the parser.

The golden documents were made by ``fleetcpu probe`` on this project's CI
host (KVM on pc-q35-7.2; TCG on pc-i440fx-2.0). The store, import and replay
tests build on them, so they must keep parsing, keep validating, and keep
the shape a live probe produces today.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleetcpu.errors import ProbeDocumentError, exit_code_table
from fleetcpu.probe.document import SCHEMA
from fleetcpu.probe.document_decoder import document_from_dict, document_from_json

from .conftest import REPO, run_cli

SCHEMA_FILE = REPO / "fleetcpu" / "schemas" / "probe-1.json"
GOLDEN = sorted((REPO / "tests" / "golden").glob("probe-*.json"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    doc = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def validate(schema: dict[str, Any], doc: Any) -> None:
    jsonschema.Draft202012Validator(schema).validate(doc)


def shape(value: Any) -> Any:
    """The key structure of a JSON value (dict keys, list element shapes), not its data."""
    if isinstance(value, dict):
        if value and all(isinstance(v, bool) for v in value.values()):
            return "map<bool>"  # features: names are data
        return {k: shape(v) for k, v in value.items() if k != "props"}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


def test_golden_documents_exist() -> None:
    names = [p.name for p in GOLDEN]
    assert "probe-kvm-q35.json" in names and "probe-tcg-i440fx-2.0.json" in names


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_validates_and_round_trips(schema: dict[str, Any], path: Path) -> None:
    raw = json.loads(path.read_text())
    validate(schema, raw)
    doc = document_from_dict(raw, path.name)
    assert doc.schema == SCHEMA and doc.ok
    # Records -> JSON -> records is lossless.
    again = json.loads(doc.to_json())
    assert again == raw
    assert document_from_dict(again) == doc


def test_live_probe_has_the_golden_shape(schema: dict[str, Any]) -> None:
    res = run_cli("probe", "--accel", "tcg", "--machine-type", "pc-i440fx-2.0")
    assert res.returncode == 0, res.stderr
    live = json.loads(res.stdout)
    validate(schema, live)
    golden = json.loads((REPO / "tests/golden/probe-tcg-i440fx-2.0.json").read_text())
    assert shape(live) == shape(golden)
    # Same QEMU, same machine type, same accelerator: the CPU data itself must agree.
    if live["qemu"]["version"] == golden["qemu"]["version"]:
        assert live["machine_types"][0]["models"] == golden["machine_types"][0]["models"]


def test_failed_document_validates(schema: dict[str, Any]) -> None:
    res = run_cli("probe", "--qemu-binary", "/nonexistent")
    assert res.returncode == 10
    raw = json.loads(res.stdout)
    validate(schema, raw)
    doc = document_from_dict(raw)
    assert (doc.status, doc.stage, doc.error_code, doc.exit_code) == ("failed", "qemu", "qemu-missing", 10)


def _golden() -> dict[str, Any]:
    return json.loads((REPO / "tests/golden/probe-kvm-q35.json").read_text())


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()

# (where, new value, the key the error must name)
MUTATIONS = [
    (["schema"], "fleetcpu.probe/2", "schema"),
    (["schema"], "something-else/1", "schema"),
    (["status"], "maybe", "status"),
    (["time"], 12, "time"),
    (["host"], _DELETE, "host"),
    (["host", "cpu", "family"], "six", "host.cpu.family"),
    (["machine_types", 0, "models", 3, "unavailable_features"], "sse4.1", "unavailable_features"),
    (["machine_types", 0, "feature_words", 0, "register"], "r9", "register"),
    (["machine_types", 0, "feature_words", 0, "bits"], True, "bits"),
    (["machine_types", 0, "static_expansion", "features", "sse2"], "yes", "features.sse2"),
    (["machine_types", 0, "vcpu", "level"], 1.5, "vcpu.level"),
    (["attempts", 0, "argv"], "qemu -S", "argv"),
    (["machine_types"], [], "machine_types"),
]


@pytest.mark.parametrize(("where", "value", "named"), MUTATIONS, ids=lambda x: str(x)[:40])
def test_parser_and_schema_reject_the_same_mutations(
    schema: dict[str, Any], where: list[Any], value: Any, named: str
) -> None:
    doc = copy.deepcopy(_golden())
    _set(doc, where, value)
    with pytest.raises(jsonschema.ValidationError):
        validate(schema, doc)
    with pytest.raises(ProbeDocumentError) as info:
        document_from_dict(doc, "host.json")
    assert named in str(info.value), str(info.value)
    assert str(info.value).startswith("host.json: ")
    assert info.value.exit_code == 3


def test_unknown_keys_are_tolerated_for_additive_evolution(schema: dict[str, Any]) -> None:
    doc = _golden()
    doc["future_field"] = {"x": 1}
    doc["machine_types"][0]["future_list"] = [1, 2]
    validate(schema, doc)
    assert document_from_dict(doc).ok


@pytest.mark.parametrize("text", ["", "not json", "[]", "null", '{"schema": 3}'])
def test_garbage_is_a_probe_document_error(text: str) -> None:
    with pytest.raises(ProbeDocumentError):
        document_from_json(text, "x.json")


def test_exit_code_table_is_the_contract() -> None:
    """The numbers scripts depend on; changing one is a breaking change."""
    table = dict(exit_code_table())
    # Additions: 16 (--host-root not a directory, stage facts, issue 17) and
    # 7 (fsck found stray files only, issue 18), 26 (members cannot run their pool's
    # adopted CPU, issue 22), 27 (a --require the pool cannot meet, issue 23).
    assert sorted(table) == [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        130,
    ]
    readme = (REPO / "README.md").read_text()
    for code, meaning in exit_code_table():
        assert f"| {code} | {meaning} |" in readme, f"README lacks exit code {code}"
