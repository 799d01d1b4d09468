"""The decode layer against QMP replies captured on real hosts (QEMU 5.0, 8.2, 10.0, and older).

Every reply the probe would ask for decodes; features come out canonical,
each once, never a property; machine aliases resolve; feature words keep
their subleaf. Inputs are read from ../shared/realdata at test time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetcpu.probe import features, qmp_decode
from fleetcpu.probe.document import CpuModel, Expansion

from .support.realdata import (
    Exchange,
    conversation,
    cpu_name,
    cputest_json_files,
    cputest_replies,
    replies_files,
)

#: Under TCG QEMU lists the ``host`` model as unavailable because of the ``kvm``
#: *property* (it needs the KVM accelerator): a real blocker, but not a feature.
BLOCKER_PROPERTIES = {"kvm"}


def assert_clean_features(
    names: list[str] | tuple[str, ...], where: str, allowed_props: frozenset[str] = frozenset()
) -> None:
    for name in names:
        assert features.canonical(name) == name, f"{where}: alias {name!r} survived decoding"
        if name not in allowed_props:
            assert not features.is_property(name), f"{where}: property {name!r} taken for a feature"


def assert_clean_expansion(exp: Expansion, where: str) -> None:
    assert exp.features, f"{where}: no features"
    assert_clean_features(list(exp.features), where)
    for key in exp.props:
        assert not (
            isinstance(exp.props[key], bool) and features.is_feature(key) and not features.is_property(key)
        ), f"{where}: feature {key!r} left in props"


def test_realdata_is_present() -> None:
    assert len(replies_files()) == 3, "expected the QEMU 5.0, 8.2 and 10.0 conversations"
    assert len(cputest_json_files()) >= 40


@pytest.mark.parametrize("path", replies_files(), ids=lambda p: p.name)
def test_replies_conversation_decodes(path: Path) -> None:
    exchanges = conversation(path)
    by_cmd: dict[str, list[Exchange]] = {}
    for ex in exchanges:
        by_cmd.setdefault(ex.execute, []).append(ex)

    version, _package = qmp_decode.decode_version(by_cmd["query-version"][0].reply["return"])
    named = re.match(r"caps_(\d+\.\d+\.\d+)", path.name)
    assert named is not None and version == named.group(1)
    present, _enabled = qmp_decode.decode_kvm(by_cmd["query-kvm"][0].reply["return"])
    assert present is True

    for ex in by_cmd["query-machines"]:
        machines = qmp_decode.decode_machines(ex.reply["return"])
        names = [m.name for m in machines]
        assert len(names) == len(set(names))
        q35 = qmp_decode.resolve_machine(machines, "q35")
        assert q35 is not None and q35.startswith("pc-q35-"), "q35 must resolve to a versioned type"
        assert qmp_decode.resolve_machine(machines, q35) == q35
        assert qmp_decode.resolve_machine(machines, "no-such-machine") is None

    for ex in by_cmd["query-cpu-definitions"]:
        models = qmp_decode.decode_cpu_definitions(ex.reply["return"])
        raw = ex.reply["return"]
        assert len(models) == len(raw)
        for model in models:
            assert_clean_features(model.unavailable_features, f"{path.name}:{model.name}", BLOCKER_PROPERTIES)
            assert len(set(model.unavailable_features)) == len(model.unavailable_features)
        by_name = {m.name: m for m in models}
        assert {"host", "max", "base"} <= by_name.keys()
        aliased = [m for m in models if m.alias_of]
        assert aliased and all(m.alias_of in by_name for m in aliased)

    statics = {}
    for ex in by_cmd["query-cpu-model-expansion"]:
        if not ex.ok:
            continue
        kind = ex.arguments["type"]
        if kind == "static":
            exp = qmp_decode.decode_expansion(ex.reply["return"])
            statics[ex.arguments["model"]["name"]] = exp
            assert exp.model == "base"
            # A static expansion is features plus the CPUID identity, nothing else.
            assert set(exp.props) <= {
                "family",
                "model",
                "stepping",
                "vendor",
                "model-id",
                "min-level",
                "min-xlevel",
                "min-xlevel2",
            }
        else:
            vocab = tuple(statics[ex.arguments["model"]["name"]].features) if statics else None
            exp = qmp_decode.decode_expansion(ex.reply["return"], vocab)
            raw = ex.reply["return"]["model"]["props"]
            # Every boolean of the raw reply is accounted for: a feature or a property.
            for key, value in raw.items():
                if isinstance(value, bool):
                    assert features.canonical(key) in exp.features or key in exp.props, key
        assert_clean_expansion(exp, f"{path.name}:{kind}")


@pytest.mark.parametrize("path", cputest_json_files(), ids=cpu_name)
def test_cputestdata_decodes(path: Path) -> None:
    replies = cputest_replies(path)
    exp = qmp_decode.decode_expansion(replies["model-expansion"])
    assert_clean_expansion(exp, path.name)
    enabled = set(exp.enabled())
    # Every x86-64 host has these (nx is not here: a BIOS can hide it, as on the
    # captured Phenom B95); a decoder that lost them is broken.
    must = {"fpu", "sse2", "lm", "cx8", "mmx"}
    assert must <= enabled, sorted(must - enabled)
    assert exp.props.get("vendor") in ("GenuineIntel", "AuthenticAMD", "HygonGenuine")
    if "definitions" in replies:
        models = qmp_decode.decode_cpu_definitions(replies["definitions"])
        assert models
        for m in models:
            assert_clean_features(m.unavailable_features, f"{path.name}:{m.name}", BLOCKER_PROPERTIES)


def test_full_expansion_aliases_collapse() -> None:
    """sse4_1, sse4-1 and sse4.1 are one feature; the canonical key's value wins."""
    reply = {
        "model": {
            "name": "host",
            "props": {
                "sse4_1": True,
                "sse4-1": True,
                "sse4.1": True,
                "pclmuldq": True,
                "pclmulqdq": True,
                "lahf_lm": False,
                "lahf-lm": False,
                "check": True,
                "enforce": False,
                "hv-relaxed": False,
                "level": 13,
                "model-id": "X",
                "lbr_fmt": 0,
                "lbr-fmt": 0,
                "memory": "/machine/x",
            },
        }
    }
    exp = qmp_decode.decode_expansion(reply)
    assert dict(exp.features) == {"sse4.1": True, "pclmulqdq": True, "lahf-lm": False}
    assert set(exp.props) == {"check", "enforce", "hv-relaxed", "level", "model-id", "lbr-fmt", "memory"}


def test_vocabulary_keeps_unknown_booleans_out_of_features() -> None:
    reply = {
        "model": {"name": "host", "props": {"fpu": True, "x-brand-new-knob": True, "shiny-new-prop": True}}
    }
    assert dict(qmp_decode.decode_expansion(reply, vocabulary=("fpu",)).features) == {"fpu": True}
    # Without a vocabulary an unknown boolean is assumed to be a (new) feature.
    assert "shiny-new-prop" in qmp_decode.decode_expansion(reply).features


def test_feature_words_subleaf_defaults_to_zero() -> None:
    words = qmp_decode.decode_feature_words(
        [
            {"cpuid-register": "EBX", "cpuid-input-eax": 7, "cpuid-input-ecx": 0, "features": 5},
            {"cpuid-register": "EDX", "cpuid-input-eax": 1, "features": 1},
            {"cpuid-register": "EAX", "cpuid-input-eax": 13, "cpuid-input-ecx": 1, "features": 7},
        ]
    )
    assert [(w.leaf, w.subleaf, w.register, w.bits) for w in words] == [
        (1, 0, "edx", 1),
        (7, 0, "ebx", 5),
        (13, 1, "eax", 7),
    ]


def test_definitions_deduplicate_and_canonicalise() -> None:
    [m] = qmp_decode.decode_cpu_definitions(
        [
            {
                "name": "Skylake-Server-v1",
                "unavailable-features": ["pku", "avx", "pku", "sse4_1"],
                "static": False,
                "migration-safe": True,
                "deprecated": False,
            }
        ]
    )
    assert m == CpuModel("Skylake-Server-v1", ("avx", "pku", "sse4.1"), None, False, True, False)
    assert not m.usable


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"model": []},
        {"model": {"name": 3}},
        {"model": {"name": "x", "props": []}},
    ],
)
def test_bad_expansion_shapes_raise(bad: object) -> None:
    with pytest.raises(qmp_decode.ReplyShapeError):
        qmp_decode.decode_expansion(bad)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        [{"cpuid-register": "EBX"}],
        [{"cpuid-register": "R9", "cpuid-input-eax": 1, "features": 1}],
        [{"cpuid-register": "EAX", "cpuid-input-eax": "1", "features": 1}],
    ],
)
def test_bad_feature_words_raise(bad: object) -> None:
    with pytest.raises(qmp_decode.ReplyShapeError):
        qmp_decode.decode_feature_words(bad)
