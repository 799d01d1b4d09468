"""The exports through the stacks that consume them: a real libvirtd and Nova's own code start guests.

Marked ``consumers`` (heavy: a private libvirtd, Nova in .venv-nova); the
test command (``scripts/test.sh``) runs them like everything else, and
``pytest -m "not consumers"`` leaves them out locally.

* **libvirtd** (Debian's 9.0 daemon and QEMU driver, private, see
  ``tests/support/libvirtd.py``) starts each guest transient and paused;
  its vCPU is read through ``virsh qemu-monitor-command`` (``qom-get``
  ``feature-words``, ``filtered-features``) and compared with a reference:
  QEMU started directly with the pool's custom string, under the same
  accelerator and machine type, since both are filtered alike.
  - this host's pool (a live probe through the CLI, KVM and its TCG twin):
    the ``<cpu>`` as exported (``check='full'``) and with ``check`` removed,
    as Nova and KubeVirt write it: the guest has exactly the reference's
    features;
  - replayed pools (``tests/test_export.py``'s ``rich``, ``amd``, ``newer``):
    under TCG (``type='qemu'``) without ``check`` (TCG filters what
    ``check='full'`` would then refuse), in libvirt's form and in KubeVirt's
    (model and features only): the guest has no feature the reference lacks.
    The comparison can fail: with the disables removed the EPYC pool's
    guest gets QEMU's own EPYC features (defect 1 as it was).
* ``virsh hypervisor-cpu-compare --error``: its exit code, 0 for this
  host's export, non-zero for a pool this host cannot run.
* **Nova** 34.0.0 (its own venv, ``scripts/nova-venv.sh``): the ``nova``
  export is loaded through Nova's option definitions and Nova's
  ``LibvirtDriver._get_guest_cpu_model_config``, connected to the private
  libvirtd, builds the ``<cpu>``; that element is started (Nova's own
  domain XML needs an instance and its database: the rest of the domain is
  the suite's minimal one).
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.export import RenderOptions, render
from fleetcpu.libvirt import SYSTEM_CPU_MAP, load_cpu_map
from fleetcpu.probe.features import KVM_PV, cpuid_bit

from .conftest import REPO
from .support import libvirtd as lvd
from .support.liveqemu import paused as qemu
from .support.qemuguard import GUEST_PREFIX
from .test_export import kubevirt_cpu, pools
from .test_export_live import Live, live  # noqa: F401 - the live-probe pool fixture

pytestmark = pytest.mark.consumers

#: The machine type every replayed pool's guest gets: this QEMU's (the captures' is fictional).
MACHINE = "pc-q35-7.2"
REPLAYED = ("rich", "amd", "newer")
Words = dict[tuple[int, int | None, str], int]


@pytest.fixture(scope="module")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lvd.Libvirtd]:
    why = lvd.available()
    if why:
        pytest.fail(why)
    with lvd.running(tmp_path_factory.mktemp("lvd")) as daemon:
        yield daemon


def words(reply: list[dict[str, Any]]) -> Words:
    return {
        (w["cpuid-input-eax"], w.get("cpuid-input-ecx"), w["cpuid-register"]): w["features"] for w in reply
    }


def extra_bits(guest: Words, reference: Words) -> dict[tuple[int, int | None, str], int]:
    """Bits the guest has that the reference lacks (empty: nothing the pool lacks)."""
    return {k: v & ~reference.get(k, 0) for k, v in guest.items() if v & ~reference.get(k, 0)}


PV_LEAF = 0x40000001


def non_pv(w: Words) -> Words:
    return {k: v for k, v in w.items() if k[0] != PV_LEAF}


def domain(name: str, virt_type: str, machine: str, cpu_xml: str, emulator: str) -> str:
    return (
        f"<domain type='{virt_type}'><name>{name}</name><memory unit='MiB'>64</memory>"
        f"<vcpu>1</vcpu><os><type arch='x86_64' machine='{machine}'>hvm</type></os>"
        f"{cpu_xml}<devices><emulator>{emulator}</emulator></devices></domain>"
    )


_COUNT = iter(range(10**6))


@contextmanager
def guest(
    d: lvd.Libvirtd, tmp: Path, virt_type: str, machine: str, cpu_xml: str, emulator: str
) -> Iterator[dict[str, Any]]:
    """A transient paused guest; yields its vCPU's feature words, filtered features, vendor."""
    name = f"{GUEST_PREFIX}{next(_COUNT)}"
    path = tmp / f"{name}.xml"
    path.write_text(domain(name, virt_type, machine, cpu_xml, emulator))
    res = d.virsh("create", "--paused", str(path))
    assert res.returncode == 0, f"libvirtd refused the guest: {res.stderr}"
    try:

        def qmp(execute: str, **arguments: str) -> Any:
            cmd = json.dumps(
                {"execute": execute, "arguments": arguments} if arguments else {"execute": execute}
            )
            out = d.virsh("qemu-monitor-command", name, cmd)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)["return"]

        cpu = qmp("query-cpus-fast")[0]["qom-path"]
        yield {
            p: qmp("qom-get", path=cpu, property=p)
            for p in ("feature-words", "filtered-features", "vendor", "phys-bits")
        }
    finally:
        d.virsh("destroy", name)


@cache
def known_properties(binary: str) -> frozenset[str]:
    """Every property this QEMU's x86 CPUs have (feature names among them)."""
    with qemu(binary, MACHINE, "tcg", ["-cpu", "base"]) as conn:
        props = conn.command("device-list-properties", {"typename": "base-x86_64-cpu"})
    return frozenset(p["name"] for p in props["return"])


def reference(binary: str, machine: str, accel: str, custom: str) -> dict[str, Any]:
    """QEMU started directly with the pool's custom string (no enforce: filtered alike).

    A feature this QEMU does not know (a pool on a newer QEMU) is left out:
    QEMU refuses an unknown property, and cannot give that feature anyway.
    """
    known = known_properties(binary)
    custom = ",".join(item for item in custom.split(",") if not item.startswith("+") or item[1:] in known)
    with qemu(binary, machine, accel, ["-cpu", custom]) as conn:
        path = conn.command("query-cpus-fast")["return"][0]["qom-path"]
        return {
            p: conn.command("qom-get", {"path": path, "property": p})["return"]
            for p in ("feature-words", "filtered-features", "vendor", "phys-bits")
        }


def without_check(cpu_xml: str) -> str:
    assert " check='full'" in cpu_xml
    return cpu_xml.replace(" check='full'", "", 1)


def kubevirt_form(yaml_text: str) -> str:
    """The <cpu> KubeVirt's converter writes from spec.domain.cpu: model and features only
    (no check, vendor or phys-bits: KubeVirt has no fields for them)."""
    cpu = kubevirt_cpu(yaml_text)
    feats = "".join(f"<feature policy='{f['policy']}' name='{f['name']}'/>" for f in cpu.get("features", []))
    return f"<cpu mode='custom' match='exact'><model>{cpu['model']}</model>{feats}</cpu>"


# --------------------------------------------------------------------------- this host's pool


def test_local_pool_guest_is_exactly_the_pool_cpu(
    live: Live,  # noqa: F811
    libvirtd: lvd.Libvirtd,
    qemu_bin: str,
) -> None:
    """check='full' as exported, and without check as Nova/KubeVirt write it: the same CPU."""
    b = live.baseline
    machine, virt_type = b["machine_type"], ("kvm" if live.accel == "kvm" else "qemu")
    ref = reference(qemu_bin, machine, live.accel, b["custom"] + ",enforce")
    xml = live.export("libvirt")
    for form in (xml, without_check(xml)):
        with guest(libvirtd, live.tmp, virt_type, machine, form, qemu_bin) as got:
            assert non_pv(words(got["feature-words"])) == non_pv(words(ref["feature-words"]))
            # KVM's paravirtual leaf: libvirt decides it outside <cpu> (test_kvm_pv_*).
            assert not extra_bits(words(got["feature-words"]), words(ref["feature-words"]))
            assert not any(w["features"] for w in got["filtered-features"])
            assert (got["vendor"], got["phys-bits"]) == (b["vendor"], b["scalars"]["phys_bits"])


def test_hypervisor_cpu_compare_gives_the_exit_code(
    live: Live,  # noqa: F811
    libvirtd: lvd.Libvirtd,
    qemu_bin: str,
) -> None:
    virt_type = "kvm" if live.accel == "kvm" else "qemu"
    args = [
        "--virttype",
        virt_type,
        "--emulator",
        qemu_bin,
        "--arch",
        "x86_64",
        "--machine",
        live.baseline["machine_type"],
        "--error",
    ]
    ours = live.tmp / "compare-local.xml"
    ours.write_text(live.export("libvirt"))
    res = libvirtd.virsh("hypervisor-cpu-compare", str(ours), *args)
    assert res.returncode == 0, res.stderr
    assert "identical" in res.stdout or "superset" in res.stdout
    # A pool this host cannot run: AVX-512 Xeons. --error makes it the exit code.
    rich = live.tmp / "compare-rich.xml"
    rich.write_text(render(pools()["rich"], "libvirt", RenderOptions(system_map())).stdout)
    res = libvirtd.virsh("hypervisor-cpu-compare", str(rich), *args)
    assert res.returncode == 1 and "incompatible" in res.stderr.lower(), (res.stdout, res.stderr)


# --------------------------------------------------------------------------- replayed pools


def system_map() -> Any:
    return load_cpu_map(SYSTEM_CPU_MAP)


@pytest.mark.parametrize("pool", REPLAYED)
def test_replayed_pool_guest_gets_nothing_the_pool_lacks(
    pool: str, libvirtd: lvd.Libvirtd, qemu_bin: str, tmp_path: Path
) -> None:
    b = pools()[pool]
    options = RenderOptions(system_map())
    ref = reference(qemu_bin, MACHINE, "tcg", b.custom)
    forms = {
        "libvirt": without_check(render(b, "libvirt", options).stdout),
        "kubevirt": kubevirt_form(render(b, "kubevirt", options).stdout),
    }
    for form, xml in forms.items():
        with guest(libvirtd, tmp_path, "qemu", MACHINE, xml, qemu_bin) as got:
            extra = extra_bits(words(got["feature-words"]), words(ref["feature-words"]))
            assert not extra, f"{pool} ({form}): the guest has bits the pool lacks: {extra}"
            if form == "libvirt":
                assert got["vendor"] == b.vendor


def test_the_comparison_sees_a_widened_guest(libvirtd: lvd.Libvirtd, qemu_bin: str, tmp_path: Path) -> None:
    """Defect 1 as it was: without the disables, QEMU's EPYC adds what the EPYC pool lacks."""
    b = pools()["amd"]
    xml = without_check(render(b, "libvirt", RenderOptions(system_map())).stdout)
    widened = re.sub(r"\s*<feature policy='disable'[^>]*/>", "", xml)
    ref = reference(qemu_bin, MACHINE, "tcg", b.custom)
    with guest(libvirtd, tmp_path, "qemu", MACHINE, widened, qemu_bin) as got:
        assert extra_bits(words(got["feature-words"]), words(ref["feature-words"]))


# --------------------------------------------------------------------------- Nova


@pytest.fixture(scope="module")
def nova_python() -> str:
    """.venv-nova's interpreter (made, or checked current, by scripts/nova-venv.sh)."""
    res = subprocess.run(
        [str(REPO / "scripts" / "nova-venv.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    assert res.returncode == 0, f"scripts/nova-venv.sh failed: {res.stderr}"
    return str(REPO / ".venv-nova" / "bin" / "python")


def nova_cpus(python: str, uri: str, virt_type: str, confs: list[Path]) -> dict[str, str]:
    res = subprocess.run(
        [python, str(REPO / "tests" / "nova" / "nova_cpu.py"), uri, virt_type, *map(str, confs)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, f"Nova refused the export: {res.stderr[-3000:]}"
    out: dict[str, str] = json.loads(res.stdout)
    return out


def nova_features(xml: str) -> dict[str, str]:
    return {f.get("name", ""): f.get("policy", "") for f in ET.fromstring(xml).iter("feature")}


def test_nova_builds_the_pool_cpu(
    live: Live,  # noqa: F811
    libvirtd: lvd.Libvirtd,
    nova_python: str,
    qemu_bin: str,
    tmp_path: Path,
) -> None:
    """Nova's own option definitions and LibvirtDriver turn the export into the guest's <cpu>."""
    virt_type = "kvm" if live.accel == "kvm" else "qemu"
    confs = {"local": tmp_path / "local.conf"}
    confs["local"].write_text(live.export("nova"))
    for pool in REPLAYED:
        confs[pool] = tmp_path / f"{pool}.conf"
        confs[pool].write_text(render(pools()[pool], "nova", RenderOptions(system_map())).stdout)
    built = nova_cpus(nova_python, libvirtd.uri, virt_type, list(confs.values()))
    b = live.baseline
    local_xml = built[str(confs["local"])]
    ours = live.export("libvirt")
    # Nova wrote the features fleetcpu's <cpu> holds, and no check (so the disables matter).
    assert nova_features(local_xml) == nova_features(ours)
    assert "check=" not in local_xml
    ref = reference(qemu_bin, b["machine_type"], live.accel, b["custom"] + ",enforce")
    with guest(libvirtd, tmp_path, virt_type, b["machine_type"], local_xml, qemu_bin) as got:
        if live.accel == "kvm":  # KVM gives the guest the host's vendor, the pool's
            assert non_pv(words(got["feature-words"])) == non_pv(words(ref["feature-words"]))
            assert not extra_bits(words(got["feature-words"]), words(ref["feature-words"]))
            assert got["vendor"] == b["vendor"]
        else:  # TCG keeps the model's vendor (Nova cannot set it), and AMD's alias bits differ
            assert not extra_bits(words(got["feature-words"]), words(ref["feature-words"]))
    if live.accel != "tcg":
        return
    for pool in REPLAYED:  # under TCG (the twin): Nova's <cpu> for the replayed pools
        ref = reference(qemu_bin, MACHINE, "tcg", pools()[pool].custom)
        with guest(libvirtd, tmp_path, "qemu", MACHINE, built[str(confs[pool])], qemu_bin) as got:
            extra = extra_bits(words(got["feature-words"]), words(ref["feature-words"]))
            assert not extra, f"{pool} (Nova): the guest has bits the pool lacks: {extra}"


# --------------------------------------------------------------------------- KVM PV (defect 2)


def pv_features(w: Words) -> set[str]:
    """The KVM paravirtual features the guest's CPUID 0x40000001 says it has."""
    out = set()
    for name in KVM_PV:
        bit = cpuid_bit(name)
        if bit is not None and w.get((bit[0], None, bit[2].upper()), 0) >> bit[3] & 1:
            out.add(name)
    return out


def pv_claims(xml: str) -> tuple[set[str], list[str], set[str]]:
    """(what the export says the guest gets, the knobs it offers with the features they
    add, what it says the guest lacks), read from its comments."""

    def listed(prefix: str) -> set[str]:
        m = re.search(re.escape(prefix) + r"[^:]*: (.*?) -->", xml)
        return set(m.group(1).split(", ")) if m else set()

    knobs = re.search(r"set them in the domain: (.*?) -->", xml)
    return (listed("the guest gets"), knobs.group(1).split("; ") if knobs else [], listed("the guest lacks"))


def test_kvm_pv_advice_is_what_the_guest_gets(
    live: Live,  # noqa: F811
    libvirtd: lvd.Libvirtd,
    qemu_bin: str,
) -> None:
    """Defect 2: CPUID 0x40000001 of the guest libvirt starts, with and without every knob
    the export offers, is exactly what the export says; every knob changes the guest."""
    if live.accel != "kvm":
        pytest.skip("KVM paravirtual features exist under KVM only (the TCG twin has none)")
    b = live.baseline
    xml = live.export("libvirt")
    gets, knobs, lacks = pv_claims(xml)
    wanted = {f for f in b["features"] if f in KVM_PV}
    assert gets and knobs, "the export says what the guest gets and offers the knobs"
    with guest(libvirtd, live.tmp, "kvm", b["machine_type"], xml, qemu_bin) as got:
        plain = pv_features(words(got["feature-words"]))
    assert plain == gets
    by_knob = {}
    for knob in knobs:
        fragment, feature = re.fullmatch(r"(.*) \((\S+) on\)", knob).groups()  # type: ignore[union-attr]
        by_knob[feature] = fragment
    features = "".join(re.sub(r"</?features>", "", k) for k in by_knob.values() if k.startswith("<features>"))
    kvm = "".join(re.findall(r"<kvm>(.*?)</kvm>", features))
    features = re.sub(r"<kvm>.*?</kvm>", "", features) + (f"<kvm>{kvm}</kvm>" if kvm else "")
    clock = "".join(re.sub(r"</?clock>", "", k) for k in by_knob.values() if k.startswith("<clock>"))
    tuned = xml.replace("</cpu>", f"</cpu><features>{features}</features><clock offset='utc'>{clock}</clock>")
    with guest(libvirtd, live.tmp, "kvm", b["machine_type"], tuned, qemu_bin) as got:
        knobbed = pv_features(words(got["feature-words"]))
    assert knobbed == gets | set(by_knob)  # every knob offered works
    assert set(by_knob) <= wanted and not set(by_knob) & gets  # only knobs that add something
    assert lacks == wanted - knobbed  # and what stays missing is said


# --------------------------------------------------------------------------- Nova's advice (defect 3)

NOVA_ADVICE = """
import sys, warnings
warnings.simplefilter("ignore")
from nova.api.validation.extra_specs import validators
from nova.objects import fields, image_meta
props = dict(kv.split("=", 1) for kv in sys.argv[1:])
for key in props:
    assert key in image_meta.ImageMetaProps.fields, key
fields.MaxPhysAddrModeField().coerce(None, "hw_maxphysaddr_mode", props["hw_maxphysaddr_mode"])
int(props["hw_maxphysaddr_bits"])
try:
    validators.validate("hw:maxphysaddr_mode", "emulate")
except Exception as exc:
    print("refused:", exc)
"""


def test_nova_advice_is_what_nova_accepts(live: Live, nova_python: str) -> None:  # noqa: F811
    """Defect 3: the phys-bits advice names image properties Nova's own objects define (the
    flavor extra specs are refused by its validator), and no <features> knob Nova cannot write."""
    text = live.export("nova")
    m = re.search(
        r"set the image properties (hw_maxphysaddr_mode=\S+) and "
        r"(hw_maxphysaddr_bits=\d+)",
        text,
    )
    assert m, text
    res = subprocess.run(
        [nova_python, "-c", NOVA_ADVICE, *m.groups()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "refused: " in res.stdout and "does not appear to be a valid extra spec" in res.stdout
    assert "hw:maxphysaddr_mode=" not in text  # never offered as a setting
    assert "<features><" not in text and "<clock><" not in text
