"""``fleetcpu collect`` through real OpenSSH: the real CLI, real sshd, the real probe on the real QEMU.

Six sshd hosts on 127.0.0.2-7 with throwaway keys (``sshfixtures.start_sshd_fleet``): three
plain ones, one that refuses our client key, one missing from known_hosts, one whose
known_hosts entry is another key. Several inventory names may point at one sshd (a name is an
identity, ``ansible_host``/``ansible_port`` the way there), which is how one run covers every
fault. After each run: no process of any session alive, nothing in any host's TMPDIR.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import kvm_usable, run_cli
from .support import misbehaving_qemu
from .support.replay.hosts import make_replay_host
from .support.sshd import (
    SshdFleet,
    closed_port,
    garbage_python,
    latest_rows,
    probe_killer_qemu,
    start_sshd_fleet,
)
from .test_collect_units import old_python

pytestmark = pytest.mark.skipif(
    shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
    reason="openssh-server is not installed (the README's test command installs it)",
)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
    fleet = start_sshd_fleet(
        tmp_path_factory.mktemp("sshd"),
        ["a", "b", "c", "noauth", "unknown", "changed"],
        unauthorized=["noauth"],
    )
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def known_hosts(sshd: SshdFleet, tmp_path: Path) -> Path:
    return sshd.write_known_hosts(tmp_path / "known_hosts", omit=["unknown"], wrong=["changed"])


def line(sshd: SshdFleet, name: str, host: str, settings: str = "") -> str:
    h = sshd.host(host)
    return f"{name} ansible_host={h.address} ansible_port={h.port} {settings}".rstrip() + "\n"


def collect(
    sshd: SshdFleet, tmp_path: Path, inventory: str, known_hosts: Path, *extra: str, timeout: float = 20
) -> tuple[int, str, str, Path]:
    inv = tmp_path / "hosts.txt"
    inv.write_text(inventory)
    store = tmp_path / "store"
    res = run_cli(
        "collect",
        str(inv),
        "--store",
        str(store),
        "--timeout",
        str(timeout),
        "--connect-timeout",
        "5",
        *sshd.cli_args(known_hosts),
        *extra,
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""},
    )
    return res.returncode, res.stdout, res.stderr, store


def assert_clean(sshd: SshdFleet) -> None:
    procs, files = sshd.wait_no_leftovers()
    assert procs == [], "processes left on the hosts"
    assert files == [], "files left in the hosts' TMPDIR"


def test_real_probe_on_real_qemu_over_real_openssh(
    sshd: SshdFleet, known_hosts: Path, tmp_path: Path, qemu_bin: str
) -> None:
    xeon = make_replay_host(tmp_path / "replay", "Xeon-Platinum-8268", microcode="0x5003003")
    ryzen = make_replay_host(tmp_path / "replay", "qemu-10.0-Ryzen-9-3900X")
    kvm = "kvm" if kvm_usable() else "tcg"
    inventory = (
        "[lab]\n"
        + line(sshd, "lab-a", "a", "accel=tcg")
        + line(sshd, "lab-b", "b", f"accel={kvm}")
        + line(sshd, "lab-c", "c", "accel=tcg python=/usr/bin/python3 machine_types=pc-i440fx-2.0,q35")
        + "[replay]\n"
        + line(sshd, "replay-xeon", "a", f"qemu={xeon.binary} host_root={xeon.root} accel=kvm")
        + line(sshd, "replay-ryzen", "b", f"qemu={ryzen.binary} host_root={ryzen.root} accel=kvm")
    )
    rc, out, err, store = collect(
        sshd, tmp_path, inventory, known_hosts, "--concurrency", "4", "--user", "root"
    )
    assert rc == 0, out + err
    assert out.startswith("collected 5 of 5 host(s)") and "failed 0" in out
    rows = latest_rows(store)
    assert {n: r["status"] for n, r in rows.items()} == dict.fromkeys(
        ["lab-a", "lab-b", "lab-c", "replay-xeon", "replay-ryzen"], "ok"
    )
    assert rows["lab-a"]["accel"] == "tcg" and rows["lab-a"]["accel_reason"] == "requested"
    assert rows["lab-b"]["accel"] == kvm and rows["lab-b"]["qemu_kvm_enabled"] is (kvm == "kvm")
    assert rows["lab-c"]["machine_types"] == ["pc-i440fx-2.0", rows["lab-a"]["machine_types"][0]]
    assert rows["lab-a"]["synthetic"] is None and rows["replay-xeon"]["synthetic"]
    # Replay hosts: other CPUs, seen through the same ssh path.
    names = {n: rows[n]["cpu_model_name"] for n in ("lab-a", "replay-xeon", "replay-ryzen")}
    assert len(set(names.values())) == 3, names
    assert rows["replay-xeon"]["microcode"] == "0x5003003"
    assert rows["replay-ryzen"]["qemu_version"] != rows["lab-a"]["qemu_version"]
    # The connection spec is stored, never a key.
    a = sshd.host("a")
    assert (
        rows["lab-a"]["conn_transport"],
        rows["lab-a"]["conn_address"],
        rows["lab-a"]["conn_port"],
        rows["lab-a"]["conn_user"],
    ) == ("ssh", a.address, a.port, "root")
    assert rows["lab-c"]["conn_python"] == "/usr/bin/python3"
    assert not [v for r in rows.values() for v in r.values() if "ed25519" in str(v)]
    assert_clean(sshd)


def test_every_fault_through_real_openssh_is_a_row_and_the_run_finishes(
    sshd: SshdFleet, known_hosts: Path, tmp_path: Path, qemu_bin: str
) -> None:
    pwned = tmp_path / "PWNED"
    hung = misbehaving_qemu.hangs(tmp_path / "hung")
    killer = probe_killer_qemu(tmp_path / "killer")
    garbage = garbage_python(tmp_path / "garbage")
    port = closed_port("127.0.0.9")
    inventory = (
        line(sshd, "ok", "a", "accel=tcg")
        + f"unreachable ansible_host=127.0.0.9 ansible_port={port}\n"
        + line(sshd, "unknown-key", "unknown")
        + line(sshd, "changed-key", "changed")
        + line(sshd, "auth", "noauth")
        + line(sshd, "no-python", "a", "python=/nonexistent/python3")
        + line(sshd, "old-python", "a", f"python={old_python(tmp_path, '3.8')}")
        + line(sshd, "no-qemu", "b", "qemu=/nonexistent/qemu-system-x86_64 accel=tcg")
        + line(sshd, "hostile", "b", f"qemu='/tmp/x;touch {pwned}' accel=tcg")
        + line(sshd, "probe-timeout", "b", f"qemu={hung} accel=tcg")
        + line(sshd, "probe-killed", "c", f"qemu={killer} accel=tcg")
        + line(sshd, "garbage", "c", f"python={garbage}")
    )
    rc, out, err, store = collect(
        sshd, tmp_path, inventory, known_hosts, "--concurrency", "6", "--retries", "1", timeout=5
    )
    assert rc == 5, out + err
    rows = latest_rows(store)
    stages = {n: r["stage"] for n, r in rows.items()}
    assert stages == {
        "ok": None,
        "unreachable": "connect",
        "unknown-key": "hostkey",
        "changed-key": "hostkey",
        "auth": "auth",
        "no-python": "python",
        "old-python": "python",
        "no-qemu": "qemu",
        "hostile": "qemu",
        "probe-timeout": "timeout",
        "probe-killed": "output",
        "garbage": "output",
    }, {n: (r["stage"], r["error"]) for n, r in rows.items()}
    err_of = {n: str(r["error"]) for n, r in rows.items()}
    assert "refused" in err_of["unreachable"] and "after 2 attempts" in err_of["unreachable"]
    assert rows["unknown-key"]["error_code"] == "hostkey-unknown"
    assert "SHA256:" in err_of["unknown-key"] and "--accept-new-host-keys" in err_of["unknown-key"]
    assert rows["changed-key"]["error_code"] == "hostkey-changed"
    assert "HOST KEY CHANGED" in err_of["changed-key"] and err_of["changed-key"].count("SHA256:") == 2
    assert "authentication refused" in err_of["auth"]
    assert "Python 3.8" in err_of["old-python"] and "not found" in err_of["no-python"]
    assert err_of["hostile"] == f"QEMU binary not found: /tmp/x;touch {pwned}"
    assert not pwned.exists()
    assert rows["probe-timeout"]["error_code"] == "timeout"
    assert "killed by signal KILL" in err_of["probe-killed"]
    assert "PNG" in err_of["garbage"]
    assert out.startswith("collected 12 of 12 host(s)") and "ok 1" in out
    assert_clean(sshd)


def test_new_host_keys_only_with_the_flag_and_a_changed_key_never(
    sshd: SshdFleet, known_hosts: Path, tmp_path: Path
) -> None:
    before = known_hosts.read_text()
    inventory = line(sshd, "unknown-key", "unknown", "python=/nonexistent") + line(
        sshd, "changed-key", "changed", "python=/nonexistent"
    )
    rc, out, err, store = collect(sshd, tmp_path, inventory, known_hosts, "--accept-new-host-keys")
    assert rc == 6, out + err
    rows = latest_rows(store)
    # Past the host key (the session ran and found no python there), and recorded:
    assert rows["unknown-key"]["stage"] == "python"
    assert rows["changed-key"]["stage"] == "hostkey" and "CHANGED" in str(rows["changed-key"]["error"])
    u = sshd.host("unknown")
    added = known_hosts.read_text()[len(before) :]
    assert added == f"{u.known_hosts_line()}\n"
    assert "trusted 1 new host key(s) on first use" in err and f"[{u.address}]:{u.port}" in err
    # The next run trusts it from the file, without the flag.
    rc, out, err, store = collect(
        sshd, tmp_path, line(sshd, "unknown-key", "unknown", "accel=tcg"), known_hosts
    )
    assert rc == 0, out + err
    assert known_hosts.read_text() == before + added, "known_hosts written without the flag"
    assert_clean(sshd)
