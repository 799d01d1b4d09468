"""The 2015 self-test on this host's real QEMU: both strings start with ``enforce`` and agree.

A one-host pool is built from a real probe of this machine (``fleetcpu
probe`` -> ``fleetcpu import`` -> ``fleetcpu baseline --format json``), then
QEMU is started twice on the same machine type, once with the named string
and once with the custom string, each plus ``,enforce`` (so a feature the
host cannot give is a start failure, not a silent drop). Both vCPUs must
report identical ``feature-words``, filter nothing, and be exactly the
computed feature set; the custom vCPU must carry exactly the computed
scalars (an explicit level is final: QEMU must not have raised it).
Under KVM and, as the TCG twin, under TCG (a TCG pool).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema

from fleetcpu.baseline.cpuarg import MODEL_ID
from fleetcpu.probe.features import cpuid_bit
from fleetcpu.probe.qmp_decode import decode_feature_words, words_to_features

from .conftest import REPO, invoke
from .support.liveqemu import paused
from .support.replay.hosts import QmpConnection

SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "baseline-1.json").read_text())
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


@contextmanager
def qemu(binary: str, machine: str, accel: str, cpu: str) -> Iterator[QmpConnection]:
    with paused(binary, machine, accel, ["-cpu", cpu]) as conn:
        yield conn


def vcpu(binary: str, machine: str, accel: str, cpu: str) -> dict[str, Any]:
    with qemu(binary, machine, accel, cpu) as conn:
        path = conn.command("query-cpus-fast")["return"][0]["qom-path"]
        return {p: conn.command("qom-get", {"path": path, "property": p})["return"] for p in VCPU}


def pool_of_this_host(accel: str, tmp_path: Path, isolated_tmp: Path) -> dict[str, Any]:
    env = {"TMPDIR": str(isolated_tmp)}
    probe = invoke("probe", "--accel", accel, env=env)
    assert probe.returncode == 0, probe.stderr
    doc = tmp_path / "this-host.json"
    doc.write_text(probe.stdout)
    store = str(tmp_path / "store")
    imported = invoke("import", "--store", store, "--pool", "local", "--host", "this-host", str(doc), env=env)
    assert imported.returncode == 0, imported.stderr
    res = invoke(
        "baseline", "--store", store, "--pool", "local", "--accel", accel, "--format", "json", env=env
    )
    assert res.returncode == 0, res.stderr
    baseline: dict[str, Any] = json.loads(res.stdout)
    jsonschema.validate(baseline, SCHEMA)
    return baseline


def test_named_and_custom_strings_start_and_agree(
    accel: str, qemu_bin: str, tmp_path: Path, isolated_tmp: Path
) -> None:
    b = pool_of_this_host(accel, tmp_path, isolated_tmp)
    assert b["accel"] == accel and b["missing"] == []
    machine = b["machine_type"]
    named = vcpu(qemu_bin, machine, accel, b["cpu"] + ",enforce")
    custom = vcpu(qemu_bin, machine, accel, b["custom"] + ",enforce")

    # The 2015 self-test: the two spellings give the guest the same CPUID feature bits.
    assert named["feature-words"] == custom["feature-words"]
    for got in (named, custom):
        filtered = decode_feature_words(got["filtered-features"], "filtered-features")
        assert not [w for w in filtered if w.bits], "enforce would have refused to start"
        words = decode_feature_words(got["feature-words"])
        assert set(words_to_features(words)) == {f for f in b["features"] if cpuid_bit(f)}
        assert got["vendor"] == b["vendor"]

    # The custom vCPU is exactly the computed scalars: nothing implicit, nothing raised.
    s = b["scalars"]
    assert (custom["family"], custom["model"], custom["stepping"]) == (s["family"], s["model"], s["stepping"])
    assert (custom["level"], custom["xlevel"], custom["phys-bits"]) == (
        s["level"],
        s["xlevel"],
        s["phys_bits"],
    )
    assert custom["model-id"] == MODEL_ID


def test_this_hosts_answer_is_an_old_model_plus_features(
    accel: str, tmp_path: Path, isolated_tmp: Path
) -> None:
    """Documented in docs/baseline.md: the nested PVM KVM here hides SSE3 and later."""
    b = pool_of_this_host(accel, tmp_path, isolated_tmp)
    assert b["model"] != "base" and b["enable"]
    if accel == "kvm":
        assert b["model"] == "pentium3-v1" and "pni" not in b["features"]
        assert {"kvmclock", "kvm-pv-eoi"} <= set(b["features"])
    else:
        assert "pni" in b["features"] and not [f for f in b["features"] if f.startswith("kvm")]


def test_named_string_gives_the_pools_phys_bits(
    accel: str, qemu_bin: str, tmp_path: Path, isolated_tmp: Path
) -> None:
    """Issue 21 defect 6: every form gives the guest the smallest member's phys-bits.

    A named model pins none: unpinned, QEMU gives the guest its default (40), while
    the custom, libvirt and Proxmox forms pin the pool's (48 on this host under KVM;
    under TCG the pool's is TCG's 40, the default, so only the string shows it).
    """
    b = pool_of_this_host(accel, tmp_path, isolated_tmp)
    bits = b["scalars"]["phys_bits"]
    assert bits is not None
    named = vcpu(qemu_bin, b["machine_type"], accel, b["cpu"] + ",enforce")
    custom = vcpu(qemu_bin, b["machine_type"], accel, b["custom"] + ",enforce")
    assert named["phys-bits"] == custom["phys-bits"] == bits
    assert f",phys-bits={bits}," in b["cpu"] + ","
