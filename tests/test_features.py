"""The feature vocabulary against real data: libvirt's CPU map, libvirt's recorded
QEMU replies (QEMU 5.0, 8.2, 10.0 and the hosts of cputestdata), and the QEMU of
this machine.

The table in fleetcpu.probe.features is hand-written from the SDM/APM; these
tests are what make it trustworthy. Every allowed difference is listed here
with its reason, so a new libvirt or QEMU name shows up as a failure, not as a
silently unknown feature.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from qemu.qmp import QMPClient

from fleetcpu.probe import features as F

REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("FLEETCPU_REALDATA", REPO.parent / "shared" / "realdata")).resolve()
LIBVIRT = REALDATA / "libvirt"
CPU_MAP = LIBVIRT / "cpu_map" / "x86_features.xml"
REPLIES = sorted(glob.glob(str(LIBVIRT / "qemucapabilitiesdata" / "*x86_64.replies")))
CPUTEST_JSON = sorted(glob.glob(str(LIBVIRT / "cputestdata" / "x86_64-cpuid-*.json")))
CPUTEST_ENABLED = sorted(glob.glob(str(LIBVIRT / "cputestdata" / "x86_64-cpuid-*-enabled.xml")))
CPUTEST_DISABLED = sorted(glob.glob(str(LIBVIRT / "cputestdata" / "x86_64-cpuid-*-disabled.xml")))

# libvirt features QEMU has no property for; nothing can canonicalise to them.
LIBVIRT_ONLY = {
    # Intel RDT monitoring (CPUID 7.0 EBX[12], 0xF.1 EDX): host resource
    # accounting, never exposed to guests by QEMU.
    "cmt": "RDT monitoring, not virtualised by QEMU",
    "mbm_total": "RDT memory-bandwidth monitoring, not virtualised by QEMU",
    "mbm_local": "RDT memory-bandwidth monitoring, not virtualised by QEMU",
    # AMD CVT16 (0x80000001 ECX[18]): dropped with Bulldozer; QEMU never named it.
    "cvt16": "AMD CVT16, no QEMU name",
    # EPT memory types: QEMU always requires write-back EPT and gives these
    # capability bits no property.
    "vmx-ept-uc": "EPT UC memory type, no QEMU property",
    "vmx-ept-wb": "EPT WB memory type, no QEMU property",
    # IA32_VMX_EPT_VPID_CAP bit 41. QEMU drives it with the property
    # "vmx-invept-single-context" (the same name as bit 25), so QEMU has no
    # name of its own for it; libvirt does.
    "vmx-invvpid-single-context": "QEMU names bit 41 vmx-invept-single-context",
}

# libvirt and QEMU both name these, but at different positions. None known.
KNOWN_BIT_DIFFERENCES: dict[str, str] = {}

# feature-words entries that are not feature flags: XSAVE state-component
# bitmaps (XCR0 low/high, IA32_XSS low/high). Their bits say which register
# state XSAVE manages (x87, SSE, AVX, ...), follow from features, and have no
# names in QEMU.
TABLE = F.CPUID_FEATURES | F.MSR_FEATURES

NON_FEATURE_WORDS = {(0xD, 0, "eax"), (0xD, 0, "edx"), (0xD, 1, "ecx"), (0xD, 1, "edx")}


# --------------------------------------------------------------------------- loaders


def json_stream(text: str) -> list[Any]:
    """Concatenated JSON values (libvirt's .replies and cputestdata .json)."""
    dec = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.append(obj)


def replies_expansions(path: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(arguments, props) of every query-cpu-model-expansion in a .replies file."""
    objs = json_stream(Path(path).read_text())
    out = []
    assert len(objs) % 2 == 0, f"{path}: a command without its reply"
    for cmd, reply in zip(objs[::2], objs[1::2], strict=True):
        assert "execute" in cmd, path
        assert "return" in reply or "error" in reply, path
        if cmd["execute"] == "query-cpu-model-expansion":
            out.append((cmd["arguments"], reply["return"]["model"]["props"]))
    assert out, f"{path}: no expansions"
    return out


def cputest_full_expansion(path: str) -> dict[str, Any]:
    for obj in json_stream(Path(path).read_text()):
        if obj.get("id") == "model-expansion":
            props: dict[str, Any] = obj["return"]["model"]["props"]
            return props
    raise AssertionError(f"{path}: no model-expansion reply")


def single_bit(mask: int) -> int:
    assert mask, "empty mask"
    assert mask & (mask - 1) == 0, f"not a single bit: {mask:#x}"
    return mask.bit_length() - 1


def libvirt_features() -> list[tuple[str, list[str], ET.Element]]:
    """(name, qemu aliases, feature element) of every libvirt x86 feature."""
    root = ET.parse(CPU_MAP).getroot()
    out = []
    for feat in root.iter("feature"):
        aliases = [a.attrib["name"] for a in feat.findall("alias") if a.get("source") == "qemu"]
        out.append((feat.attrib["name"], aliases, feat))
    assert len(out) > 300, "libvirt's CPU map looks truncated"
    return out


def qemu_canonical(name: str, aliases: list[str]) -> str | None:
    """The one canonical name libvirt's name and its QEMU aliases agree on, if any is known."""
    known = {F.canonical(n) for n in [name, *aliases]} & TABLE
    assert len(known) <= 1, f"{name}: its spellings canonicalise to several names {known}"
    return known.pop() if known else None


# --------------------------------------------------------------------------- classification


def check_static(props: dict[str, Any], where: str) -> None:
    bad = []
    for key, value in props.items():
        if isinstance(value, bool):
            if not (F.is_feature(key) and F.canonical(key) == key and not F.is_property(key)):
                bad.append(f"{key}: boolean of a static expansion but not a canonical feature")
        elif not F.is_property(key):
            bad.append(f"{key}={value!r}: non-boolean but not a property")
    assert not bad, f"{where}:\n" + "\n".join(bad)


def check_full(props: dict[str, Any], vocabulary: frozenset[str], where: str) -> None:
    """Every key is a property or a feature whose canonical name is in ``vocabulary``,
    and every spelling of one feature reports the same value (else it is not an alias)."""
    bad = []
    by_canon: dict[str, dict[str, Any]] = {}
    for key, value in props.items():
        prop, feat = F.is_property(key), F.is_feature(key)
        if prop == feat:
            bad.append(f"{key}: property={prop} feature={feat}")
            continue
        if feat:
            canon = F.canonical(key)
            if canon not in vocabulary:
                bad.append(f"{key}: canonical {canon!r} is not a known feature name")
            by_canon.setdefault(canon, {})[key] = value
    for canon, spellings in by_canon.items():
        if len(set(map(repr, spellings.values()))) != 1:
            bad.append(f"{canon}: spellings disagree {spellings}")
    assert not bad, f"{where}:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- the table itself


def test_table_names_are_canonical_and_round_trip() -> None:
    assert len(F.CPUID_FEATURES) > 250
    assert len(F.MSR_FEATURES) > 100
    assert not F.CPUID_FEATURES & F.MSR_FEATURES
    for name in F.CPUID_FEATURES | F.MSR_FEATURES:
        assert F.canonical(name) == name
        assert F.is_feature(name), name
        assert not F.is_property(name), name
    for name in F.CPUID_FEATURES:
        bit = F.cpuid_bit(name)
        assert bit is not None, name
        assert F.msr_bit(name) is None, name
        leaf, subleaf, reg, n = bit
        assert F.is_feature_word(leaf, subleaf, reg), name
        assert F.names_for(leaf, subleaf, reg, 1 << n) == (name,), name
        assert not F.is_msr_feature(name), name
    for name in F.MSR_FEATURES:
        assert F.cpuid_bit(name) is None, name
        assert F.msr_bit(name) is not None, name
        assert F.is_msr_feature(name), name


def test_aliases_fold_to_the_static_spelling() -> None:
    expect = {
        "sse4_1": "sse4.1",
        "sse4-1": "sse4.1",
        "sse4_2": "sse4.2",
        "sse3": "pni",
        "pclmuldq": "pclmulqdq",
        "xd": "nx",
        "ffxsr": "fxsr-opt",
        "fxsr_opt": "fxsr-opt",
        "i64": "lm",
        "ds_cpl": "ds-cpl",
        "tsc_adjust": "tsc-adjust",
        "lahf_lm": "lahf-lm",
        "kvm_asyncpf": "kvm-asyncpf",
        "perfctr_core": "perfctr-core",
        "svm_lock": "svm-lock",
        "nrip_save": "nrip-save",
        "md_clear": "md-clear",
    }
    for alias, canon in expect.items():
        assert F.canonical(alias) == canon, alias
        assert F.is_feature(alias), alias
        assert not F.is_property(alias), alias
        assert F.cpuid_bit(alias) == F.cpuid_bit(canon), alias
    assert F.canonical("no-such-feature") == "no-such-feature"
    assert not F.is_feature("no-such-feature")
    assert not F.is_property("no-such-feature")


def test_properties_are_not_features() -> None:
    for name in (
        "check",
        "enforce",
        "l3-cache",
        "host-phys-bits",
        "full-cpuid-auto-level",
        "migratable",
        "pmu",
        "level",
        "xlevel",
        "phys-bits",
        "family",
        "model",
        "vendor",
        "model-id",
        "min-level",
        "hv-relaxed",
        "hv-vendor-id",
        "x-force-features",
        "kvm",
        "tcg-cpuid",
        "apic-id",
        "core-id",
        "memory",
        "realized",
        "ucode-rev",
        "lbr-fmt",
        "lbr_fmt",
        "kvm-no-smi-migration",
    ):
        assert F.is_property(name), name
        assert not F.is_feature(name), name


def test_names_for_decodes_and_reports_unknown_bits() -> None:
    assert F.names_for(1, 0, "ecx", (1 << 19) | 1) == ("pni", "sse4.1")
    # QEMU's feature-words spell registers in capitals and omit the subleaf.
    assert F.names_for(1, 7, "ECX", 1 << 19) == ("sse4.1",)
    # Subleaves matter where the CPU reads ECX.
    assert F.names_for(7, 1, "eax", 1 << 4) == ("avx-vnni",)
    assert F.names_for(7, 0, "eax", 1 << 4) == ("cpuid-0x7-0-eax-bit4",)
    assert F.names_for(7, 0, "ebx", 1 << 12) == ("cpuid-0x7-0-ebx-bit12",)
    # AMD's copies of leaf-1 EDX bits are the leaf-1 features.
    assert F.names_for(0x80000001, 0, "edx", 1 | (1 << 20)) == ("fpu", "nx")
    assert F.cpuid_bit("fpu") == (1, 0, "edx", 0)
    # kvmclock is two bits, one feature.
    assert F.names_for(0x40000001, 0, "eax", 0b1001) == ("kvmclock",)
    assert F.cpuid_bit("kvmclock-stable-bit") == (0x40000001, 0, "eax", 24)
    assert F.names_for(0x80000008, 0, "ebx", 0) == ()
    for bad in (-1, 1 << 32):
        with pytest.raises(ValueError, match="32-bit"):
            F.names_for(1, 0, "ecx", bad)
    with pytest.raises(ValueError, match="register"):
        F.names_for(1, 0, "esp", 1)


def test_feature_classes() -> None:
    every = F.CPUID_FEATURES | F.MSR_FEATURES
    classes = {
        "NON_MIGRATABLE": F.NON_MIGRATABLE,
        "NESTED": F.NESTED,
        "KVM_PV": F.KVM_PV,
        "TSX": F.TSX,
        "SECURITY": F.SECURITY,
        "OS_CONTROLLED": F.OS_CONTROLLED,
    }
    for cname, members in classes.items():
        assert members, cname
        assert members <= every, (cname, sorted(members - every))
    assert "invtsc" in F.NON_MIGRATABLE
    assert {
        "vmx",
        "svm",
        "npt",
        "lbrv",
        "svm-lock",
        "nrip-save",
        "tsc-scale",
        "vmcb-clean",
        "flushbyasid",
        "decodeassists",
        "pause-filter",
        "pfthreshold",
        "avic",
        "v-vmsave-vmload",
        "vgif",
    } <= F.NESTED
    for name in ("vmx-exit-nosave-debugctl", "vmx-from-a-newer-qemu", "nrip_save"):
        assert F.is_nested(name), name
    assert not F.is_nested("avx2")
    assert F.is_msr_feature("vmx-from-a-newer-qemu")
    assert F.is_feature("vmx-from-a-newer-qemu")
    # The whole KVM leaf and nothing else.
    kvm_leaf = {n for n in F.CPUID_FEATURES if (F.cpuid_bit(n) or (0,))[0] == 0x40000001}
    assert kvm_leaf == F.KVM_PV
    assert {"kvmclock", "kvm-nopiodelay", "kvm-mmu", "kvmclock-stable-bit", "kvm-hint-dedicated"} <= F.KVM_PV
    assert {"hle", "rtm"} == F.TSX
    assert {
        "spec-ctrl",
        "stibp",
        "ssbd",
        "md-clear",
        "arch-capabilities",
        "ibpb",
        "ibrs",
        "amd-ssbd",
        "amd-stibp",
        "virt-ssbd",
        "amd-no-ssb",
        "flush-l1d",
        "core-capability",
        "rdctl-no",
        "mds-no",
        "taa-no",
        "sbpb",
        "ibpb-brtype",
        "srso-no",
    } <= F.SECURITY
    assert {
        "rdctl-no",
        "ibrs-all",
        "skip-l1dfl-vmentry",
        "ssb-no",
        "mds-no",
        "pschange-mc-no",
        "tsx-ctrl",
        "taa-no",
        "fb-clear",
        "split-lock-detect",
        "full-width-write",
    } <= F.MSR_FEATURES


# --------------------------------------------------------------------------- libvirt's CPU map


def test_libvirt_cpuid_bits_match() -> None:
    problems, checked = [], 0
    for name, aliases, feat in libvirt_features():
        el = feat.find("cpuid")
        if el is None:
            continue
        leaf = int(el.attrib["eax_in"], 16)
        subleaf = int(el.get("ecx_in", "0"), 16)
        regs = [r for r in ("eax", "ebx", "ecx", "edx") if r in el.attrib]
        assert len(regs) == 1, name
        want = (leaf, subleaf, regs[0], single_bit(int(el.attrib[regs[0]], 16)))
        canon = qemu_canonical(name, aliases)
        if canon is None:
            if name not in LIBVIRT_ONLY:
                problems.append(f"{name}: libvirt knows {want}, the table has no such feature")
            continue
        if name in LIBVIRT_ONLY:
            problems.append(f"{name}: listed as libvirt-only but the table knows it as {canon}")
        got = F.cpuid_bit(canon)
        if got != want and name not in KNOWN_BIT_DIFFERENCES:
            problems.append(f"{name} ({canon}): table {got}, libvirt {want}")
        if F.names_for(leaf, subleaf, regs[0], 1 << want[3]) != (canon,):
            problems.append(f"{name}: {want} decodes to {F.names_for(*want[:3], 1 << want[3])}")
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked > 240


def test_libvirt_msr_bits_match() -> None:
    problems, checked = [], 0
    for name, aliases, feat in libvirt_features():
        el = feat.find("msr")
        if el is None:
            continue
        want = (
            int(el.attrib["index"], 16),
            single_bit(int(el.attrib["edx"], 16) << 32 | int(el.attrib["eax"], 16)),
        )
        canon = qemu_canonical(name, aliases)
        if canon is None:
            if name not in LIBVIRT_ONLY:
                problems.append(f"{name}: libvirt knows MSR {want}, the table does not")
            continue
        assert F.is_msr_feature(canon), name
        if F.msr_bit(canon) != want and name not in KNOWN_BIT_DIFFERENCES:
            problems.append(f"{name} ({canon}): table {F.msr_bit(canon)}, libvirt {want}")
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked > 100


# --------------------------------------------------------------------------- recorded QEMUs


@pytest.mark.parametrize("path", REPLIES, ids=[Path(p).name for p in REPLIES])
def test_replies_expansions_classify(path: str) -> None:
    expansions = replies_expansions(path)
    statics = [p for a, p in expansions if a["type"] == "static"]
    fulls = [p for a, p in expansions if a["type"] == "full"]
    assert statics
    assert fulls
    vocabulary: set[str] = set()
    for props in statics:
        check_static(props, path)
        vocabulary |= props.keys()
    for props in fulls:
        check_full(props, frozenset(vocabulary), path)
    # is_feature() accepts any vmx-* name; the table itself must still know
    # every feature this QEMU has, with a CPUID or MSR position.
    untabled = sorted(
        k
        for props in statics
        for k, v in props.items()
        if isinstance(v, bool) and F.cpuid_bit(k) is None and F.msr_bit(k) is None
    )
    assert untabled == []


@pytest.mark.parametrize("path", REPLIES, ids=[Path(p).name for p in REPLIES])
def test_migratable_toggles_only_non_migratable(path: str) -> None:
    by_args = {json.dumps(a, sort_keys=True): p for a, p in replies_expansions(path)}
    plain = by_args[json.dumps({"type": "static", "model": {"name": "host"}}, sort_keys=True)]
    unmig = by_args[
        json.dumps(
            {"type": "static", "model": {"name": "host", "props": {"migratable": False}}}, sort_keys=True
        )
    ]
    changed = {k for k in plain.keys() & unmig.keys() if plain[k] != unmig[k]}
    assert changed, "the recorded host has no unmigratable feature: the check proves nothing"
    assert changed <= F.NON_MIGRATABLE


@pytest.mark.parametrize("path", CPUTEST_JSON, ids=[Path(p).name for p in CPUTEST_JSON])
def test_cputestdata_full_expansion_classifies(path: str) -> None:
    check_full(cputest_full_expansion(path), F.CPUID_FEATURES | F.MSR_FEATURES, path)


def unnamed_bits(path: str) -> list[tuple[int, int, str, int]]:
    """Positions of the set bits of a cputestdata <cpudata> file that decode to no name."""
    rows = ET.parse(path).getroot().findall("cpuid")
    assert rows, path
    out = []
    for row in rows:
        leaf, subleaf = int(row.attrib["eax_in"], 16), int(row.attrib["ecx_in"], 16)
        for reg in ("eax", "ebx", "ecx", "edx"):
            bits = int(row.attrib[reg], 16)
            for name in F.names_for(leaf, subleaf, reg, bits):
                if name.startswith("cpuid-"):
                    out.append((leaf, subleaf, reg, int(name.rsplit("-bit", 1)[1])))
    return out


def libvirt_only_cpuid_bits() -> set[tuple[int, int, str, int]]:
    out: set[tuple[int, int, str, int]] = set()
    for name, _, feat in libvirt_features():
        el = feat.find("cpuid")
        if name in LIBVIRT_ONLY and el is not None:
            reg = next(r for r in ("eax", "ebx", "ecx", "edx") if r in el.attrib)
            out.add(
                (
                    int(el.attrib["eax_in"], 16),
                    int(el.get("ecx_in", "0"), 16),
                    reg,
                    single_bit(int(el.attrib[reg], 16)),
                )
            )
    return out


@pytest.mark.parametrize("path", CPUTEST_ENABLED, ids=[Path(p).name for p in CPUTEST_ENABLED])
def test_cputestdata_enabled_bits_decode(path: str) -> None:
    """What QEMU enabled on a real host is, bit for bit, named by the table."""
    unknown = unnamed_bits(path)
    if unknown:
        print(f"{path}: unnamed bits {[f'{lf:#x}.{s} {r} bit {b}' for lf, s, r, b in unknown]}")
    assert unknown == []


@pytest.mark.parametrize("path", CPUTEST_DISABLED, ids=[Path(p).name for p in CPUTEST_DISABLED])
def test_cputestdata_disabled_bits_decode(path: str) -> None:
    """What libvirt saw on the host but QEMU left off: named, or one of libvirt's own
    features that QEMU never exposes (RDT monitoring), which is why QEMU left it off."""
    unknown = set(unnamed_bits(path)) - libvirt_only_cpuid_bits()
    if unknown:
        print(f"{path}: unnamed bits {sorted(unknown)}")
    assert unknown == set()


def test_realdata_is_all_there() -> None:
    """The parametrised tests above pass vacuously on an empty glob; this one does not."""
    assert len(REPLIES) >= 3
    assert len(CPUTEST_JSON) >= 40
    assert len(CPUTEST_ENABLED) >= 40
    assert len(CPUTEST_DISABLED) >= 40


# --------------------------------------------------------------------------- this machine's QEMU


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        pytest.fail("qemu-system-x86_64 missing: apt-get install -y --no-install-recommends qemu-system-x86")
    return path


async def _qmp_session(argv: list[str], sock: Path, machine: str) -> dict[str, Any]:
    client = QMPClient("test-features")
    await client.start_server(str(sock))
    proc = subprocess.Popen(
        [*argv, "-qmp", f"unix:{sock}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            await asyncio.wait_for(client.accept(), timeout=20)
        except Exception as exc:  # a hung or dead QEMU: fail with its stderr
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"QEMU did not connect: {exc!r}; stderr: {err.decode()}") from exc
        out: dict[str, Any] = {}
        for kind in ("static", "full"):
            reply = await client.execute(
                "query-cpu-model-expansion", {"type": kind, "model": {"name": "max"}}
            )
            assert isinstance(reply, dict)
            out[kind] = reply["model"]["props"]
        if machine != "none":
            cpus = await client.execute("query-cpus-fast")
            assert isinstance(cpus, list), cpus
            assert cpus, "no vCPU on a real machine type"
            out["feature-words"] = await client.execute(
                "qom-get", {"path": cpus[0]["qom-path"], "property": "feature-words"}
            )
        # QEMU may hang up before answering quit, and qemu.qmp's disconnect()
        # then re-raises that EOFError: both are the expected end here.
        with contextlib.suppress(Exception):
            await client.execute("quit")
        return out
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        proc.kill()
        proc.communicate(timeout=10)


def live_qemu(machine: str, tmp: Path) -> dict[str, Any]:
    argv = [
        qemu_binary(),
        "-nodefaults",
        "-display",
        "none",
        "-S",
        "-m",
        "64",
        "-machine",
        machine,
        "-accel",
        "tcg",
    ]
    if machine != "none":
        # -machine none with -cpu aborts QEMU 7.2 ("apic-id property was not
        # initialized properly"): it has no board to give the CPU an APIC ID.
        argv += ["-cpu", "max"]
    return asyncio.run(_qmp_session(argv, tmp / "qmp.sock", machine))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One QEMU per machine type, queried and already gone when the tests look at it."""
    tmp = tmp_path_factory.mktemp("qmp")
    return {m: live_qemu(m, tmp) for m in ("none", "pc-q35-7.2")}


@pytest.mark.parametrize("machine", ["none", "pc-q35-7.2"])
def test_live_expansions_classify(live: dict[str, dict[str, Any]], machine: str) -> None:
    static, full = live[machine]["static"], live[machine]["full"]
    check_static(static, f"{machine} static")
    check_full(full, frozenset(static), f"{machine} full")
    # A full expansion names every feature of the static one (plus aliases).
    assert {F.canonical(k) for k in full if F.is_feature(k)} == {
        k for k, v in static.items() if isinstance(v, bool)
    }


def test_live_feature_words_decode(live: dict[str, dict[str, Any]]) -> None:
    data = live["pc-q35-7.2"]
    static = data["static"]
    enabled = {k for k, v in static.items() if v is True}
    decoded: set[str] = set()
    problems = []
    for word in data["feature-words"]:
        leaf, subleaf = word["cpuid-input-eax"], word.get("cpuid-input-ecx", 0)
        reg = word["cpuid-register"].lower()
        if (leaf, subleaf, reg) in NON_FEATURE_WORDS:
            assert not F.is_feature_word(leaf, subleaf, reg)
            continue
        if not F.is_feature_word(leaf, subleaf, reg):
            problems.append(f"unknown feature word {leaf:#x}.{subleaf} {reg}")
            continue
        for name in F.names_for(leaf, subleaf, reg, word["features"]):
            if name not in enabled:
                problems.append(f"{name} ({leaf:#x}.{subleaf} {reg}) set but not on in max")
            decoded.add(name)
    # And the other way: every CPUID feature max has on is set in its words,
    # at the position the table gives, except the ones the OS sets (none here).
    missing = {n for n in enabled if n in F.CPUID_FEATURES} - decoded - F.OS_CONTROLLED
    if missing:
        problems.append(f"on in max but not in feature-words: {sorted(missing)}")
    assert not problems, "\n".join(problems)
    assert len(decoded) > 50
