"""No name from a host reaches an export unchecked (issue 17, item 2).

Feature, model and machine-type names (and the CPUID vendor) go from a
host's document into every config format. A crafted document gave
``-cpu ...,+y,kvm=off`` and raw ``[chardev "pwn"]`` lines. The rule
(``fleetcpu.probe.names``) is checked at decode, where a bad name is a
failure row or exit 3, and again by every renderer, which refuses a name it
cannot quote: a store written before the rule may still hold one. The rule
is held against every real name in ``../shared/realdata``: 0 rejected.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.baseline import compute_baseline, member_from_probe
from fleetcpu.collect.probe_reply import interpret
from fleetcpu.errors import BadInputError, ProbeDocumentError
from fleetcpu.export import FORMATS, NEEDS_CPU_MAP, RenderOptions, render
from fleetcpu.fleet.remote_run import RemoteRun
from fleetcpu.libvirt import load_cpu_map
from fleetcpu.probe import qmp_decode
from fleetcpu.probe.document import Expansion, ProbeDocument
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.probe.names import UNNAMED_FEATURE, is_name, is_vendor

from .conftest import REALDATA, REPO, invoke
from .support.realdata import conversation, cputest_json_files, cputest_replies, replies_files

GOLDEN = REPO / "tests" / "golden" / "probe-kvm-q35.json"
#: Names that must never pass: each breaks some format's quoting.
BAD_NAMES = [
    "y,kvm=off",
    "a=b",
    'x"y',
    'pwn\n[chardev "pwn"]',
    "",
    "-h",
    ".x",
    "a b",
    "caf\u00e9",
    "x" * 65,
    "x'y",
    "a\\b",
    "<x>",
    "a\u0000b",
]
BAD_VENDORS = ["Genuine,Intel", "x=y", 'a"b', "GenuineIntel\n", "", "GenuineIntelX", "a<b"]


def golden() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(GOLDEN.read_text())
    return value


def ran(stdout: bytes) -> RemoteRun:
    return RemoteRun(stdout=stdout, stderr_tail=b"", exit_status=0, exit_signal=None, duration_s=0.1)


# --------------------------------------------------------------------------- the rule vs real data
def realdata_names() -> dict[str, str]:
    """Every CPU model, feature and machine-type name in the captures -> where it was found.

    QMP replies go through the product's decoder (which is what a probe
    stores); libvirt's XML names (its spellings, rendered by --format
    libvirt|nova|kubevirt) are taken as they are.
    """
    names: dict[str, str] = {}

    def add(found: Any, where: str) -> None:
        for name in found:
            names.setdefault(name, where)

    def add_expansion(exp: Expansion, where: str) -> None:
        add([exp.model, *exp.features, *exp.props], where)

    for path in replies_files():
        for ex in conversation(path):
            if not ex.ok:
                continue
            ret = ex.reply["return"]
            if ex.execute == "query-cpu-definitions":
                for m in qmp_decode.decode_cpu_definitions(ret):
                    add([m.name, *m.unavailable_features, *([m.alias_of] if m.alias_of else [])], path.name)
            elif ex.execute == "query-cpu-model-expansion":
                add_expansion(qmp_decode.decode_expansion(ret), path.name)
            elif ex.execute == "query-machines":
                for mi in qmp_decode.decode_machines(ret):
                    add([mi.name, *([mi.alias] if mi.alias else [])], path.name)
    for path in cputest_json_files():
        replies = cputest_replies(path)
        add_expansion(qmp_decode.decode_expansion(replies["model-expansion"]), path.name)
        for m in qmp_decode.decode_cpu_definitions(replies.get("definitions", [])):
            add([m.name, *m.unavailable_features], path.name)
    for path in sorted((REALDATA / "libvirt").rglob("*.xml")):
        for el in ET.parse(path).getroot().iter():
            if el.tag in ("feature", "model", "alias", "blocker") and el.get("name"):
                add([el.get("name")], str(path))
            if el.tag == "model" and el.text and el.text.strip():
                add([el.text.strip()], str(path))
    return names


def realdata_vendors() -> set[str]:
    found = set()
    for path in cputest_json_files():
        vendor = cputest_replies(path)["model-expansion"]["model"]["props"].get("vendor")
        if vendor:
            found.add(vendor)
    for path in (REALDATA / "libvirt" / "cputestdata").glob("*.xml"):
        found |= {el.text for el in ET.parse(path).getroot().iter("vendor") if el.text}
    return found


def test_every_real_name_meets_the_rule() -> None:
    names = realdata_names()
    assert len(names) > 700, "the captures hold some 750 distinct names, once decoded"
    rejected = {name: where for name, where in names.items() if not is_name(name)}
    assert rejected == {}, f"{len(rejected)} of {len(names)} real names rejected"
    vendors = realdata_vendors()
    assert {"GenuineIntel", "AuthenticAMD"} <= vendors
    assert [v for v in vendors if not is_vendor(v)] == []
    assert is_vendor("  Shanghai  "), "Zhaoxin's CPUID vendor keeps its spaces"


def test_qemus_empty_name_for_an_unnamed_bit_stays_a_blocker() -> None:
    """Older QEMUs list a feature bit they cannot name as "": the model still lacks it."""
    replies = cputest_replies(REALDATA / "libvirt" / "cputestdata" / "x86_64-cpuid-Core-i7-7600U.json")
    raw = {d["name"]: d["unavailable-features"] for d in replies["definitions"]}
    [model, *_] = [name for name, missing in raw.items() if "" in missing]
    decoded = {m.name: m for m in qmp_decode.decode_cpu_definitions(replies["definitions"])}
    assert not decoded[model].usable
    assert all(is_name(f) for f in decoded[model].unavailable_features)
    assert "unnamed-feature" in decoded[model].unavailable_features


def test_a_document_from_an_older_probe_with_an_empty_blocker_is_read() -> None:
    """fleetcpu 0.1.0's probe wrote QEMU's "" as it came (the 8268 demo host did).

    Such documents are real, already in operators' hands and stores: ``import``
    and ``check`` must read them, as the same unusable model, under the name
    today's probe records (never "", which no config may hold).
    """
    doc = golden()
    model = doc["machine_types"][0]["models"][0]
    model["unavailable_features"] = ["", "avx512f"]
    decoded = document_from_json(json.dumps(doc), "old.json")
    [first, *_] = decoded.machine_types[0].models
    assert first.name == model["name"] and not first.usable
    assert first.unavailable_features == tuple(sorted(["avx512f", UNNAMED_FEATURE]))
    model["unavailable_features"] = [""]
    model["features"] = [""]  # only a blocker may be unnamed: an enabled feature may not
    with pytest.raises(ProbeDocumentError, match=r"features\[0\]"):
        document_from_json(json.dumps(doc), "old.json")


def test_bad_names_and_vendors_fail_the_rule() -> None:
    assert [n for n in BAD_NAMES if is_name(n)] == []
    assert [v for v in BAD_VENDORS if is_vendor(v)] == []


# --------------------------------------------------------------------------- checked at decode
def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _rename_key(doc: dict[str, Any], path: tuple[str | int, ...], old: str, new: str) -> None:
    node: Any = doc
    for key in path:
        node = node[key]
    node[new] = node.pop(old)


MP: tuple[str | int, ...] = ("machine_types", 0)
#: (how to plant the name, the key the error must name)
PLACES: list[tuple[str, Any, str]] = [
    (
        "static feature",
        lambda d, n: _rename_key(d, (*MP, "static_expansion", "features"), "fpu", n),
        "machine_types[0].static_expansion.features",
    ),
    (
        "full feature",
        lambda d, n: _rename_key(d, (*MP, "full_expansion", "features"), "fpu", n),
        "machine_types[0].full_expansion.features",
    ),
    (
        "full prop",
        lambda d, n: _rename_key(d, (*MP, "full_expansion", "props"), "family", n),
        "machine_types[0].full_expansion.props",
    ),
    (
        "expansion model",
        lambda d, n: _set(d, (*MP, "static_expansion", "model"), n),
        "machine_types[0].static_expansion.model",
    ),
    ("model name", lambda d, n: _set(d, (*MP, "models", 0, "name"), n), "machine_types[0].models[0].name"),
    (
        "model alias",
        lambda d, n: _set(d, (*MP, "models", 0, "alias_of"), n),
        "machine_types[0].models[0].alias_of",
    ),
    (
        "unavailable",
        lambda d, n: _set(d, (*MP, "models", 0, "unavailable_features"), ["fpu", n]),
        "machine_types[0].models[0].unavailable_features[1]",
    ),
    (
        "model features",
        lambda d, n: _set(d, (*MP, "models", 1, "features"), ["fpu", n]),
        "machine_types[0].models[1].features[1]",
    ),
    ("machine type", lambda d, n: _set(d, (*MP, "machine_type"), n), "machine_types[0].machine_type"),
    ("qemu machine", lambda d, n: _set(d, ("qemu", "machines", 0, "name"), n), "qemu.machines[0].name"),
    ("qemu alias", lambda d, n: _set(d, ("qemu", "machines", 0, "alias"), n), "qemu.machines[0].alias"),
]


@pytest.mark.parametrize(("where", "plant", "key"), PLACES, ids=[p[0] for p in PLACES])
def test_a_bad_name_is_refused_at_decode(where: str, plant: Any, key: str) -> None:
    for name in BAD_NAMES:
        if where == "unavailable" and name == "":
            continue  # QEMU's own unnamed blocker, read as UNNAMED_FEATURE (test above)
        doc = copy.deepcopy(golden())
        plant(doc, name)
        text = json.dumps(doc)
        with pytest.raises(ProbeDocumentError) as caught:
            document_from_json(text, "h.json")
        assert caught.value.key.startswith(key), (where, name, caught.value.message)
        verdict = interpret(ran(text.encode()), "python3")
        assert (verdict.stage, verdict.code) == ("output", "bad-output"), (where, name)
        assert repr(name) in str(verdict.error) or "not valid Unicode" in str(verdict.error)


def test_a_bad_vendor_is_refused_at_decode() -> None:
    for path in (
        (*MP, "vcpu", "vendor"),
        ("host", "cpu", "vendor"),
        (*MP, "full_expansion", "props", "vendor"),
    ):
        for vendor in BAD_VENDORS:
            doc = copy.deepcopy(golden())
            _set(doc, path, vendor)
            with pytest.raises(ProbeDocumentError, match="not a CPUID vendor string"):
                document_from_json(json.dumps(doc), "h.json")


def test_import_of_a_crafted_document_is_one_line_exit_3(tmp_path: Path) -> None:
    doc = golden()
    _rename_key(doc, (*MP, "full_expansion", "features"), "fpu", "y,kvm=off")
    _rename_key(doc, (*MP, "static_expansion", "features"), "fpu", "y,kvm=off")
    bad = tmp_path / "crafted.json"
    bad.write_text(json.dumps(doc))
    store = tmp_path / "store"
    res = invoke("import", str(bad), "--store", str(store))
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and "'y,kvm=off' is not a QEMU property name" in res.stderr
    assert not store.exists()


# --------------------------------------------------------------------------- refused by renderers
def _tampered(feature: str | None = None, machine_type: str = "pc-q35-7.2", vendor: str | None = None) -> Any:
    """A baseline from a document changed past the decoder, as an old store could hold it."""
    doc: ProbeDocument = document_from_json(GOLDEN.read_text(), "golden")
    [mp] = doc.machine_types
    assert mp.static_expansion is not None and mp.full_expansion is not None
    if feature is not None:
        mp = dataclasses.replace(
            mp,
            static_expansion=dataclasses.replace(
                mp.static_expansion, features={**mp.static_expansion.features, feature: True}
            ),
            full_expansion=dataclasses.replace(
                mp.full_expansion, features={**mp.full_expansion.features, feature: True}
            ),
        )
    if vendor is not None:
        mp = dataclasses.replace(mp, vcpu=dataclasses.replace(mp.vcpu, vendor=vendor))
    mp = dataclasses.replace(mp, machine_type=machine_type)
    assert doc.qemu is not None
    member = member_from_probe(
        "h1", mp.accel, doc.qemu.version, datetime(2026, 11, 26, tzinfo=UTC), doc.host, mp
    )
    return compute_baseline("p", machine_type, "kvm", [member])


def _options(fmt: str) -> RenderOptions:
    return (
        RenderOptions(load_cpu_map(REALDATA / "libvirt" / "cpu_map"))
        if fmt in NEEDS_CPU_MAP
        else RenderOptions()
    )


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_renderer_refuses_a_name_it_cannot_quote(fmt: str) -> None:
    render(_tampered(), fmt, _options(fmt))  # the untampered pool renders
    cases = [_tampered(feature=name) for name in ("y,kvm=off", 'pwn"\n[chardev "pwn"]', "a b")]
    cases += [_tampered(machine_type='pc-q35-7.2\n[chardev "pwn"]'), _tampered(vendor="Genuine,Intel")]
    for baseline in cases:
        with pytest.raises(BadInputError) as caught:
            render(baseline, fmt, _options(fmt))
        assert "\n" not in caught.value.message
        assert f"--format {fmt} refuses" in caught.value.message, caught.value.message


def test_verify_refuses_to_start_a_cpu_string_with_a_bad_name(tmp_path: Path) -> None:
    """``verify`` sends the baseline's -cpu string to every member's QEMU: the same gate.

    The store is written past the decoder (through the store's own writer), as
    one written before names were checked could be.
    """
    from fleetcpu.outcome import ConnectionSpec, HostOutcome
    from fleetcpu.store import Store
    from fleetcpu.verify.targets import _target

    doc: ProbeDocument = document_from_json(GOLDEN.read_text(), "golden")
    [mp] = doc.machine_types
    assert mp.static_expansion is not None and mp.full_expansion is not None
    bad = {"y,kvm=off": True}
    mp = dataclasses.replace(
        mp,
        static_expansion=dataclasses.replace(
            mp.static_expansion, features={**mp.static_expansion.features, **bad}
        ),
        full_expansion=dataclasses.replace(mp.full_expansion, features={**mp.full_expansion.features, **bad}),
    )
    store = Store.create_or_open(tmp_path / "store")
    with store.run_writer(command="import", inventory=None) as writer:
        writer.add(
            HostOutcome(
                host="h1",
                pool="p",
                collected_at=datetime.now(UTC),
                document=dataclasses.replace(doc, machine_types=(mp,)),
                connection=ConnectionSpec(transport="import"),
            )
        )
    with pytest.raises(BadInputError, match=r"'y,kvm=off' is not a QEMU .* verify refuses"):
        _target(store, "p", mp.accel, None, None)
