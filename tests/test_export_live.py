"""The exports against their real consumers on this host: QEMU 7.2 and libvirt's virsh 9.0.

A one-host pool is built from a live probe of this machine (``fleetcpu
probe`` -> ``fleetcpu import``), under KVM and, as the twin, under TCG, and
every export is produced by the real CLI in a subprocess. Then:

* ``readconfig``: QEMU starts with ``-cpu base,enforce -readconfig FILE`` and
  with the custom string plus ``,enforce``; both vCPUs (paused, read over
  QMP with ``qom-get``) must have identical ``feature-words`` and scalars. A
  file with one section removed must *not* match (the comparison can fail).
* ``proxmox``: in ``tests/test_export_proxmox.py`` (Proxmox's rules restated).
* ``libvirt``: ``virsh -c test:///default`` (no daemon) defines a domain with
  the ``<cpu>`` element and the KVM knobs our comments suggest, and gives
  back exactly that CPU; ``cpu-baseline`` resolves every model and feature
  name through the system cpu_map and expands the model to exactly the
  features we computed; an invented name is refused (the check can fail).
  The newer cpu_map of ``../shared/realdata`` is checked the same way, made
  readable for libvirt 9.0 (which predates grouped index files) by
  flattening its index in a copy that a private mount namespace puts in
  place of the system's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.libvirt import SYSTEM_CPU_MAP, load_cpu_map
from fleetcpu.probe.qmp_decode import decode_feature_words

from .conftest import REALDATA, invoke, kvm_usable
from .support.liveqemu import paused as qemu
from .test_export import libvirt_cpu, readconfig_sections

VCPU = (
    "feature-words",
    "filtered-features",
    "vendor",
    "family",
    "model",
    "stepping",
    "level",
    "xlevel",
    "phys-bits",
    "model-id",
)
NEW_MAP = REALDATA / "libvirt" / "cpu_map"


@dataclass
class Live:
    accel: str
    store: str
    tmp: Path
    baseline: dict[str, Any]

    def export(self, fmt: str, *args: str) -> str:
        res = invoke(
            "baseline",
            "--store",
            self.store,
            "--pool",
            "local",
            "--accel",
            self.accel,
            "--format",
            fmt,
            *args,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout


@pytest.fixture(scope="module", params=[pytest.param("kvm", marks=pytest.mark.kvm), "tcg"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Live:
    accel = str(request.param)
    if accel == "kvm" and not kvm_usable():
        pytest.skip("no usable /dev/kvm here; the tcg twin still runs")
    tmp = tmp_path_factory.mktemp(f"live-{accel}")
    env = {"TMPDIR": str(tmp)}
    probe = invoke("probe", "--accel", accel, env=env)
    assert probe.returncode == 0, probe.stderr
    (tmp / "this-host.json").write_text(probe.stdout)
    store = str(tmp / "store")
    imported = invoke(
        "import",
        "--store",
        store,
        "--pool",
        "local",
        "--host",
        "this-host",
        str(tmp / "this-host.json"),
        env=env,
    )
    assert imported.returncode == 0, imported.stderr
    doc = invoke("baseline", "--store", store, "--pool", "local", "--accel", accel, "--format", "json")
    assert doc.returncode == 0, doc.stderr
    return Live(accel, store, tmp, json.loads(doc.stdout))


# --------------------------------------------------------------------------- QEMU


def vcpu(binary: str, machine: str, accel: str, cpu_args: list[str]) -> dict[str, Any]:
    with qemu(binary, machine, accel, cpu_args) as conn:
        path = conn.command("query-cpus-fast")["return"][0]["qom-path"]
        return {p: conn.command("qom-get", {"path": path, "property": p})["return"] for p in VCPU}


def nothing_filtered(got: dict[str, Any]) -> bool:
    return not [w for w in decode_feature_words(got["filtered-features"], "filtered-features") if w.bits]


def test_readconfig_gives_the_custom_cpu(live: Live, qemu_bin: str) -> None:
    b = live.baseline
    text = live.export("readconfig")
    cfg = live.tmp / "pool.cfg"
    cfg.write_text(text)
    machine = b["machine_type"]
    custom = vcpu(qemu_bin, machine, live.accel, ["-cpu", b["custom"] + ",enforce"])
    readconfig = vcpu(qemu_bin, machine, live.accel, ["-cpu", "base,enforce", "-readconfig", str(cfg)])
    assert readconfig == custom  # feature-words, filtered-features and every scalar
    assert nothing_filtered(readconfig)
    assert readconfig["vendor"] == b["vendor"] and readconfig["phys-bits"] == b["scalars"]["phys_bits"]

    # The comparison can fail: without the last feature's section the vCPU differs.
    sections = text.rstrip("\n").split("\n\n")
    assert readconfig_sections(sections[-1])[0]["value"] == "on"
    short = live.tmp / "short.cfg"
    short.write_text("\n\n".join(sections[:-1]) + "\n")
    fewer = vcpu(qemu_bin, machine, live.accel, ["-cpu", "base,enforce", "-readconfig", str(short)])
    assert fewer["feature-words"] != custom["feature-words"]


# --------------------------------------------------------------------------- virsh


def virsh(*commands: str, mount: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``virsh -c test:///default "cmd; cmd"``; with ``mount``, that cpu_map replaces the system's
    in a private mount namespace (nothing outside this process sees it)."""
    argv = ["virsh", "-q", "-c", "test:///default", "; ".join(commands)]
    if mount is not None:
        script = f'mount --bind {mount} {SYSTEM_CPU_MAP} && exec "$@"'
        argv = ["unshare", "-rm", "sh", "-c", script, "sh", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def need_virsh() -> None:
    if shutil.which("virsh") is None:
        pytest.fail("virsh missing: install libvirt-clients (the README's test command does)")


def knobs(xml: str) -> list[str]:
    """The domain XML fragments our comments suggest for KVM paravirtual features."""
    m = re.search(r"set them in the domain: (.*?) -->", xml)
    return re.findall(r"(<(?:features|clock)>.*?</(?:features|clock)>)", m.group(1)) if m else []


def domain(cpu_xml: str, extra: list[str]) -> str:
    """A minimal test-driver domain holding our <cpu> and the suggested knobs, merged."""
    features = "".join(re.sub(r"</?features>", "", k) for k in extra if k.startswith("<features>"))
    kvm = "".join(re.findall(r"<kvm>(.*?)</kvm>", features))
    features = re.sub(r"<kvm>.*?</kvm>", "", features) + (f"<kvm>{kvm}</kvm>" if kvm else "")
    clock = "".join(re.sub(r"</?clock>", "", k) for k in extra if k.startswith("<clock>"))
    return (
        "<domain type='test'><name>fleetcpu</name><memory>65536</memory>"
        "<os><type arch='x86_64'>hvm</type></os>"
        + (f"<features>{features}</features>" if features else "")
        + cpu_xml
        + (f"<clock offset='utc'>{clock}</clock>" if clock else "")
        + "</domain>"
    )


def host_form(cpu_xml: str) -> str:
    """The same <cpu> as cpu-baseline takes it: no guest-only attributes, an <arch>."""
    return cpu_xml.replace(" mode='custom' match='exact' check='full'>", ">\n  <arch>x86_64</arch>", 1)


def test_libvirt_accepts_the_xml_and_its_knobs(live: Live, need_virsh: None) -> None:
    xml = live.export("libvirt")
    model, attrs, features = libvirt_cpu(xml)
    path = live.tmp / "domain.xml"
    extra = knobs(xml)
    if live.accel == "kvm":
        assert extra, "the KVM pool has paravirtual features with libvirt knobs"
    path.write_text(domain(xml, extra))
    res = virsh(f"define {path}", "dumpxml fleetcpu")
    assert res.returncode == 0, res.stderr
    dumped = ET.fromstring(res.stdout[res.stdout.index("<domain") :])
    cpu = dumped.find("cpu")
    assert cpu is not None
    back = ET.tostring(cpu, encoding="unicode")
    assert libvirt_cpu(back) == (model, attrs, features)  # libvirt kept every bit of it
    phys = cpu.find("maxphysaddr")
    assert phys is not None and phys.attrib == {
        "mode": "emulate",
        "bits": str(live.baseline["scalars"]["phys_bits"]),
    }
    for fragment in extra:  # every knob we suggest is one libvirt 9.0 parses and keeps
        inner = ET.fromstring(fragment)
        leaf = next(iter(inner.iter())) if len(inner) == 0 else list(inner.iter())[-1]
        found = [e for e in dumped.iter(leaf.tag) if e.attrib == leaf.attrib]
        assert found, f"libvirt dropped {fragment}"


def check_names(xml: str, cpu_map_dir: Path, mount: Path | None, tmp: Path) -> None:
    """cpu-baseline resolves every name and expands the model as our reader does."""
    # A host CPU has no 'disable': the model and required features are expanded,
    # the disabled names are resolved as required ones of a second host CPU.
    form = tmp / "host-form.xml"
    form.write_text(host_form(re.sub(r"\s*<feature policy='disable'[^>]*/>", "", xml)))
    names = tmp / "disabled-names.xml"
    names.write_text(host_form(xml).replace("policy='disable'", "policy='require'"))
    res = virsh(f"cpu-baseline {names}", mount=mount)
    assert res.returncode == 0, res.stderr
    res = virsh(f"cpu-baseline --features {form}", mount=mount)
    assert res.returncode == 0, res.stderr
    # libvirt may re-express the CPU with another model plus disables: its *required* set counts.
    expanded = {
        f.get("name")
        for f in ET.fromstring(res.stdout).iter("feature")
        if f.get("policy", "require") == "require"
    }
    model, _, features = libvirt_cpu(xml)
    cpu_map = load_cpu_map(cpu_map_dir)
    required = {n for n, p in features.items() if p == "require"}
    assert expanded == cpu_map.models[model].features | required
    # The check can fail: an invented feature, an invented model.
    bad = tmp / "bad.xml"
    invented = "  <feature policy='require' name='fleetcpu-nope'/>\n</cpu>"
    bad.write_text(host_form(xml).replace("</cpu>", invented))
    res = virsh(f"cpu-baseline {bad}", mount=mount)
    assert res.returncode != 0 and "Unknown CPU feature fleetcpu-nope" in res.stderr
    bad.write_text(host_form(xml).replace(f">{model}</model>", ">fleetcpu-nope</model>"))
    res = virsh(f"cpu-baseline {bad}", mount=mount)
    assert res.returncode != 0 and "Unknown CPU model fleetcpu-nope" in res.stderr


def test_libvirt_names_resolve_through_the_system_cpu_map(live: Live, need_virsh: None) -> None:
    check_names(live.export("libvirt"), SYSTEM_CPU_MAP, None, live.tmp)


def flattened(src: Path, dst: Path) -> Path:
    """A copy of a grouped cpu_map whose index.xml lists the same includes without <group>."""
    shutil.copytree(src, dst)
    index = (dst / "index.xml").read_text()
    (dst / "index.xml").write_text(re.sub(r"\s*</?group[^>]*>", "", index))
    return dst


def test_libvirt_names_resolve_through_the_newer_cpu_map(live: Live, need_virsh: None) -> None:
    xml = live.export("libvirt", "--libvirt-cpu-map", str(NEW_MAP))
    assert f"<!-- libvirt cpu_map: {NEW_MAP} -->" in xml
    model, _, _ = libvirt_cpu(xml)
    assert re.search(r"-v\d+$", model), "the newer cpu_map has the versioned model"
    flat = flattened(NEW_MAP, live.tmp / f"cpu_map-{len(list(live.tmp.iterdir()))}")
    can = subprocess.run(
        ["unshare", "-rm", "mount", "--bind", str(flat), str(SYSTEM_CPU_MAP)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if can.returncode != 0:
        pytest.skip(f"no private mount namespace here: {can.stderr.strip()}")
    probe = virsh("cpu-models x86_64", mount=flat)
    assert probe.returncode == 0, probe.stderr
    assert model in probe.stdout.split()
    check_names(xml, NEW_MAP, flat, live.tmp)


def test_nova_and_kubevirt_follow_the_cpu_map_given(live: Live) -> None:
    """Same cpu_map, same model and names as the libvirt XML virsh accepted above."""
    for cpu_map in (None, str(NEW_MAP)):
        args = ("--libvirt-cpu-map", cpu_map) if cpu_map else ()
        model, _, features = libvirt_cpu(live.export("libvirt", *args))
        nova = live.export("nova", *args)
        assert f"cpu_models = {model}\n" in nova
        flags = nova.split("cpu_model_extra_flags = ")[1].strip().split(", ")
        assert {f[1:] for f in flags} == set(features)
        assert f'model: "{model}"' in live.export("kubevirt", *args)


def test_cpu_map_flag_errors(live: Live) -> None:
    res = invoke(
        "baseline",
        "--store",
        live.store,
        "--pool",
        "local",
        "--accel",
        live.accel,
        "--format",
        "libvirt",
        "--libvirt-cpu-map",
        str(live.tmp / "nope"),
    )
    assert (res.returncode, res.stdout) == (3, "")
    assert res.stderr.startswith("error: ") and "not a readable libvirt cpu_map" in res.stderr
    res = invoke(
        "baseline",
        "--store",
        live.store,
        "--pool",
        "local",
        "--accel",
        live.accel,
        "--format",
        "qemu",
        "--libvirt-cpu-map",
        str(NEW_MAP),
    )
    assert res.returncode == 2 and "--libvirt-cpu-map applies to --format" in res.stderr


def test_system_cpu_map_is_the_default(live: Live) -> None:
    assert f"<!-- libvirt cpu_map: {SYSTEM_CPU_MAP} -->" in live.export("libvirt")
    assert os.path.isdir(SYSTEM_CPU_MAP)
