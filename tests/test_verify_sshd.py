"""``fleetcpu verify`` through real OpenSSH: the real CLI, real sshd, the real QEMU and replay hosts.

Three sshd hosts on 127.0.0.x (``sshfixtures.start_sshd_fleet``); inventory
names point at them with ``ansible_host``/``ansible_port``, so one sshd
plays several hosts (a real one and replay ones). Each story is one an
operator lives:

* a pool collected, then its computed CPU verified on real QEMU: under TCG
  (deterministic), under KVM when ``/dev/kvm`` works, with the inventory and
  from the connection specs stored at collect;
* a ``--cpu`` one host's QEMU cannot run (an older QEMU's TCG lacks AVX2),
  next to a host that cannot be reached at all;
* a Broadwell pool whose TSX-less newcomers (a Kaby Lake R with TSX off)
  refuse the pool's CPU under enforce, or, behind a QEMU that ignores
  enforce, filter it.

After each: no process of any session alive, nothing in any host's TMPDIR.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleetcpu.store import Store

from .conftest import REPO, kvm_usable, run_cli
from .support.replay.hosts import ReplayHost, make_replay_host
from .support.sshd import SshdFleet, closed_port, start_sshd_fleet

pytestmark = pytest.mark.skipif(
    shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
    reason="openssh-server is not installed (the README's test command installs it)",
)

REPORT_SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "verify-report-1.json").read_text())


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
    fleet = start_sshd_fleet(tmp_path_factory.mktemp("sshd"), ["a", "b", "c"], first=20)
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def known_hosts(sshd: SshdFleet, tmp_path: Path) -> Path:
    return sshd.write_known_hosts(tmp_path / "known_hosts")


def line(sshd: SshdFleet, name: str, host: str, settings: str = "") -> str:
    h = sshd.host(host)
    return f"{name} ansible_host={h.address} ansible_port={h.port} {settings}".rstrip() + "\n"


def cli(sshd: SshdFleet, tmp_path: Path, known_hosts: Path, *args: str) -> tuple[int, str, str]:
    res = run_cli(
        *args,
        "--store",
        str(tmp_path / "store"),
        "--connect-timeout",
        "5",
        "--user",
        "root",
        *sshd.cli_args(known_hosts),
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""},
    )
    return res.returncode, res.stdout, res.stderr


def inventory(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def report(out: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(out)
    jsonschema.validate(doc, REPORT_SCHEMA)
    return doc


def by_host(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in doc["hosts"]}


def assert_clean(sshd: SshdFleet) -> None:
    procs, files = sshd.wait_no_leftovers()
    assert procs == [], "processes left on the hosts"
    assert files == [], "files left in the hosts' TMPDIR"


def test_a_collected_pool_verifies_on_real_qemu_over_real_openssh(
    sshd: SshdFleet, known_hosts: Path, tmp_path: Path, qemu_bin: str
) -> None:
    kvm = kvm_usable()
    text = "[lab]\n" + "".join(line(sshd, f"lab-{h}", h, "accel=tcg") for h in "abc")
    if kvm:
        text += "[labkvm]\n" + "".join(line(sshd, f"kvm-{h}", h, "accel=kvm") for h in "abc")
    inv = inventory(tmp_path, "hosts.txt", text)
    rc, out, err = cli(sshd, tmp_path, known_hosts, "collect", inv)
    assert rc == 0, out + err
    store = Store.open(tmp_path / "store")
    latest = store.latest()

    # With the inventory: the pool's computed named CPU starts everywhere and is the same CPU.
    rc, out, err = cli(
        sshd, tmp_path, known_hosts, "verify", "--pool", "lab", inv, "--accel", "tcg", "--format", "json"
    )
    assert rc == 0, out + err
    doc = report(out)
    res = run_cli(
        "baseline", "--pool", "lab", "--accel", "tcg", "--format", "json", "--store", str(tmp_path / "store")
    )
    baseline = json.loads(res.stdout)
    assert (doc["cpu"], doc["model"], doc["machine_type"], doc["cpu_source"]) == (
        baseline["cpu"],
        baseline["model"],
        baseline["machine_type"],
        "baseline",
    )
    assert doc["passed"] and doc["reference"]["host"] == "lab-a"
    assert {h["verdict"] for h in doc["hosts"]} == {"pass"}
    assert {h["words_digest"] for h in doc["hosts"]} == {doc["reference"]["words_digest"]}
    assert {h["machine_type"] for h in doc["hosts"]} == {baseline["machine_type"]}
    assert err.startswith("verified pool lab: all 3 host(s) passed")

    # Without it: the connection specs stored at collect reach the same hosts.
    rc, out, err = cli(sshd, tmp_path, known_hosts, "verify", "--pool", "lab", "--accel", "tcg")
    assert rc == 0, out + err
    assert out.splitlines()[-1].startswith("verified pool lab: all 3 host(s) passed")
    assert [ln.split()[:2] for ln in out.splitlines()[4:7]] == [[f"lab-{h}", "pass"] for h in "abc"]

    if kvm:  # this machine's nested KVM: an old model plus many features, proven on every host
        rc, out, err = cli(sshd, tmp_path, known_hosts, "verify", "--pool", "labkvm", "--format", "json")
        assert rc == 0, out + err
        kdoc = report(out)
        assert kdoc["accel"] == "kvm" and kdoc["passed"] and kdoc["model"] == "pentium3-v1"
        assert {h["vcpu"]["vendor"] for h in kdoc["hosts"]} == {doc["hosts"][0]["vcpu"]["vendor"]}

    # Stored as runs of their own; no host's latest record moved.
    assert store.latest() == latest
    runs = [r for r in store.runs() if r.command == "verify"]
    assert [(r.hosts_ok, r.hosts_failed, r.status) for r in runs] == [(3, 0, "complete")] * (3 if kvm else 2)
    rows = store.table("verify").to_pylist()
    assert len(rows) == 3 * len(runs) and all(r["passed"] and r["started"] for r in rows)
    assert {r["inventory"] for r in store.table("runs").to_pylist() if r["command"] == "verify"} == {
        inv,
        None,
    }
    assert_clean(sshd)


def test_a_cpu_one_host_cannot_run_fails_naming_the_feature(
    sshd: SshdFleet, known_hosts: Path, tmp_path: Path, qemu_bin: str
) -> None:
    old = make_replay_host(tmp_path / "replay", "qemu-5.0-Xeon-E3-1245-v5")
    port = closed_port("127.0.0.9")
    inv = inventory(
        tmp_path,
        "hosts.txt",
        "[mixed]\n"
        + "".join(line(sshd, f"m-{h}", h) for h in "abc")
        + line(sshd, "m-old", "a", f"qemu={old.binary}")
        + f"gone ansible_host=127.0.0.9 ansible_port={port}\n",
    )
    # No collect: --cpu and --machine-type need no stored data, only the inventory.
    rc, out, err = cli(
        sshd,
        tmp_path,
        known_hosts,
        "verify",
        "--pool",
        "mixed",
        inv,
        "--accel",
        "tcg",
        "--cpu",
        "qemu64,+avx2",
        "--machine-type",
        "pc-q35-5.0",
        "--retries",
        "0",
        "--format",
        "json",
    )
    assert rc == 24, out + err
    doc = report(out)
    hosts = by_host(doc)
    assert {h: v["verdict"] for h, v in hosts.items()} == {
        "m-a": "pass",
        "m-b": "pass",
        "m-c": "pass",
        "m-old": "refused",
        "gone": "failed",
    }
    refused = hosts["m-old"]
    assert refused["missing"] == ["avx2"] and refused["started"] is False
    assert refused["exit_status"] == 1 and "CPUID.07H:EBX.avx2" in refused["stderr_tail"]
    assert refused["qemu_version"] == "5.0.0" and hosts["m-a"]["qemu_version"] != "5.0.0"
    assert hosts["gone"]["stage"] == "connect" and "refused" in hosts["gone"]["error"]
    assert hosts["gone"]["started"] is None
    # The stand-in saw exactly what the real QEMUs got.
    [launch] = [a for a in old.launches() if "-cpu" in a]
    assert launch[launch.index("-cpu") + 1] == "qemu64,+avx2,enforce"
    assert launch[launch.index("-machine") + 1] == "pc-q35-5.0"
    assert "error: 2 of 5 host(s) of pool 'mixed' did not pass" in err

    rows = {r["host"]: r for r in Store.open(tmp_path / "store").table("verify").to_pylist()}
    assert rows["m-old"]["missing"] == ["avx2"] and rows["gone"]["stage"] == "connect"
    assert [r.command for r in Store.open(tmp_path / "store").runs()] == ["verify"]
    assert_clean(sshd)


def no_enforce(host: ReplayHost) -> str:
    """A QEMU that ignores ``enforce`` (drops it from every argument), as an odd build might."""
    path = host.directory / "ignores-enforce" / "qemu-system-x86_64"
    path.parent.mkdir()
    path.write_text(
        f'#!/bin/bash\nargs=()\nfor a in "$@"; do args+=("${{a%,enforce}}"); done\n'
        f'exec {host.binary} "${{args[@]}}"\n'
    )
    path.chmod(0o755)
    return str(path)


def test_replay_newcomers_refuse_or_filter_the_pools_cpu(
    sshd: SshdFleet, known_hosts: Path, tmp_path: Path
) -> None:
    where = tmp_path / "replay"
    bw1 = make_replay_host(where, "Xeon-E5-2650-v4")
    bw2 = make_replay_host(where, "Xeon-E5-2623-v4")
    kbl = make_replay_host(where, "Core-i7-8550U", hostname="kbl")
    odd = make_replay_host(where, "Core-i7-8550U", hostname="kbl-odd")
    members = (
        "[replay]\n"
        + line(sshd, "bw1", "a", f"qemu={bw1.binary} host_root={bw1.root} accel=kvm")
        + line(sshd, "bw2", "b", f"qemu={bw2.binary} host_root={bw2.root} accel=kvm")
    )
    rc, out, err = cli(sshd, tmp_path, known_hosts, "collect", inventory(tmp_path, "pool.txt", members))
    assert rc == 0, out + err
    # Two newcomers join the inventory before being collected: does the pool's CPU run there?
    grown = inventory(
        tmp_path,
        "grown.txt",
        members
        + line(sshd, "kbl", "c", f"qemu={kbl.binary}")
        + line(sshd, "kbl-odd", "c", f"qemu={no_enforce(odd)}"),
    )
    rc, out, err = cli(sshd, tmp_path, known_hosts, "verify", "--pool", "replay", grown, "--format", "json")
    assert rc == 24, out + err
    doc = report(out)
    assert doc["model"] == "Broadwell" and {"+hle", "+rtm"}.isdisjoint(doc["cpu"].split(","))
    hosts = by_host(doc)
    assert {h: v["verdict"] for h, v in hosts.items()} == {
        "bw1": "unverified",
        "bw2": "unverified",
        "kbl": "refused",
        "kbl-odd": "filtered",
    }
    # Broadwell's own TSX is what a TSX-less CPU cannot give, named by QEMU under enforce...
    assert hosts["kbl"]["missing"] == ["hle", "rtm"]
    assert "lacks hle, rtm" in hosts["kbl"]["reason"]
    # ...and silently dropped by a QEMU that ignores enforce: filtered-features says it.
    assert hosts["kbl-odd"]["started"] is True and hosts["kbl-odd"]["filtered"] == ["hle", "rtm"]
    # The members start it clean, but the stand-in cannot show a named model's feature-words:
    # nothing proves what their guests see, so they do not pass.
    for name in ("bw1", "bw2"):
        assert hosts[name]["started"] is True and hosts[name]["filtered"] == []
        assert hosts[name]["equal_to_pool"] is None and "feature-words" in hosts[name]["reason"]
    assert doc["reference"] is None
    assert_clean(sshd)
