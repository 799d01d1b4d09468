"""``--format kubevirt`` through KubeVirt's own rules: schema, obsolete models, node labels, PV.

KubeVirt does not run here, so its rules are restated from its code, each
with its source (``KUBEVIRT``; read from kubevirt/kubevirt at tag v1.9.0,
not copied), and its API from a schema fixture written from its published
OpenAPI document (``tests/kubevirt/virtualmachine-v1.9.0.schema.json``).
Where libvirt does KubeVirt's work, the real libvirt does it:

* every export, put into a ``VirtualMachine`` with the fields its PV advice
  names, validates against that schema; a misnamed field does not;
* the model is never one of ``DefaultObsoleteCPUModels`` when a model that
  is not fits (libvirt knows it, the pool's probes judged it usable on every
  member); otherwise the export says so and gives the ``obsoleteCPUModels``
  override, which the restated labeller then accepts;
* the PV advice names KubeVirt's real fields and says which libvirt knobs
  have no field;
* (``consumers``) this host's pool: the labels KubeVirt's node-labeller would
  publish for this host, computed as ``node-labeller.sh`` does (the real
  ``virsh domcapabilities`` piped into ``virsh hypervisor-cpu-baseline
  --features`` of the private libvirtd) and filtered by the restated
  labeller rules, include the model label the VM's pod requires; every
  required feature is labelled, or is one the host's own CPUID lacks (KVM
  offers it, libvirt's host-model leaves it out), as the export warns;
* (``consumers``, KVM) the libvirt XML KubeVirt's converter writes for the
  advised fields gives the guest exactly the KVM PV features the export says.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleetcpu.export import RenderOptions, render
from fleetcpu.libvirt.spell import qemu_view

from .conftest import REPO
from .support import libvirtd as lvd
from .test_export import ALL_POOLS, kubevirt_cpu, new_map, pools
from .test_export_consumers import guest, libvirtd, pv_features, words  # noqa: F401 - fixture
from .test_export_live import Live, live  # noqa: F401 - the live-probe pool fixture

#: Where the rules below were read.
KUBEVIRT = "KubeVirt v1.9.0 (github.com/kubevirt/kubevirt tag v1.9.0, 79d34c1, 2026-07-27)"
SCHEMA = json.loads((REPO / "tests" / "kubevirt" / "virtualmachine-v1.9.0.schema.json").read_text())

#: KubeVirt's rules as the tests apply them: (what, source file:lines at v1.9.0).
RULES: dict[str, tuple[str, str]] = {
    "obsolete": (
        "a model is obsolete when it is a key of DefaultObsoleteCPUModels (its value "
        "is never read); the KubeVirt CR's spec.configuration.obsoleteCPUModels, when "
        "set, replaces that map",
        "pkg/virt-handler/node-labeller/util/util.go:29-64, cpu_plugin.go:45-57, "
        "pkg/virt-config/virt-config.go:451-454, node_labeller.go:244",
    ),
    "model-labels": (
        "cpu-model.node.kubevirt.io/<model>=true for every model of `virsh "
        "domcapabilities --machine q35 --arch x86_64 --virttype kvm|qemu` whose "
        "usable is not 'no', obsolete models left out",
        "cmd/virt-launcher/node-labeller/node-labeller.sh, cpu_plugin.go:83-141, "
        "node_labeller.go:255-257, staging/src/kubevirt.io/api/core/v1/types.go:1271",
    ),
    "feature-labels": (
        "cpu-feature.node.kubevirt.io/<name>=true for every feature with "
        "policy 'require' in `virsh hypervisor-cpu-baseline --features` of that "
        "domcapabilities output (libvirt's host-model, expanded)",
        "node-labeller.sh, cpu_plugin.go:143-160, arch_labeller.go:65-67, "
        "node_labeller.go:248-251, types.go:1269",
    ),
    "selectors": (
        "a VMI's pod requires cpu-model.node.kubevirt.io/<spec.domain.cpu.model> and "
        "cpu-feature.node.kubevirt.io/<name> for every feature whose policy is '' or "
        "'require'",
        "pkg/virt-controller/services/nodeselectorrenderer.go:179-201, template.go:808-813",
    ),
    "pv": (
        "features.pvspinlock -> <pvspinlock state='on|off'/>; clock.timer.kvm -> <timer "
        "name='kvmclock' present='yes|no'/>; features.apic -> <apic/> (endOfInterrupt is "
        "never read); features.kvm -> <kvm><hidden/></kvm> only",
        "pkg/virt-launcher/virtwrap/converter/compute/hypervisor_features.go:59-95, clock.go:85-89",
    ),
}

#: DefaultObsoleteCPUModels, pkg/virt-handler/node-labeller/util/util.go:29-64 at v1.9.0.
DEFAULT_OBSOLETE = frozenset(
    name + suffix
    for name in (
        "486",
        "pentium",
        "pentium2",
        "pentium3",
        "pentiumpro",
        "coreduo",
        "n270",
        "core2duo",
        "Conroe",
        "athlon",
        "phenom",
        "qemu64",
        "qemu32",
        "kvm64",
        "kvm32",
        "Opteron_G1",
        "Opteron_G2",
    )
    for suffix in ("", "-v1")
)
MODEL_LABEL = "cpu-model.node.kubevirt.io/"
FEATURE_LABEL = "cpu-feature.node.kubevirt.io/"


def filter_models(models: list[str], obsolete: dict[str, bool] | None) -> list[str]:
    """cpu_plugin.go filterCpuModels: the default map when none is configured; presence counts."""
    table = set(DEFAULT_OBSOLETE) if obsolete is None else set(obsolete)
    return [m for m in models if m not in table]


def override(text: str) -> dict[str, bool] | None:
    """The obsoleteCPUModels map the export's comments give, or None."""
    lines = text.splitlines()
    if "#       obsoleteCPUModels:" not in lines:
        return None
    start = lines.index("#       obsoleteCPUModels:") + 1
    out = {}
    for line in lines[start:]:
        m = re.fullmatch(r'#         "([^"]+)": true', line)
        if not m:
            break
        out[m.group(1)] = True
    return out


def advised_fields(text: str) -> dict[str, bool]:
    """``spec.domain....: true|false`` the export tells the operator to set."""
    m = re.search(r"^# set in the VirtualMachineInstance: (.*)$", text, re.M)
    if not m:
        return {}
    out = {}
    for item in m.group(1).split("; "):
        path, value = re.fullmatch(r"(spec\.domain\.\S+): (true|false) \(.*\)", item).groups()  # type: ignore[union-attr]
        out[path] = value == "true"
    return out


def virtual_machine(text: str) -> dict[str, Any]:
    """The export's cpu block and advised fields in a VirtualMachine (spec.template.spec)."""
    domain: dict[str, Any] = {"cpu": kubevirt_cpu(text), "devices": {}}
    for path, value in advised_fields(text).items():
        keys = path.split(".")[2:]  # after spec.domain
        node = domain
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "fleetcpu"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": domain}}},
    }


def fitting_models(pool: str) -> tuple[set[str], set[str]]:
    """(models libvirt knows that the pool's probes judged usable on every member, those of
    them KubeVirt does not call obsolete)."""
    b = pools()[pool]
    usable = {m for m in new_map().models if qemu_view(b, m) is not None}
    return usable, usable - DEFAULT_OBSOLETE


@pytest.mark.parametrize("pool", ALL_POOLS)
def test_the_vm_validates_against_kubevirts_schema(pool: str) -> None:
    vm = virtual_machine(render(pools()[pool], "kubevirt", RenderOptions(new_map())).stdout)
    jsonschema.validate(vm, SCHEMA)
    # The check can fail: libvirt's spelling of the same knob is no KubeVirt field.
    vm["spec"]["template"]["spec"]["domain"]["features"] = {"pvspinlock": {"state": "on"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(vm, SCHEMA)


def test_no_obsolete_model_when_one_fits() -> None:
    wrong = {}
    for pool in ALL_POOLS:
        text = render(pools()[pool], "kubevirt", RenderOptions(new_map())).stdout
        model = kubevirt_cpu(text)["model"]
        usable, fits = fitting_models(pool)
        if fits:
            ok = model in fits
        elif usable:  # only obsolete ones: said so, with the override that lets it be labelled
            given = override(text)
            ok = (
                model in usable
                and model in DEFAULT_OBSOLETE
                and "DefaultObsoleteCPUModels" in text
                and given is not None
                and filter_models([model], given) == [model]
                and set(given) == DEFAULT_OBSOLETE - {model}
            )
        else:  # none judged usable: the label may be missing everywhere, and that is said
            ok = "usable on every member" in text and f"{MODEL_LABEL}{model}" in text
        if not ok:
            wrong[pool] = (model, sorted(fits)[:5])
    assert not wrong


def test_pv_advice_names_kubevirts_fields_and_what_has_none() -> None:
    text = render(pools()["local"], "kubevirt", RenderOptions(new_map())).stdout
    fields = advised_fields(text)
    assert fields  # the pool wants kvm-pv-unhalt: features.pvspinlock
    assert set(fields) <= {"spec.domain.features.pvspinlock.enabled", "spec.domain.clock.timer.kvm.present"}
    # endOfInterrupt exists in the API, but the converter never reads it: not offered as a knob
    assert "endOfInterrupt" not in " ".join(fields)
    assert re.search(r"features\.apic\.endOfInterrupt[^\n]*(never read|no effect)", text)
    # libvirt's knobs KubeVirt has no field for are named
    nofield = re.search(r"^# no KubeVirt field for (.*)$", text, re.M)
    assert nofield and "<poll-control" in nofield.group(1), text


# --------------------------------------------------------------------------- real libvirt


def labels_of_this_host(daemon: lvd.Libvirtd, virt_type: str, obsolete: dict[str, bool] | None) -> set[str]:
    """RULES["model-labels"] and ["feature-labels"], on node-labeller.sh's own virsh output."""
    args = ["--machine", "q35", "--arch", "x86_64", "--virttype", virt_type]
    caps = daemon.virsh("domcapabilities", *args)
    assert caps.returncode == 0, caps.stderr
    baseline = subprocess.run(
        ["virsh", "-q", "-c", daemon.uri, "hypervisor-cpu-baseline", "--features", "/dev/stdin", *args],
        input=caps.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert baseline.returncode == 0, baseline.stderr
    models = [
        m.group(2).strip()
        for m in re.finditer(r"<model usable='(\w+)'[^>]*>([^<]+)</model>", caps.stdout)
        if m.group(1) != "no"
    ]
    features = re.findall(r"<feature policy='require' name='([^']+)'/>", baseline.stdout)
    return {MODEL_LABEL + m for m in filter_models(models, obsolete)} | {FEATURE_LABEL + f for f in features}


def cpuinfo_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.consumers
def test_the_node_labeller_would_schedule_this_hosts_pool(
    live: Live,  # noqa: F811
    libvirtd: lvd.Libvirtd,  # noqa: F811
) -> None:
    text = live.export("kubevirt")
    cpu = kubevirt_cpu(text)
    virt_type = "kvm" if live.accel == "kvm" else "qemu"
    labels = labels_of_this_host(libvirtd, virt_type, override(text))
    assert MODEL_LABEL + cpu["model"] in labels, sorted(labels)
    assert MODEL_LABEL + cpu["model"] in text  # the export names the selector
    required = {f["name"] for f in cpu.get("features", []) if f["policy"] == "require"}
    unlabelled = {f for f in required if FEATURE_LABEL + f not in labels}
    host = {f.replace("_", "-").replace(".", "-") for f in cpuinfo_flags()}
    # libvirt's host-model leaves out what KVM offers beyond the host's own CPUID: said, generally
    assert not {f for f in unlabelled if f.replace("_", "-").replace(".", "-") in host}
    if unlabelled:
        assert "host-model" in text and FEATURE_LABEL in text


@pytest.mark.consumers
def test_kubevirt_pv_fields_give_what_the_export_says(
    live: Live,  # noqa: F811
    libvirtd: lvd.Libvirtd,  # noqa: F811
    qemu_bin: str,
) -> None:
    """RULES["pv"]: the XML KubeVirt's converter writes for the advised fields, started."""
    if live.accel != "kvm":
        pytest.skip("KVM paravirtual features exist under KVM only (the TCG twin has none)")
    text = live.export("kubevirt")
    cpu = kubevirt_cpu(text)
    feats = "".join(f"<feature policy='{f['policy']}' name='{f['name']}'/>" for f in cpu.get("features", []))
    fields = advised_fields(text)
    dom_features = "".join(
        f"<pvspinlock state='{'on' if on else 'off'}'/>"
        for p, on in fields.items()
        if p == "spec.domain.features.pvspinlock.enabled"
    )
    timers = "".join(
        f"<timer name='kvmclock' present='{'yes' if on else 'no'}'/>"
        for p, on in fields.items()
        if p == "spec.domain.clock.timer.kvm.present"
    )
    xml = (
        f"<cpu mode='custom' match='exact'><model>{cpu['model']}</model>{feats}</cpu>"
        f"<features>{dom_features}</features><clock offset='utc'>{timers}</clock>"
    )
    b = live.baseline
    with guest(libvirtd, live.tmp, "kvm", b["machine_type"], xml, qemu_bin) as got:
        have = pv_features(words(got["feature-words"]))
    gets = set(re.search(r"QEMU's KVM defaults for the named model: (.*)$", text, re.M).group(1).split(", "))  # type: ignore[union-attr]
    on = {
        "spec.domain.features.pvspinlock.enabled": "kvm-pv-unhalt",
        "spec.domain.clock.timer.kvm.present": "kvmclock",
    }
    assert have == gets | {on[p] for p, v in fields.items() if v}
    assert not have - set(b["features"])  # nothing the pool lacks
