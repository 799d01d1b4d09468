"""``fleetcpu collect`` end to end with ``transport=local``: the remote path minus the network.

The real CLI in a subprocess, the real bootstrap under ``/bin/sh -c``, the real probe on the real
QEMU (and on replay hosts), a real store read back. Every fault is a stored row with its stage;
nothing is left running or written (each run gets its own TMPDIR, and processes are found by it).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetcpu.collect.collect_fleet import Collector
from fleetcpu.fleet.bundle import load_bundle
from fleetcpu.fleet.inventory import parse_inventory
from fleetcpu.fleet.options import FleetOptions, build_transports
from fleetcpu.fleet.ssh import SshSettings
from fleetcpu.outcome import HostOutcome
from fleetcpu.store import Store

from .conftest import PYTHON, REPO, run_cli
from .support import misbehaving_qemu
from .support.replay.hosts import make_replay_host
from .support.sshd import (
    garbage_python,
    latest_rows,
    probe_killer_qemu,
    wait_no_processes,
)
from .test_collect_units import old_python


def cli_env(tmp_path: Path, tmpdir: Path) -> dict[str, str]:
    return {"TMPDIR": str(tmpdir), "XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""}


def assert_nothing_left(tmpdir: Path) -> None:
    assert wait_no_processes({f"TMPDIR={tmpdir}".encode()}) == []
    assert list(tmpdir.iterdir()) == [], "files left in the hosts' TMPDIR"


@pytest.mark.plain
def test_the_readme_default_collects_this_machine(tmp_path: Path, isolated_tmp: Path) -> None:
    store = tmp_path / "store"
    res = run_cli(
        "collect", "inventories/local.txt", "--store", str(store), env=cli_env(tmp_path, isolated_tmp)
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("collected 1 of 1 host(s)")
    assert res.stderr == ""  # not a terminal: no progress bar, no noise
    row = latest_rows(store)["localhost"]
    assert (row["status"], row["pool"], row["conn_transport"]) == ("ok", "local", "local")
    assert row["accel"] in ("kvm", "tcg") and row["qemu_version"]
    assert row["accel_reason"] is None if row["accel"] == "kvm" else row["accel_reason"]
    assert_nothing_left(isolated_tmp)


def test_a_malformed_inventory_fails_before_any_host_is_contacted(tmp_path: Path, isolated_tmp: Path) -> None:
    spy, touched = _spy_python(tmp_path)
    inv = tmp_path / "hosts.txt"
    inv.write_text(f"first transport=local python={spy}\n[broken\nsecond transport=local\n")
    store = tmp_path / "store"
    res = run_cli("collect", str(inv), "--store", str(store), env=cli_env(tmp_path, isolated_tmp))
    assert res.returncode == 3, res.stderr
    assert res.stderr.strip() == f"error: {inv}:2: malformed section header '[broken'"
    assert not touched.exists() and not store.exists()
    # Strict mode turns an ignored key into the same early failure.
    inv.write_text(f"first transport=local python={spy} ansible_become=yes\n")
    res = run_cli(
        "collect", str(inv), "--store", str(store), "--strict-inventory", env=cli_env(tmp_path, isolated_tmp)
    )
    assert res.returncode == 3 and "unknown key 'ansible_become'" in res.stderr
    assert not touched.exists() and not store.exists()


def _spy_python(tmp_path: Path) -> tuple[Path, Path]:
    touched = tmp_path / "contacted"
    spy = tmp_path / "spy-python"
    spy.write_text(f'#!/bin/sh\ntouch {touched}\nexec {PYTHON} "$@"\n')
    spy.chmod(0o755)
    return spy, touched


@pytest.mark.parametrize("what", ["foreign", "newer-layout", "a-file"])
def test_a_store_that_is_not_ours_fails_before_any_host_is_contacted(
    tmp_path: Path, isolated_tmp: Path, what: str
) -> None:
    """A foreign directory, a newer layout or a file: refused before the fan-out, left as it was."""
    spy, touched = _spy_python(tmp_path)
    inv = tmp_path / "hosts.txt"
    inv.write_text(f"h transport=local python={spy} accel=tcg\n")
    store = tmp_path / "store"
    if what == "a-file":
        store.write_text("notes\n")
    else:
        store.mkdir()
        (store / "fleetcpu-store.json").write_text(
            '{"format": "fleetcpu.store", "layout": 99}\n'
            if what == "newer-layout"
            else '{"format": "someone-else"}\n'
        )
    before = sorted(p.name for p in store.iterdir()) if store.is_dir() else None
    res = run_cli("collect", str(inv), "--store", str(store), env=cli_env(tmp_path, isolated_tmp))
    assert res.returncode == 4, res.stdout + res.stderr  # StoreForeignError
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")
    assert not touched.exists(), "a host was contacted for a store that is not ours"
    assert (sorted(p.name for p in store.iterdir()) if store.is_dir() else None) == before


def test_a_store_that_cannot_be_opened_stops_the_run_and_leaves_nothing(
    tmp_path: Path, isolated_tmp: Path
) -> None:
    """A damaged index is exit 4 with the file named; no probe is left, the runs are untouched."""
    store = tmp_path / "store"
    env = cli_env(tmp_path, isolated_tmp)
    inv = tmp_path / "hosts.txt"
    inv.write_text("".join(f"h{i} transport=local accel=tcg\n" for i in range(3)))
    assert run_cli("collect", str(inv), "--store", str(store), env=env).returncode == 0
    runs_before = [r.run_id for r in Store.open(store).runs()]
    index = store / "v1" / "index" / "latest.parquet"
    index.write_bytes(b"not parquet at all")
    res = run_cli("collect", str(inv), "--store", str(store), env=env)
    assert res.returncode == 4, res.stdout + res.stderr  # StoreCorruptError
    assert res.stderr.count("\n") == 1 and "latest.parquet" in res.stderr
    assert_nothing_left(isolated_tmp)
    index.unlink()  # derived data: rebuilt from the runs, which the failed collect left alone
    assert [r.run_id for r in Store.open(store).runs()] == runs_before


def test_every_local_fault_is_a_stored_row_and_the_others_are_stored_too(
    tmp_path: Path, isolated_tmp: Path, qemu_bin: str
) -> None:
    pwned = tmp_path / "PWNED"
    a = make_replay_host(tmp_path / "replay", "Xeon-Gold-6148", microcode="0x2000065")
    b = make_replay_host(tmp_path / "replay", "EPYC-7601-32-Core", microcode="0x8001227")
    hosts = {
        "tcg": "accel=tcg",
        "replay-xeon": f"qemu={a.binary} host_root={a.root} accel=kvm",
        "replay-epyc": f"qemu={b.binary} host_root={b.root} accel=kvm",
        "no-qemu": "qemu=/nonexistent/qemu-system-x86_64 accel=tcg",
        "hostile-qemu": f"qemu='/tmp/x;touch {pwned}' accel=tcg",
        "no-python": "python=/nonexistent/python3",
        "old-python": f"python={old_python(tmp_path, '3.8')}",
        "probe-timeout": f"qemu={misbehaving_qemu.hangs(tmp_path / 'hang')} accel=tcg",
        "probe-killed": f"qemu={probe_killer_qemu(tmp_path / 'killer')} accel=tcg",
        "garbage": f"python={garbage_python(tmp_path / 'garbage')}",
    }
    inv = tmp_path / "hosts.txt"
    inv.write_text("[lab]\n" + "".join(f"{n} transport=local {s}\n" for n, s in hosts.items()))
    store = tmp_path / "store"
    res = run_cli(
        "collect", str(inv), "--store", str(store), "--timeout", "4", env=cli_env(tmp_path, isolated_tmp)
    )
    assert res.returncode == 5, res.stdout + res.stderr
    rows = latest_rows(store)
    assert set(rows) == set(hosts)
    stages = {name: row["stage"] for name, row in rows.items()}
    assert stages == {
        "tcg": None,
        "replay-xeon": None,
        "replay-epyc": None,
        "no-qemu": "qemu",
        "hostile-qemu": "qemu",
        "no-python": "python",
        "old-python": "python",
        "probe-timeout": "timeout",
        "probe-killed": "output",
        "garbage": "output",
    }, {n: (r["stage"], r["error"]) for n, r in rows.items()}
    # The ok rows: real QEMU under TCG, and two different replayed CPUs with their facts.
    assert rows["tcg"]["accel"] == "tcg" and rows["tcg"]["accel_reason"] == "requested"
    assert rows["replay-xeon"]["cpu_model_name"] != rows["replay-epyc"]["cpu_model_name"]
    assert rows["replay-xeon"]["cpu_vendor"] == "GenuineIntel"
    assert rows["replay-epyc"]["cpu_vendor"] == "AuthenticAMD"
    assert rows["replay-xeon"]["synthetic"] and rows["replay-xeon"]["microcode"] == "0x2000065"
    assert rows["replay-xeon"]["cpu_digest"] != rows["replay-epyc"]["cpu_digest"]
    # Evidence for the failures.
    assert "Python 3.8" in str(rows["old-python"]["error"])
    assert "not found" in str(rows["no-python"]["error"])
    assert "killed by signal KILL" in str(rows["probe-killed"]["error"])
    assert "PNG" in str(rows["garbage"]["error"])
    assert rows["hostile-qemu"]["error"] == f"QEMU binary not found: /tmp/x;touch {pwned}"
    assert not pwned.exists()
    assert rows["probe-timeout"]["error_code"] == "timeout"  # the probe's own timeout document
    assert rows["tcg"]["conn_python"] is None and rows["no-python"]["conn_python"] == "/nonexistent/python3"
    # The summary groups the failures by stage, in pipeline order.
    lines = res.stdout.splitlines()
    assert lines[0].startswith("collected 10 of 10 host(s)") and "ok 3" in lines[0]
    assert [ln.strip() for ln in lines if ln.startswith("  ") and not ln.startswith("    ")] == [
        "python: 2",
        "qemu: 2",
        "timeout: 1",
        "output: 2",
    ]
    assert res.stderr.strip() == "error: 7 of 10 host(s) failed; their failure rows are stored"
    assert_nothing_left(isolated_tmp)


def test_all_failed_is_exit_6(tmp_path: Path, isolated_tmp: Path) -> None:
    inv = tmp_path / "hosts.txt"
    inv.write_text("a transport=local python=/nonexistent\nb transport=local qemu=/nonexistent\n")
    res = run_cli(
        "collect", str(inv), "--store", str(tmp_path / "store"), env=cli_env(tmp_path, isolated_tmp)
    )
    assert res.returncode == 6, res.stderr
    assert "all 2 host(s) failed" in res.stderr


def _stubborn_python(directory: Path, pidfile: Path) -> str:
    """Ignores SIGTERM and EOF, prints nothing: only the orchestrator's hard stop ends it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "python3"
    path.write_text(
        f"#!{sys.executable}\nimport os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    path.chmod(0o755)
    return str(path)


def test_command_timeout_stops_then_kills_a_stubborn_command(tmp_path: Path, isolated_tmp: Path) -> None:
    pidfile = tmp_path / "pid"
    inv = parse_inventory(
        f"stubborn transport=local python={_stubborn_python(tmp_path, pidfile)}\n"
        f"hung transport=local qemu={misbehaving_qemu.hangs(tmp_path / 'h')} accel=tcg\n"
    )
    options = FleetOptions(timeout=1.5, ssh=SshSettings(grace=0.5))
    collector = Collector(options, build_transports(inv.hosts, options), load_bundle(tmp_path))
    os.environ["TMPDIR"], saved = str(isolated_tmp), os.environ.get("TMPDIR")
    outcomes: dict[str, HostOutcome] = {}
    started = time.monotonic()
    try:
        import asyncio

        asyncio.run(collector.collect(inv.hosts, lambda o: outcomes.__setitem__(o.host, o)))
    finally:
        if saved is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved
    assert time.monotonic() - started < 8
    stubborn, hung = outcomes["stubborn"], outcomes["hung"]
    assert stubborn.stage == "timeout" and "closed hard" in (stubborn.error or "")
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or ") Z " in Path(f"/proc/{pid}/stat").read_text()
    # The probe's own deadline (inside ours) gives a document naming the QEMU that hung.
    assert hung.stage is None and hung.document is not None and hung.document.stage == "timeout"
    assert_nothing_left(isolated_tmp)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.plain
def test_interrupting_a_run_stores_what_is_done_and_stops_the_rest(
    tmp_path: Path, isolated_tmp: Path, sig: signal.Signals
) -> None:
    inv = tmp_path / "hosts.txt"
    inv.write_text(
        "fast transport=local accel=tcg\n"
        f"slow transport=local qemu={misbehaving_qemu.hangs(tmp_path / 'h')} accel=tcg\n"
    )
    store = tmp_path / "store"
    env = {**os.environ, **cli_env(tmp_path, isolated_tmp)}
    proc = subprocess.Popen(
        [PYTHON, "-m", "fleetcpu", "collect", str(inv), "--store", str(store), "--timeout", "120"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(isolated_tmp.rglob("fleetcpu-probe-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # the fast host is done by now; the slow one waits on its hung QEMU
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted: 2 of 2 host(s) stored" in err
    [run] = Store.open(store).runs()
    assert run.status == "interrupted"
    rows = latest_rows(store)
    assert rows["fast"]["status"] == "ok"
    assert rows["slow"]["stage"] == "interrupted"
    assert_nothing_left(isolated_tmp)


def test_progress_bar_only_on_a_terminal(tmp_path: Path, isolated_tmp: Path) -> None:
    """Through the runner with a fake terminal: a bar while running, a clean line after."""
    from fleetcpu.collect.collect_fleet import run_collect

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    inv = tmp_path / "hosts.txt"
    inv.write_text("a transport=local python=/nonexistent\n")
    out, err = io.StringIO(), Tty()
    with pytest.raises(Exception, match="all 1 host"):
        run_collect(
            str(inv),
            FleetOptions(),
            store_dir=str(tmp_path / "store"),
            out=out,
            err=err,
            bundle=load_bundle(tmp_path),
        )
    assert "[" in err.getvalue() and "1/1" in err.getvalue() and err.getvalue().endswith("\r\x1b[K")
    assert out.getvalue().startswith("collected 1 of 1 host(s)")
