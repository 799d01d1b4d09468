"""Fleets of real CPUs, collected the way operators collect: ``fleetcpu collect`` over real sshd.

No machine here is a Cascade Lake, a Naples and a Hygon at once; the replay
stand-in answers from what QEMU said on such hosts. Fourteen inventory hosts
reach three real sshd daemons (a name is an identity, ``ansible_host`` /
``ansible_port`` the way there), each with its own captured CPU, synthetic
facts and microcode, and ``fleetcpu baseline`` then runs on what was stored.
"Rome" is the Ryzen 9 3900X: Zen 2, the core of EPYC Rome, the only Zen 2
capture there is.

Every pool is checked against the stored data itself: the result is offered
by every member, the named model is usable on every member, and the blockers
the spec names are really blocked.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.baseline import member_from_probe
from fleetcpu.baseline.types import Member
from fleetcpu.store import Store

from .conftest import invoke
from .support.replay.hosts import make_replay_host
from .support.sshd import SshdFleet, latest_rows, start_sshd_fleet

pytestmark = pytest.mark.skipif(
    shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
    reason="openssh-server is not installed (the README's test command installs it)",
)

# (inventory name, capture, pool, microcode)
# Only about half the captures include query-cpu-definitions; pools meant to get a
# named model use those (the -ibpb EPYC 7601 capture has them, the plain one not).
FLEET = [
    ("skx-6130", "Xeon-Gold-6130", "skx-clx", "0x2000064"),
    ("skx-6148", "Xeon-Gold-6148", "skx-nodefs", "0x2000065"),
    ("clx-9242b", "Xeon-Platinum-9242", "skx-nodefs", "0x5003003"),
    ("clx-8268", "Xeon-Platinum-8268", "skx-clx", "0x5003003"),
    ("clx-9242", "Xeon-Platinum-9242", "skx-clx", "0x5003003"),
    ("naples", "EPYC-7601-32-Core-ibpb", "epyc", "0x8001227"),
    ("rome", "Ryzen-9-3900X-12-Core", "epyc", "0x8701013"),
    ("mix-intel", "Xeon-Gold-6130", "intel-amd", "0x2000064"),
    ("mix-amd", "EPYC-7601-32-Core", "intel-amd", "0x8001227"),
    ("hygon", "Hygon-C86-7185-32-core", "hygon", "0x900000a"),
    ("hygon-epyc", "EPYC-7601-32-Core", "hygon-amd", "0x8001227"),
    ("hygon-2", "Hygon-C86-7185-32-core", "hygon-amd", "0x900000a"),
    ("ryzen-q82", "qemu-8.2-Ryzen-9-3900X", "two-qemus", "0x8701021"),
    ("ryzen-q100", "qemu-10.0-Ryzen-9-3900X", "two-qemus", "0x8701021"),
    ("drift-q82", "qemu-8.2-Ryzen-9-3900X", "two-qemus-undeclared", "0x8701021"),
    ("drift-q100", "qemu-10.0-Ryzen-9-3900X", "two-qemus-undeclared", "0x8701021"),
]
DECLARED = {"two-qemus": "pc-q35-8.2"}


@dataclass
class Collected:
    store: Path
    rc: int
    out: str
    err: str
    sshd: SshdFleet

    def baseline(self, pool: str, *args: str) -> tuple[int, Any, str]:
        res = invoke(
            "baseline",
            "--store",
            str(self.store),
            "--pool",
            pool,
            "--format",
            "json",
            "--max-age",
            "3650d",
            *args,
        )
        doc = json.loads(res.stdout) if res.returncode == 0 else None
        return res.returncode, doc, res.stderr

    def members(self, pool: str, machine_type: str) -> dict[str, Member]:
        store = Store.open(self.store)
        hosts = [h.host for h in store.latest(pool)]
        out = {}
        for host, snap in store.snapshots(hosts, "kvm").items():
            mp = snap.machines[machine_type]
            out[host] = member_from_probe(host, "kvm", snap.qemu_version, snap.collected_at, snap.facts, mp)
        return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collected]:
    tmp = tmp_path_factory.mktemp("fleets")
    sshd = start_sshd_fleet(tmp / "sshd", ["a", "b", "c"])
    try:
        lines: dict[str, list[str]] = {}
        for i, (name, capture, pool, microcode) in enumerate(FLEET):
            rh = make_replay_host(tmp / "replay", capture, microcode=microcode, hostname=name)
            ssh = sshd.host("abc"[i % 3])
            lines.setdefault(pool, []).append(
                f"{name} ansible_host={ssh.address} ansible_port={ssh.port} ansible_user=root "
                f"qemu={rh.binary} host_root={rh.root} accel=kvm\n"
            )
        text = ""
        for pool, hosts in lines.items():
            text += f"[{pool}]\n" + "".join(hosts)
            if pool in DECLARED:
                text += f"[{pool}:vars]\nmachine_types={DECLARED[pool]}\n"
        inv = tmp / "fleet.txt"
        inv.write_text(text)
        known = sshd.write_known_hosts(tmp / "known_hosts")
        store = tmp / "store"
        res = invoke(
            "collect",
            str(inv),
            "--store",
            str(store),
            "--concurrency",
            "4",
            "--timeout",
            "60",
            *sshd.cli_args(known),
            env={"XDG_CACHE_HOME": str(tmp / "cache"), "SSH_AUTH_SOCK": ""},
            timeout=300,
        )
        yield Collected(store, res.returncode, res.stdout, res.stderr, sshd)
    finally:
        sshd.stop()


def test_the_whole_fleet_is_collected_through_real_sshd(fleet: Collected) -> None:
    assert fleet.rc == 0, fleet.out + fleet.err
    rows = latest_rows(fleet.store)
    assert sorted(rows) == sorted(name for name, *_ in FLEET)
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert {r["conn_transport"] for r in rows.values()} == {"ssh"}
    # Real CPUs, not this machine's: vendors, models and microcode come from the captures.
    assert {r["cpu_vendor"] for r in rows.values()} == {"GenuineIntel", "AuthenticAMD", "HygonGenuine"}
    assert len({r["cpu_model_name"] for r in rows.values()}) >= 7
    assert rows["clx-8268"]["microcode"] == "0x5003003"
    assert all(str(r["synthetic"]).startswith("replay:") for r in rows.values())
    # One CPU at two QEMU versions.
    assert (rows["ryzen-q82"]["qemu_version"], rows["ryzen-q100"]["qemu_version"]) == ("8.2.0", "10.0.0")
    procs, files = fleet.sshd.wait_no_leftovers()
    assert procs == [] and files == []


def assert_sound(fleet: Collected, pool: str, doc: dict[str, Any]) -> dict[str, Member]:
    """The safety property on stored data: nothing enabled that any member lacks."""
    members = fleet.members(pool, doc["machine_type"])
    assert sorted(members) == sorted(h["host"] for h in doc["hosts"])
    result = set(doc["features"])
    for host, m in members.items():
        assert result <= m.offered, f"{host} lacks {sorted(result - m.offered)}"
        if doc["model"] != "base":
            [model] = [x for x in m.models if x.name == doc["model"]]
            assert model.usable, f"{doc['model']} unusable on {host}"
    assert set(doc["enable"]) <= result and not set(doc["disable"]) & result
    return members


def test_skylake_cascadelake_pool(fleet: Collected) -> None:
    rc, doc, err = fleet.baseline("skx-clx")
    assert rc == 0, err
    members = assert_sound(fleet, "skx-clx", doc)
    assert doc["vendor"] == "GenuineIntel"
    assert doc["model"].startswith(("Skylake-Server", "Cascadelake-Server")), doc["model"]
    assert {"avx512f", "avx512bw", "avx512vl"} <= set(doc["features"])
    # Cascade Lake's VNNI is blocked by the two Skylakes.
    assert "avx512vnni" in members["clx-8268"].offered
    assert "avx512vnni" not in doc["features"]
    # Microcode differs across members: any TSX or security difference is named.
    codes = {w["code"] for w in doc["warnings"]}
    if {"hle", "rtm"} & (members["clx-8268"].offered ^ members["skx-6130"].offered):
        assert "tsx-microcode-differs" in codes


def test_a_member_without_model_data_gets_the_custom_cpu(fleet: Collected) -> None:
    """The Gold 6148 capture has no definitions: no model is known usable everywhere,
    so the pool runs the fully explicit custom CPU, and says why."""
    rc, doc, err = fleet.baseline("skx-nodefs")
    assert rc == 0, err
    assert_sound(fleet, "skx-nodefs", doc)
    assert doc["model"] == "base" and doc["cpu"] == doc["custom"]
    assert "no-common-model" in {w["code"] for w in doc["warnings"]}
    assert {"avx512f", "avx512bw"} <= set(doc["features"])


def test_naples_with_rome_pool(fleet: Collected) -> None:
    rc, doc, err = fleet.baseline("epyc")
    assert rc == 0, err
    members = assert_sound(fleet, "epyc", doc)
    assert doc["vendor"] == "AuthenticAMD"
    naples, rome = members["naples"], members["rome"]
    # The captured Naples host ran an old KVM without rdtscp: every EPYC model is
    # unusable there, and Zen 2 additions stay out.
    assert "rdtscp" in rome.offered and "rdtscp" not in naples.offered
    assert "rdtscp" not in doc["features"] and not doc["model"].startswith("EPYC")
    assert {"clwb", "wbnoinvd"} <= rome.offered - set(doc["features"])
    # The captures span QEMU generations (no -vN on Naples' QEMU): the model is a
    # name that resolves per machine type, and the baseline says so.
    assert "model-resolves-per-machine-type" in {w["code"] for w in doc["warnings"]}
    assert doc["model"] in {m.name for m in naples.models} & {m.name for m in rome.models}


def test_intel_with_amd_is_refused(fleet: Collected) -> None:
    rc, _, err = fleet.baseline("intel-amd")
    assert rc == 23
    assert "GenuineIntel" in err and "AuthenticAMD" in err
    assert "mix-intel" in err and "mix-amd" in err


def test_hygon_alone_and_with_amd(fleet: Collected) -> None:
    rc, doc, err = fleet.baseline("hygon")
    assert rc == 0, err
    assert_sound(fleet, "hygon", doc)
    assert doc["vendor"] == "HygonGenuine"
    # A Hygon is not an AMD to CPUID: a guest must not see its vendor change on migration.
    rc, _, err = fleet.baseline("hygon-amd")
    assert rc == 23 and "HygonGenuine" in err


def test_one_cpu_at_two_qemu_versions(fleet: Collected) -> None:
    """The declared machine type is probed on both QEMUs; the model must exist in both."""
    rc, doc, err = fleet.baseline("two-qemus")
    assert rc == 0, err
    assert doc["machine_type"] == "pc-q35-8.2"
    members = assert_sound(fleet, "two-qemus", doc)
    assert {h["qemu_version"] for h in doc["hosts"]} == {"8.2.0", "10.0.0"}
    q82, q100 = members["ryzen-q82"], members["ryzen-q100"]
    assert {m.name for m in q100.models} > {m.name for m in q82.models}, "10.0 adds models"
    assert doc["model"] in {m.name for m in q82.models} & {m.name for m in q100.models}


def test_undeclared_machine_types_drift_apart(fleet: Collected) -> None:
    """Without machine_types=, each QEMU probes its own q35 and no type is common: exit 22."""
    rc, _, err = fleet.baseline("two-qemus-undeclared")
    assert rc == 22
    assert "machine_types=" in err
    assert "drift-q82" in err or "drift-q100" in err
