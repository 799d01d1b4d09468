"""Fleet scale and every remote fault, against hundreds of asyncssh servers acting out hosts.

The servers (``sshfixtures.FakeFleet``) run in a background thread; the collector runs either as
the real CLI in a subprocess or through ``run_collect`` in the test process (to use a short
grace period). The servers count simultaneous sessions, so the concurrency bound is measured
on the host side, where it matters, and they report any session still open after a run.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest

from fleetcpu.collect.collect_fleet import run_collect
from fleetcpu.errors import AllHostsFailedError, SomeHostsFailedError
from fleetcpu.fleet.bundle import load_bundle
from fleetcpu.fleet.options import FleetOptions
from fleetcpu.fleet.ssh import SshSettings

from .conftest import invoke
from .support.sshd import FakeFleet, fake_fleet_fixtures, latest_rows

FLEET_SIZE = 260


fleet, fresh = fake_fleet_fixtures(FLEET_SIZE)


def cli(fleet: FakeFleet, tmp_path: Path, inventory: Path, *extra: str) -> tuple[int, str, str]:
    res = invoke(
        "collect",
        str(inventory),
        "--store",
        str(tmp_path / "store"),
        *fleet.cli_args(),
        *extra,
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""},
        timeout=300,
    )
    return res.returncode, res.stdout, res.stderr


def in_process(
    fleet: FakeFleet,
    tmp_path: Path,
    inventory: Path,
    *,
    known_hosts: Path | None = None,
    timeout: float = 2.0,
    concurrency: int = 32,
    retries: int = 1,
) -> str:
    """``run_collect`` here, with a short grace period; returns the summary it printed."""
    ssh = SshSettings(
        identity_files=(str(fleet.client_key_path),),
        ssh_config=(str(fleet.ssh_config),),
        known_hosts=(str(known_hosts or fleet.known_hosts),),
        connect_timeout=5.0,
        grace=0.5,
    )
    out = io.StringIO()
    options = FleetOptions(concurrency=concurrency, timeout=timeout, retries=retries, backoff=0.05, ssh=ssh)
    try:
        run_collect(
            str(inventory),
            options,
            store_dir=str(tmp_path / "store"),
            out=out,
            err=io.StringIO(),
            bundle=load_bundle(tmp_path / "cache"),
        )
    except (SomeHostsFailedError, AllHostsFailedError) as exc:
        return out.getvalue() + f"\nEXIT {exc.exit_code}"
    return out.getvalue() + "\nEXIT 0"


def test_hundreds_of_hosts_with_bounded_concurrency(fresh: FakeFleet, tmp_path: Path) -> None:
    inv = fresh.inventory(
        tmp_path / "hosts.txt", [h.name for h in fresh.hosts[:250]], extra="machine_types=pc-q35-7.2"
    )
    rc, out, err = cli(fresh, tmp_path, inv, "--concurrency", "20")
    assert rc == 0, out + err
    assert fresh.sessions == 250 and fresh.bundles_ok == 250
    assert 10 < fresh.peak <= 20, fresh.peak
    assert fresh.leftovers() == 0
    rows = latest_rows(tmp_path / "store")
    assert len(rows) == 250 and {r["status"] for r in rows.values()} == {"ok"}
    assert rows["fake000"]["conn_address"] == fresh.hosts[0].address
    # Every host got the same, correctly quoted probe arguments.
    args = fresh.commands["fake007"][6:]
    assert args == ["--accel", "auto", "--timeout", "80", "--machine-type", "pc-q35-7.2"]


def test_a_small_concurrency_is_a_hard_bound(fresh: FakeFleet, tmp_path: Path) -> None:
    inv = fresh.inventory(tmp_path / "hosts.txt", [h.name for h in fresh.hosts[:40]])
    summary = in_process(fresh, tmp_path, inv, concurrency=3)
    assert summary.endswith("EXIT 0")
    assert fresh.peak == 3 and fresh.sessions == 40


def test_connections_reset_at_start_are_retried_with_backoff(fresh: FakeFleet, tmp_path: Path) -> None:
    names = [h.name for h in fresh.hosts[:30]]
    for h in fresh.hosts[:10]:
        h.resets = 2  # what sshd's MaxStartups does to a burst
    fresh.hosts[10].resets = 10  # never lets us in
    inv = fresh.inventory(tmp_path / "hosts.txt", names)
    rc, out, err = cli(fresh, tmp_path, inv, "--retries", "2", "--concurrency", "16")
    assert rc == 5, out + err
    assert [h.connections for h in fresh.hosts[:10]] == [3] * 10
    assert fresh.hosts[10].connections == 3
    rows = latest_rows(tmp_path / "store")
    assert all(rows[n]["status"] == "ok" for n in names if n != "fake010")
    assert rows["fake010"]["stage"] == "connect" and "after 3 attempts" in str(rows["fake010"]["error"])
    # Closed before the banner, or reset: the kernel decides which the client sees.
    assert rows["fake010"]["error_code"] in ("connection-lost", "connect"), rows["fake010"]["error"]
    assert "connect: 1" in out
    # Without retries the same resets are failures: the retries did the work above.
    fresh.reset_stats()
    fresh.hosts[0].resets = 1
    rc, out, err = cli(
        fresh, tmp_path, fresh.inventory(tmp_path / "one.txt", ["fake000", "fake001"]), "--retries", "0"
    )
    assert rc == 5 and fresh.hosts[0].connections == 1


FAULT_STAGES = {
    "ok": None,
    "garbage": "output",
    "truncated": "output",
    "killed": "output",
    "disconnect": "output",
    "hang": "timeout",
    "hang-hard": "timeout",
    "old-python": "python",
    "exit127": "python",
    "auth-fail": "auth",
    "bad-upload": "upload",
    "linger": "cleanup",
}


def test_every_remote_fault_is_a_row_and_leaves_no_session_open(fresh: FakeFleet, tmp_path: Path) -> None:
    hosts = fresh.hosts[: len(FAULT_STAGES) + 2]
    expected: dict[str, str | None] = {}
    for host, fault in zip(hosts, FAULT_STAGES, strict=False):
        host.fault = fault
        expected[host.name] = FAULT_STAGES[fault]
    unknown, changed = hosts[-2], hosts[-1]
    expected[unknown.name] = expected[changed.name] = "hostkey"
    known = fresh.write_known_hosts(tmp_path / "known_hosts", omit=[unknown.name], wrong=[changed.name])
    inv = fresh.inventory(tmp_path / "hosts.txt", [h.name for h in hosts])
    summary = in_process(fresh, tmp_path, inv, known_hosts=known, timeout=1.5)
    assert summary.endswith("EXIT 5"), summary
    rows = latest_rows(tmp_path / "store")
    assert {n: r["stage"] for n, r in rows.items()} == expected, {
        n: (r["stage"], r["error"]) for n, r in rows.items()
    }
    by_fault = {fault: rows[h.name] for h, fault in zip(hosts, FAULT_STAGES, strict=False)}
    assert by_fault["truncated"]["error_code"] == "truncated"
    assert by_fault["killed"]["error_code"] == "killed"
    assert by_fault["disconnect"]["error_code"] == "connection-lost"
    assert "stdout began with" in str(by_fault["garbage"]["error"])
    assert "stopped with SIGTERM" in str(by_fault["hang"]["error"])
    assert "closed hard" in str(by_fault["hang-hard"]["error"])
    assert "Python 3.6.8" in str(by_fault["old-python"]["error"])
    assert rows[unknown.name]["error_code"] == "hostkey-unknown"
    assert rows[changed.name]["error_code"] == "hostkey-changed"
    stopped = {fault: fresh.stops.get(h.name) for h, fault in zip(hosts, FAULT_STAGES, strict=False)}
    assert stopped["hang"] == stopped["linger"] == ["TERM", "EOF"], "told to stop: signal, then EOF"
    assert by_fault["linger"]["error_code"] == "cleanup" and by_fault["linger"]["cpu_digest"], (
        "an answer that did not exit cleanly keeps its data"
    )
    assert fresh.leftovers() == 0


def test_all_hosts_failing_is_exit_6(fresh: FakeFleet, tmp_path: Path) -> None:
    for h in fresh.hosts[:5]:
        h.fault = "auth-fail"
    inv = fresh.inventory(tmp_path / "hosts.txt", [h.name for h in fresh.hosts[:5]])
    rc, out, err = cli(fresh, tmp_path, inv)
    assert rc == 6, out + err
    assert "auth: 5" in out and err.strip() == "error: all 5 host(s) failed; their failure rows are stored"


def test_hostile_inventory_values_arrive_as_single_arguments(fresh: FakeFleet, tmp_path: Path) -> None:
    h = fresh.hosts[0]
    inv = tmp_path / "hosts.txt"
    qemu = "/tmp/x;touch /tmp/pwned $(id) `id` 'q'"
    inv.write_text(
        f"{h.name} ansible_host={h.address} ansible_port={h.port} "
        f"qemu={shlex.quote(qemu)} python='/opt/py 3/bin/python3'\n"
    )
    summary = in_process(fresh, tmp_path, inv)
    assert summary.endswith("EXIT 0")
    argv = fresh.commands[h.name]
    assert argv[1] == "/opt/py 3/bin/python3"
    assert argv[argv.index("--qemu-binary") + 1] == qemu


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("-i", "/nonexistent/key", "-i /nonexistent/key: cannot load this SSH key"),
        ("--ssh-config", "/nonexistent/config", "--ssh-config /nonexistent/config: no such file"),
    ],
)
def test_a_bad_ssh_flag_is_a_usage_error_before_any_host_is_contacted(
    fresh: FakeFleet, tmp_path: Path, flag: str, value: str, message: str
) -> None:
    inv = fresh.inventory(tmp_path / "hosts.txt", [h.name for h in fresh.hosts[:3]])
    res = invoke(
        "collect",
        str(inv),
        "--store",
        str(tmp_path / "store"),
        *fresh.cli_args(),
        flag,
        value,
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""},
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(f"error: {message}")
    assert sum(h.connections for h in fresh.hosts) == 0 and not (tmp_path / "store").exists()
