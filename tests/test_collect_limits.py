"""Limits an operator can rely on: revoked host keys, inventory size, output memory.

Real SSH hosts (``FakeFleet``: asyncssh servers on 127.0.6.x), the real CLI,
real known_hosts files; the collector's peak RSS is read from the kernel
(``getrusage`` of a wrapper process whose only child is the CLI).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import PYTHON, REPO, invoke
from .support.sshd import FakeFleet, fake_fleet_fixtures, latest_rows

fleet, fresh = fake_fleet_fixtures(32, delay=0.0, net=6)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""}


@pytest.mark.parametrize("accept_new", [False, True])
def test_a_revoked_host_key_is_refused_with_or_without_accept_new(
    fresh: FakeFleet, tmp_path: Path, accept_new: bool
) -> None:
    revoked, trusted = fresh.hosts[0], fresh.hosts[1]
    known = fresh.write_known_hosts(tmp_path / "known_hosts", omit=[revoked.name])
    assert revoked.key is not None
    public = revoked.key.export_public_key("openssh").decode().strip()
    with known.open("a") as f:
        f.write(f"@revoked [{revoked.address}]:{revoked.port} {public}\n")
    before = known.read_text()
    inventory = fresh.inventory(tmp_path / "inv", [revoked.name, trusted.name])
    flags = ["--accept-new-host-keys"] if accept_new else []
    res = invoke(
        "collect",
        str(inventory),
        "--store",
        str(tmp_path / "store"),
        *fresh.cli_args(known),
        *flags,
        env=_env(tmp_path),
    )
    assert res.returncode == 5, (res.stdout, res.stderr)
    rows = latest_rows(tmp_path / "store")
    assert rows[trusted.name]["status"] == "ok"
    row = rows[revoked.name]
    assert (row["stage"], row["error_code"]) == ("hostkey", "hostkey-revoked"), row["error"]
    assert "REVOKED" in str(row["error"]) and "SHA256:" in str(row["error"])
    assert known.read_text() == before, "a revoked key was written to known_hosts"
    assert "trusted" not in res.stderr


def test_the_inventory_host_cap_is_exit_3_before_any_host_is_contacted(
    fresh: FakeFleet, tmp_path: Path
) -> None:
    inventory = tmp_path / "inv"
    # Every name points at a real host of the fleet: any contact is counted.
    at = f"ansible_host={fresh.hosts[0].address} ansible_port={fresh.hosts[0].port}"
    inventory.write_text(f"h[000000:099999] {at}\nx[0:9] {at}\n")
    started = time.monotonic()
    res = invoke(
        "collect",
        str(inventory),
        "--store",
        str(tmp_path / "store"),
        *fresh.cli_args(),
        env=_env(tmp_path),
        timeout=60,
    )
    took = time.monotonic() - started
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert "100000" in res.stderr and "--max-hosts" in res.stderr and f"{inventory}:2" in res.stderr
    assert sum(h.connections for h in fresh.hosts) == 0
    assert not (tmp_path / "store").exists()
    # One line of 999,999 names is refused as soon as it is read, not after expanding it.
    inventory.write_text("h[0:999999]\nh[0:999999]\nh[0:999999]\n")
    started = time.monotonic()
    res = invoke(
        "collect", str(inventory), "--store", str(tmp_path / "store"), *fresh.cli_args(), env=_env(tmp_path)
    )
    assert res.returncode == 3 and f"{inventory}:1" in res.stderr, res.stderr
    assert time.monotonic() - started < took + 5
    # The named flag lifts the cap; duplicates that disagree are still exit 3, before contact.
    inventory.write_text("h[000000:100000] transport=local\nh000007 transport=ssh\n")
    res = invoke(
        "collect",
        str(inventory),
        "--store",
        str(tmp_path / "store"),
        "--max-hosts",
        "200000",
        *fresh.cli_args(),
        env=_env(tmp_path),
    )
    assert res.returncode == 3 and "h000007" in res.stderr and f"{inventory}:2" in res.stderr
    assert sum(h.connections for h in fresh.hosts) == 0


_PEAK = """
import resource, subprocess, sys
res = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(res.stdout)
sys.stderr.write(res.stderr)
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(res.returncode)
"""


def test_many_hosts_flooding_stdout_keep_the_collector_s_memory_bounded(
    fresh: FakeFleet, tmp_path: Path
) -> None:
    """32 hosts each printing 24 MB at once: each may keep 32 MiB, so per-host caps alone
    let the collector hold ~770 MB; the total must stay bounded."""
    for host in fresh.hosts:
        host.fault = "flood"
    fresh.noise = 24 * 1024 * 1024
    try:
        inventory = fresh.inventory(tmp_path / "inv")
        res = subprocess.run(
            [
                PYTHON,
                "-c",
                _PEAK,
                PYTHON,
                "-m",
                "fleetcpu",
                "collect",
                str(inventory),
                "--store",
                str(tmp_path / "store"),
                "--concurrency",
                "32",
                *fresh.cli_args(),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
            check=False,
            env={**__import__("os").environ, **_env(tmp_path)},
        )
    finally:
        fresh.noise = 64 * 1024
    assert res.returncode == 6, (res.stdout[-2000:], res.stderr[-2000:])
    peak_mib = int(res.stdout.rsplit("PEAK_KIB", 1)[1]) / 1024
    print(f"collector peak RSS: {peak_mib:.0f} MiB")
    assert peak_mib < 600, f"collector peak RSS {peak_mib:.0f} MiB"
    rows = latest_rows(tmp_path / "store")
    assert len(rows) == 32 and all(r["stage"] == "output" for r in rows.values()), json.dumps(
        {n: (r["stage"], r["error"]) for n, r in rows.items()}, default=str
    )[:2000]
