"""Export formats without their consumers: the cpu_map reader, the libvirt spelling, syntax
checks written from each consumer's own parser, and golden files.

Golden files (``tests/golden/export/<pool>.<format>``) come from fixed
baselines built from real captures: this host's own probe (``local``, KVM;
``local-tcg``, TCG) and two replayed cputestdata Xeons (``intel``), spelt
through the newer libvirt cpu_map of ``../shared/realdata`` (fixed, unlike
the system's). They are rewritten only on request::

    python -m tests.test_export --regenerate

Where a consumer runs here it is used instead (``tests/test_export_live.py``:
QEMU for readconfig and the Proxmox ``-cpu``, virsh for libvirt).
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.baseline import Baseline, Member, Policy, compute_baseline, member_from_probe
from fleetcpu.errors import BadInputError
from fleetcpu.export import FORMATS, NEEDS_CPU_MAP, RenderOptions, render
from fleetcpu.export.proxmox_conf import PVE_MODELS, choose, forced, overridden
from fleetcpu.libvirt import CpuMap, CpuMapError, load_cpu_map, spell
from fleetcpu.libvirt.cpumap import SYSTEM_CPU_MAP, parse_features
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.probe.features import CPUID_FEATURES, KVM_PV, cpuid_bit

from .conftest import REALDATA, REPO
from .support.replay import members as replay

GOLDEN = REPO / "tests" / "golden"
EXPORTS = GOLDEN / "export"
NEW_MAP = REALDATA / "libvirt" / "cpu_map"
EXPORT_FORMATS = ("readconfig", "libvirt", "nova", "kubevirt", "proxmox")
#: How the cpu_map is named in golden files: the checkout's location must not leak in.
GOLDEN_MAP_NAME = "../shared/realdata/libvirt/cpu_map"


# --------------------------------------------------------------------------- fixed pools


def golden_member(name: str, host: str) -> Member:
    doc = document_from_json((GOLDEN / name).read_text(), name)
    assert doc.qemu is not None
    [mp] = doc.machine_types
    return member_from_probe(
        host, mp.accel, doc.qemu.version, datetime(2026, 11, 26, tzinfo=UTC), doc.host, mp
    )


@cache
def pool_members() -> dict[str, tuple[str, str, tuple[Member, ...], Policy]]:
    """(machine type, accelerator, members, policy) of every fixed pool.

    The golden pools (``GOLDEN_POOLS``) and three replayed pools the consumer
    tests start guests for: ``rich`` (Skylake/Cascade Lake Xeons, no common
    model; libvirt's nearest, Skylake-Server, was never recorded by their
    probes), ``amd`` (two EPYC 7601, libvirt's nearest EPYC unrecorded) and
    ``newer`` (a Ryzen 9 probed with QEMU 10.0, newer than this machine's).
    """
    local = golden_member("probe-kvm-q35.json", "this-host")
    tcg = golden_member("probe-tcg-i440fx-2.0.json", "this-host")
    intel = (replay.member("Xeon-E3-1225-v5", host="kvm01"), replay.member("Xeon-Gold-6130", host="kvm02"))
    nested = tuple(replay.member("Xeon-Platinum-9242", host=f"n{i}", nested=True) for i in range(2))
    rich = (replay.member("Xeon-Gold-6148", host="r1"), replay.member("Xeon-Platinum-8268", host="r2"))
    amd = (replay.member("EPYC-7601-32-Core", host="a1"), replay.member("EPYC-7601-32-Core-ibpb", host="a2"))
    newer_probe = replay.machine_probe("qemu-10.0-Ryzen-9-3900X")
    newer = (replay.member("qemu-10.0-Ryzen-9-3900X", host="z1"),)
    return {
        "local": ("pc-q35-7.2", "kvm", (local,), Policy()),
        "local-tcg": ("pc-i440fx-2.0", "tcg", (tcg,), Policy()),
        "intel": ("pc-q35-0.0", "kvm", intel, Policy()),
        "nested": ("pc-q35-0.0", "kvm", nested, Policy(nested=True)),
        "rich": ("pc-q35-0.0", "kvm", rich, Policy()),
        "amd": ("pc-q35-0.0", "kvm", amd, Policy()),
        "newer": (newer_probe.machine_type, "kvm", newer, Policy()),
    }


#: The pools with golden files, and every fixed pool.
GOLDEN_POOLS = ("local", "local-tcg", "intel", "nested")
ALL_POOLS = (*GOLDEN_POOLS, "rich", "amd", "newer")


@cache
def pools() -> dict[str, Baseline]:
    """The fixed baselines: the golden files' and the consumer tests' replayed pools."""
    return {
        name: compute_baseline(name, machine, accel, list(members), policy)
        for name, (machine, accel, members, policy) in pool_members().items()
    }


@cache
def new_map() -> CpuMap:
    return dataclasses.replace(load_cpu_map(NEW_MAP), path=GOLDEN_MAP_NAME)


@cache
def system_map() -> CpuMap:
    return load_cpu_map(SYSTEM_CPU_MAP)


def export(pool: str, fmt: str, cpu_map: CpuMap | None = None) -> str:
    options = RenderOptions(cpu_map or new_map()) if fmt in NEEDS_CPU_MAP else RenderOptions()
    return render(pools()[pool], fmt, options).stdout


def regenerate() -> None:
    EXPORTS.mkdir(parents=True, exist_ok=True)
    for pool in GOLDEN_POOLS:
        for fmt in EXPORT_FORMATS:
            (EXPORTS / f"{pool}.{fmt}").write_text(export(pool, fmt))


# --------------------------------------------------------------------------- golden files


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("pool", GOLDEN_POOLS)
def test_golden(pool: str, fmt: str) -> None:
    path = EXPORTS / f"{pool}.{fmt}"
    assert path.exists(), f"{path} missing: python -m tests.test_export --regenerate"
    assert export(pool, fmt) == path.read_text(), (
        f"{path} differs; if the change is intended: python -m tests.test_export --regenerate"
    )


def test_every_format_is_in_the_cli() -> None:
    from fleetcpu.cli import _BASELINE_FORMATS

    assert set(EXPORT_FORMATS) <= set(FORMATS) and tuple(FORMATS) == _BASELINE_FORMATS
    with pytest.raises(ValueError, match="needs a cpu_map"):
        render(pools()["local"], "libvirt")


# --------------------------------------------------------------------------- cpu_map reader


def test_both_index_layouts_are_read() -> None:
    """System (libvirt 9.0): flat includes; realdata (newer): <group>s and versioned models."""
    old, new = system_map(), load_cpu_map(NEW_MAP)
    for cpu_map, directory in ((old, SYSTEM_CPU_MAP), (new, NEW_MAP)):
        files = {p.stem[len("x86_") :] for p in Path(directory).glob("x86_*.xml")} - {"features", "vendors"}
        assert set(cpu_map.models) == files  # one model per file, each found through index.xml
    assert "pentium3-v1" not in old.models and "Cascadelake-Server-v5" in new.models
    assert new.models["pentium3-v1"].features == new.models["pentium3"].features  # inherited
    assert new.models["Cascadelake-Server-v5"].vendor == "GenuineIntel"
    assert new.models["pentium3"].vendor is None


def test_removed_features_are_kept_apart() -> None:
    new = load_cpu_map(NEW_MAP)
    cascade = new.models["Cascadelake-Server"]
    assert "mpx" in cascade.removed and "mpx" not in cascade.features
    assert "mpx" in system_map().models["Cascadelake-Server"].features  # before it was removed


def test_removed_features_are_disabled_unless_wanted() -> None:
    """Cascadelake-Server-v1 inherits Cascadelake-Server's ``mpx removed='yes'``."""
    b = pools()["nested"]
    without = dataclasses.replace(
        b, model="Cascadelake-Server-v1", features=tuple(f for f in b.features if f != "mpx")
    )
    cpu = spell(without, load_cpu_map(NEW_MAP))
    assert (cpu.model, cpu.how) == ("Cascadelake-Server-v1", "same")
    assert "mpx" in cpu.disable  # never trusted to stay out
    wanted = dataclasses.replace(without, features=(*without.features, "mpx"))
    cpu = spell(wanted, load_cpu_map(NEW_MAP))
    assert "mpx" in cpu.require and "mpx" not in cpu.disable  # never counted as given


def test_qemu_spellings_become_libvirt_names() -> None:
    for cpu_map in (system_map(), load_cpu_map(NEW_MAP)):
        assert cpu_map.libvirt_name("pclmulqdq") == "pclmuldq"
        assert cpu_map.libvirt_name("lahf-lm") == cpu_map.libvirt_name("lahf_lm") == "lahf_lm"
        assert cpu_map.libvirt_name("sse4.1") == cpu_map.libvirt_name("sse4_1") == "sse4.1"
        assert cpu_map.libvirt_name("tsc-adjust") == "tsc_adjust"
        assert cpu_map.libvirt_name("pni") == cpu_map.libvirt_name("sse3") == "pni"
        assert all(cpu_map.libvirt_name(f) is None for f in KVM_PV)
    assert system_map().libvirt_name("vmx-ept") is None
    assert load_cpu_map(NEW_MAP).libvirt_name("vmx-ept") == "vmx-ept"


def test_name_and_bit_translation_agree() -> None:
    """Two independent tables (ours from the SDM/APM, libvirt's): one feature, one bit."""
    for directory in (SYSTEM_CPU_MAP, NEW_MAP):
        feats = parse_features((Path(directory) / "x86_features.xml").read_bytes())
        cpu_map = load_cpu_map(directory)
        checked = 0
        for name in CPUID_FEATURES:
            lv = cpu_map.libvirt_name(name)
            if lv is None:
                continue
            bit = feats[lv].cpuid
            assert bit is not None and cpuid_bit(name) == bit, (name, lv, bit)
            checked += 1
        assert checked > 150


def test_a_bad_cpu_map_is_exit_3(tmp_path: Path) -> None:
    with pytest.raises(CpuMapError) as err:
        load_cpu_map(tmp_path / "nope")
    assert isinstance(err.value, BadInputError) and err.value.exit_code == 3
    (tmp_path / "index.xml").write_text("<cpus><arch name='x86'><include filename='x.xml'/>")
    with pytest.raises(CpuMapError, match="not a readable libvirt cpu_map"):
        load_cpu_map(tmp_path)


# --------------------------------------------------------------------------- the libvirt spelling


@pytest.mark.parametrize("which", ["system", "new"])
@pytest.mark.parametrize("pool", ALL_POOLS)
def test_libvirt_reaches_exactly_the_result(pool: str, which: str) -> None:
    """cpu_map's model + require - disable is the result (libvirt names), PV features aside."""
    cpu_map = system_map() if which == "system" else load_cpu_map(NEW_MAP)
    b = pools()[pool]
    cpu = spell(b, cpu_map)
    model = cpu_map.models[cpu.model]
    wanted = {cpu_map.libvirt_name(f) for f in b.features if f not in KVM_PV} - {None}
    assert (model.features | set(cpu.require)) - set(cpu.disable) == wanted
    assert not set(cpu.require) & set(cpu.disable)
    assert set(cpu.unnamed) == {f for f in b.features if f not in KVM_PV and cpu_map.libvirt_name(f) is None}
    assert dict(cpu.pv) == {f: True for f in b.features if f in KVM_PV}


def known_names(pool: str, cpu_map: CpuMap) -> set[str]:
    """The libvirt names of every non-PV feature some member's QEMU knows (its vocabulary)."""
    _, _, members, _ = pool_members()[pool]
    vocabulary = frozenset().union(*(m.vocabulary for m in members))
    names = {cpu_map.libvirt_name(f) for f in vocabulary if f not in KVM_PV}
    return {n for n in names if n is not None}


@pytest.mark.parametrize("which", ["system", "new"])
@pytest.mark.parametrize("pool", ALL_POOLS)
def test_no_model_content_can_widen_the_guest(pool: str, which: str) -> None:
    """Defect 1: whatever QEMU's model holds, the guest gets exactly the result.

    QEMU's definition of the libvirt model is unknown (never recorded for an
    unusable model, and it differs from cpu_map's: QEMU 7.2's Skylake-Server
    has pku, its EPYC topoext). So the <cpu> must decide every feature a
    member's QEMU knows and libvirt can name: for any content S of the
    model, (S + require) - disable is the result. S ranges over nothing,
    every cpu_map model, and every nameable feature.
    """
    cpu_map = system_map() if which == "system" else load_cpu_map(NEW_MAP)
    b = pools()[pool]
    cpu = spell(b, cpu_map)
    wanted = {cpu_map.libvirt_name(f) for f in b.features if f not in KVM_PV} - {None}
    known = known_names(pool, cpu_map) | wanted
    contents = [set(), known, *(m.features & known for m in cpu_map.models.values())]
    for content in contents:
        assert (content | set(cpu.require)) - set(cpu.disable) == wanted
    # Nova and KubeVirt hand the same model and features to libvirt.
    flags = nova_flags(render(b, "nova", RenderOptions(cpu_map)).stdout)[1]
    assert {f for f, op in flags.items() if op == "-"} == {f.lower() for f in cpu.disable}
    kv = kubevirt_cpu(render(b, "kubevirt", RenderOptions(cpu_map)).stdout)
    assert {f["name"] for f in kv["features"] if f["policy"] == "disable"} == set(cpu.disable)


def test_model_choice_same_unversioned_closest() -> None:
    b = pools()["local"]
    assert (spell(b, load_cpu_map(NEW_MAP)).model, spell(b, load_cpu_map(NEW_MAP)).how) == (
        "pentium3-v1",
        "same",
    )
    old = spell(b, system_map())
    assert (old.model, old.how) == ("pentium3", "unversioned")
    assert "QEMU's pentium3 on pc-q35-7.2 is pentium3-v1" in old.why  # the alias, followed
    modelless = compute_baseline("x", "pc-q35-0.0", "kvm", [replay.member("Xeon-Gold-6148")])
    assert modelless.model == "base"
    closest = spell(modelless, load_cpu_map(NEW_MAP))
    assert (closest.model, closest.how) == ("Skylake-Server", "closest")
    assert "did not record" in closest.why  # no query-cpu-definitions in that capture


def test_qemu_view_differences_are_explicit() -> None:
    """QEMU's pentium3-v1 lacks what the result adds; every such feature is required."""
    b = pools()["local"]
    cpu = spell(b, system_map())
    view = next(v for v in b.models if v.model == "pentium3-v1")
    lv = {system_map().libvirt_name(f) for f in view.enable if f not in KVM_PV}
    assert lv <= set(cpu.require)


def test_features_libvirt_cannot_name_are_said_not_dropped() -> None:
    b = pools()["nested"]
    cpu = spell(b, system_map())  # libvirt 9.0 has no vmx-* names
    assert len(cpu.unnamed) > 60 and "vmx-ept" in cpu.unnamed
    out = render(b, "libvirt", RenderOptions(system_map()))
    assert "cannot name them (the guest will lack them): " in out.stdout
    assert "vmx-ept" in out.stderr  # and said where a script sees it


def test_kvm_pv_features_get_their_domain_knobs() -> None:
    out = export("local", "libvirt")
    assert "<features><pvspinlock state='on'/></features> (kvm-pv-unhalt on)" in out
    assert "pv-ipi" not in out.split("the guest lacks")[0].split("set them in the domain")[1]
    assert "the guest lacks (libvirt has no knob that turns them on): kvm-asyncpf-int" in out
    nova, kubevirt = export("local", "nova"), export("local", "kubevirt")
    assert "<features><" not in nova and "pvspinlock" not in nova  # Nova cannot follow them
    assert "spec.domain.features.pvspinlock.enabled: true (kvm-pv-unhalt on)" in kubevirt
    assert "kvm" not in export("local-tcg", "libvirt").split("<model")[1]


# --------------------------------------------------------------------------- syntax, per consumer


def libvirt_cpu(text: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(model, model attributes, feature -> policy), checking the shape libvirt requires."""
    root = ET.fromstring(text)
    assert root.tag == "cpu" and root.attrib == {"mode": "custom", "match": "exact", "check": "full"}
    [model] = root.findall("model")
    assert model.get("fallback") == "forbid"
    vendor = model.get("vendor_id")
    assert vendor is None or len(vendor) == 12  # libvirt refuses any other length
    features: dict[str, str] = {}
    for f in root.findall("feature"):
        assert f.get("policy") in ("require", "disable")
        name = f.get("name", "")
        assert name and name not in features
        features[name] = f.get("policy", "")
    assert {c.tag for c in root} <= {"model", "feature", "maxphysaddr"}
    return model.text or "", dict(model.attrib), features


@pytest.mark.parametrize("pool", ALL_POOLS)
def test_nova_and_kubevirt_say_what_libvirt_says(pool: str) -> None:
    model, _, features = libvirt_cpu(export(pool, "libvirt"))
    flags = nova_flags(export(pool, "nova"))
    assert flags[0] == model
    assert flags[1] == {name: ("+" if p == "require" else "-") for name, p in features.items()}
    text = export(pool, "kubevirt")
    kv = kubevirt_cpu(text)
    got = {f["name"]: f["policy"] for f in kv.get("features", [])}
    if kv["model"] == model:
        assert got == features
    else:  # a model KubeVirt labels nodes with instead (tests/test_export_kubevirt.py)
        assert f"libvirt's choice {model} " in text and "no node would be labelled" in text
        assert {f for f, p in got.items() if p == "require"} == {
            f for f, p in features.items() if p == "require"
        }


def nova_flags(text: str) -> tuple[str, dict[str, str]]:
    """Parse as an INI file (oslo.config's syntax is INI); flags must be Nova's +/- lowercase."""
    parser = configparser.ConfigParser(
        interpolation=None, comment_prefixes=("#",), inline_comment_prefixes=None, strict=True
    )
    parser.read_string(text)
    assert parser.sections() == ["libvirt"]
    section = parser["libvirt"]
    assert set(section) == {"cpu_mode", "cpu_models", "cpu_model_extra_flags"}
    assert section["cpu_mode"] == "custom"
    flags = {}
    for item in section["cpu_model_extra_flags"].split(","):
        flag = item.strip()
        assert re.fullmatch(r"[+-][a-z0-9_.-]+", flag), flag
        assert flag[1:] not in flags
        flags[flag[1:]] = flag[0]
    return section["cpu_models"], flags


def yaml_load(text: str) -> Any:
    """A real YAML parser: the venv's PyYAML if any, else the system Python's; None if neither."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        system = shutil.which("python3", path="/usr/bin")
        if system is None:
            return None
        probe = subprocess.run([system, "-c", "import yaml"], capture_output=True, check=False)
        if probe.returncode != 0:
            return None
        out = subprocess.run(
            [system, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout)
    return yaml.safe_load(text)


def kubevirt_strict(text: str) -> dict[str, Any]:
    """The exact subset we emit, parsed strictly (no YAML library needed)."""
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert body[:3] == ["spec:", "  domain:", "    cpu:"]
    m = re.fullmatch(r'      model: "([^"\\]+)"', body[3])
    assert m, body[3]
    cpu: dict[str, Any] = {"model": m.group(1)}
    rest = body[4:]
    if rest:
        assert rest[0] == "      features:"
        pairs = rest[1:]
        assert len(pairs) % 2 == 0
        cpu["features"] = []
        for name_line, policy_line in zip(pairs[::2], pairs[1::2], strict=True):
            n = re.fullmatch(r'      - name: "([^"\\]+)"', name_line)
            p = re.fullmatch(r"        policy: (require|disable)", policy_line)
            assert n and p, (name_line, policy_line)
            cpu["features"].append({"name": n.group(1), "policy": p.group(1)})
    return cpu


def kubevirt_cpu(text: str) -> dict[str, Any]:
    strict = kubevirt_strict(text)
    parsed = yaml_load(text)
    if parsed is not None:
        assert parsed == {"spec": {"domain": {"cpu": strict}}}
    return strict


def test_kubevirt_yaml_quotes_numeric_model_names() -> None:
    """A model called 486 must stay a string for any YAML parser."""
    b = dataclasses.replace(pools()["local"], model="486-v1")
    text = render(b, "kubevirt", RenderOptions(load_cpu_map(NEW_MAP))).stdout
    assert kubevirt_cpu(text)["model"] == "486-v1"
    parsed = yaml_load(text)
    if parsed is not None:
        assert isinstance(parsed["spec"]["domain"]["cpu"]["model"], str)


PVE_FLAG = r"[+-][a-zA-Z0-9\-_\.]+"


def proxmox_entry(text: str) -> tuple[str, dict[str, str]]:
    """Parsed as PVE::SectionConfig does (its regexes), checked as CPUConfig's schema does."""
    lines = [ln for ln in text.split("\n") if not re.match(r"^\s*#", ln)]
    header = re.fullmatch(r"(\S+):\s*(\S+)\s*", lines[0])
    assert header and header.group(1) == "cpu-model", lines[0]
    props: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            break  # a blank line ends the section
        m = re.fullmatch(r"\s+(\S+)(\s+(.*\S))?\s*", line)
        assert m and m.group(3) is not None, line
        assert m.group(1) not in props, "duplicate attribute"
        props[m.group(1)] = m.group(3)
    assert set(props) <= {"flags", "level", "phys-bits", "hidden", "reported-model", "hv-vendor-id"}
    assert props["reported-model"] in PVE_MODELS
    if "flags" in props:
        assert re.fullmatch(f"{PVE_FLAG}(;{PVE_FLAG})*", props["flags"]), props["flags"]
    if "phys-bits" in props:
        assert re.fullmatch(r"host|\d{1,2}", props["phys-bits"])
        assert props["phys-bits"] == "host" or 8 <= int(props["phys-bits"]) <= 64
    if "level" in props:
        assert re.fullmatch(r"\d+", props["level"]) and int(props["level"]) < 2**32
    assert props.get("hidden", "0") in ("0", "1")
    return header.group(2), props


@pytest.mark.parametrize("pool", ALL_POOLS)
def test_proxmox_entries_parse_as_pve_does(pool: str) -> None:
    name, props = proxmox_entry(export(pool, "proxmox"))
    assert name == f"fleetcpu-{pool}"
    b = pools()[pool]
    flags = props.get("flags", "").split(";")
    spelled = {f[1:].replace("_", "-"): f[0] for f in flags if f}
    model, verdict = choose(b)
    assert props["reported-model"] == model
    own = forced(model, b.accel, b.machine_type)
    plus = {f for f, s in spelled.items() if s == "+"}
    minus = {f for f, s in spelled.items() if s == "-"}
    # Proxmox's own flags appear only where the result contradicts them (an override).
    assert {f for f in own if f in spelled} == set(overridden(b, model))
    if verdict is not None:  # exactly the pool's named-string changes, PVE's own aside
        assert plus | {f for f, on in own.items() if on} >= set(verdict.enable)
        assert minus | {f for f, on in own.items() if not on} >= set(verdict.disable)
    else:  # everything explicit, but what Proxmox sets itself
        assert plus | {f for f, on in own.items() if on and f not in minus} == set(b.features)


def test_proxmox_prefers_a_vendor_compatible_usable_model() -> None:
    intel = pools()["intel"]
    model, verdict = choose(intel)
    assert verdict is not None and PVE_MODELS[model] == "GenuineIntel"
    local = pools()["local"]  # AMD pool, only Intel-generic models usable under this KVM
    model, verdict = choose(local)
    assert (model, verdict) == ("kvm64", None)
    _, props = proxmox_entry(export("local", "proxmox"))
    assert "-pni" in props["flags"].split(";")  # kvm64's own feature this host lacks, switched off


def readconfig_sections(text: str) -> list[dict[str, str]]:
    """QEMU's qemu_config_parse grammar, strictly: lines < 1024 bytes, quoted values."""
    sections: list[dict[str, str]] = []
    for line in text.split("\n"):
        assert len(line.encode()) < 1023, "QEMU reads 1024-byte lines"
        if not line or line.startswith("#"):
            continue
        if line == "[global]":
            sections.append({})
            continue
        m = re.fullmatch(r'\s*([a-z]+) = "([^"]*)"', line)
        assert m and sections and m.group(1) in ("driver", "property", "value"), line
        assert m.group(1) not in sections[-1]
        sections[-1][m.group(1)] = m.group(2)
    assert all(set(s) == {"driver", "property", "value"} for s in sections)
    return sections


@pytest.mark.parametrize("pool", ALL_POOLS)
def test_readconfig_is_the_custom_string(pool: str) -> None:
    b = pools()[pool]
    sections = readconfig_sections(export(pool, "readconfig"))
    assert {s["driver"] for s in sections} == {"base-x86_64-cpu"}
    as_string = ",".join(
        f"{s['property']}={s['value']}" if s["value"] != "on" else f"+{s['property']}" for s in sections
    )
    assert "base," + as_string == b.custom


def main(argv: list[str], regen: Callable[[], None] = regenerate) -> int:
    if argv != ["--regenerate"]:
        print("usage: python -m tests.test_export --regenerate", file=sys.stderr)
        return 2
    regen()
    print(f"rewrote {len(GOLDEN_POOLS) * len(EXPORT_FORMATS)} files under {EXPORTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
