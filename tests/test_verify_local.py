"""``fleetcpu verify`` end to end over ``transport=local``: the real CLI in a subprocess, the real
bootstrap and host half, the real QEMU; refusals before contact, failures as rows, nothing left.

Each run gets its own TMPDIR, inherited by the local "hosts", so whatever the host half leaves
(a directory, a QEMU) is found by it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import jsonschema

from fleetcpu.store import Store

from .conftest import PYTHON, REPO, invoke
from .support import misbehaving_qemu
from .support.sshd import wait_no_processes
from .test_collect_units import python39

REPORT_SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "verify-report-1.json").read_text())


def env(tmp_path: Path, tmpdir: Path) -> dict[str, str]:
    return {"TMPDIR": str(tmpdir), "XDG_CACHE_HOME": str(tmp_path / "cache"), "SSH_AUTH_SOCK": ""}


def assert_nothing_left(tmpdir: Path) -> None:
    assert wait_no_processes({f"TMPDIR={tmpdir}".encode()}) == []
    assert list(tmpdir.iterdir()) == [], "files left in the hosts' TMPDIR"


def collected(tmp_path: Path, tmpdir: Path, text: str) -> tuple[Path, Path]:
    inv = tmp_path / "hosts.txt"
    inv.write_text(text)
    store = tmp_path / "store"
    res = invoke("collect", str(inv), "--store", str(store), env=env(tmp_path, tmpdir))
    assert res.returncode == 0, res.stdout + res.stderr
    return inv, store


def test_a_pool_the_store_or_inventory_does_not_know_is_20_and_nothing_is_written(
    tmp_path: Path, isolated_tmp: Path
) -> None:
    inv, store = collected(tmp_path, isolated_tmp, "h1 transport=local pool=lab accel=tcg\n")
    runs = Store.open(store).runs()
    e = env(tmp_path, isolated_tmp)
    res = invoke("verify", "--pool", "prod", "--store", str(store), env=e)
    assert res.returncode == 20, res.stderr
    assert res.stderr == "error: unknown pool 'prod'; pools in the store: lab\n"
    res = invoke("verify", "--pool", "prod", str(inv), "--store", str(store), env=e)
    assert res.returncode == 20, res.stderr
    assert "no host of pool 'prod'; its pools: lab" in res.stderr
    res = invoke("verify", "--pool", "lab", "--store", str(store), "--cpu", "qemu64 ,+x", env=e)
    assert res.returncode == 2, res.stderr
    res = invoke("verify", "--pool", "lab", "--store", str(store), env=e)  # only TCG data
    assert res.returncode == 21 and "probed-under-tcg" in res.stderr, res.stderr
    assert Store.open(store).runs() == runs, "a refused verify wrote nothing"
    res = invoke("verify", "--pool", "lab", "--store", str(tmp_path / "empty"), env=e)
    assert res.returncode == 21 and "store is empty" in res.stderr, res.stderr
    assert not (tmp_path / "empty").exists()
    assert_nothing_left(isolated_tmp)


def test_stored_specs_reach_local_members_and_an_imported_one_is_a_failure_row(
    tmp_path: Path, isolated_tmp: Path
) -> None:
    # h2's stored python= is the hosts' oldest supported Python: the host half runs on it.
    _, store = collected(
        tmp_path,
        isolated_tmp,
        "h1 transport=local pool=lab accel=tcg\n"
        f"h2 transport=local pool=lab accel=tcg python={python39(tmp_path)}\n",
    )
    conn = {r["host"]: r["conn_python"] for r in Store.open(store).table("hosts").to_pylist()}
    assert conn == {"h1": None, "h2": python39(tmp_path)}
    e = env(tmp_path, isolated_tmp)
    probe = invoke("probe", "--accel", "tcg", env=e)
    assert probe.returncode == 0, probe.stderr
    doc = tmp_path / "air-gapped.json"
    doc.write_text(probe.stdout)
    res = invoke("import", str(doc), "--pool", "lab", "--host", "airgap", "--store", str(store), env=e)
    assert res.returncode == 0, res.stderr
    res = invoke(
        "verify", "--pool", "lab", "--accel", "tcg", "--store", str(store), "--format", "json", env=e
    )
    assert res.returncode == 24, res.stderr
    report = json.loads(res.stdout)
    jsonschema.validate(report, REPORT_SCHEMA)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert {h: v["verdict"] for h, v in hosts.items()} == {"airgap": "failed", "h1": "pass", "h2": "pass"}
    assert hosts["airgap"]["error_code"] == "no-route" and "give an inventory" in hosts["airgap"]["error"]
    assert res.stderr.splitlines() == [
        f"verify of pool lab FAILED: 2 of 3 host(s) passed, failed 1 in "
        f"{report_elapsed(res.stderr)}s; run {report['run_id']}",
        f"error: 1 of 3 host(s) of pool 'lab' did not pass; their rows are stored (run {report['run_id']})",
    ]
    assert_nothing_left(isolated_tmp)


def report_elapsed(stderr: str) -> str:
    return stderr.split(" in ", 1)[1].split("s;", 1)[0]


def test_a_hung_qemu_is_a_timeout_row_and_is_stopped(tmp_path: Path, isolated_tmp: Path) -> None:
    inv = tmp_path / "hosts.txt"
    inv.write_text(
        f"ok transport=local pool=lab\n"
        f"hung transport=local pool=lab qemu={misbehaving_qemu.hangs(tmp_path / 'h')}\n"
    )
    res = invoke(
        "verify",
        "--pool",
        "lab",
        str(inv),
        "--store",
        str(tmp_path / "store"),
        "--accel",
        "tcg",
        "--cpu",
        "qemu64",
        "--machine-type",
        "pc-i440fx-2.0",
        "--timeout",
        "3",
        env=env(tmp_path, isolated_tmp),
    )
    assert res.returncode == 24, res.stdout + res.stderr
    rows = {r["host"]: r for r in Store.open(tmp_path / "store").table("verify").to_pylist()}
    assert rows["ok"]["verdict"] == "pass" and rows["ok"]["resolved_machine_type"] == "pc-i440fx-2.0"
    hung = rows["hung"]
    assert (hung["verdict"], hung["stage"], hung["error_code"]) == ("failed", "timeout", "timeout")
    assert "did not answer" in hung["error"]
    assert_nothing_left(isolated_tmp)


def test_sigterm_stores_what_is_done_and_stops_the_rest(tmp_path: Path, isolated_tmp: Path) -> None:
    inv = tmp_path / "hosts.txt"
    inv.write_text(
        f"fast transport=local pool=lab\n"
        f"slow transport=local pool=lab qemu={misbehaving_qemu.hangs(tmp_path / 'h')}\n"
    )
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "fleetcpu",
            "verify",
            "--pool",
            "lab",
            str(inv),
            "--store",
            str(store),
            "--accel",
            "tcg",
            "--cpu",
            "qemu64",
            "--machine-type",
            "q35",
            "--timeout",
            "120",
        ],
        cwd=REPO,
        env={**os.environ, **env(tmp_path, isolated_tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(isolated_tmp.rglob("fleetcpu-verify-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the fast host is done by now; the slow one waits on its hung QEMU
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted: 2 host(s) stored" in err
    [run] = Store.open(store).runs()
    assert (run.command, run.status, run.hosts_ok, run.hosts_failed) == ("verify", "interrupted", 1, 1)
    rows = {r["host"]: r for r in Store.open(store).table("verify").to_pylist()}
    assert rows["fast"]["verdict"] == "pass"
    assert (rows["slow"]["stage"], rows["slow"]["verdict"]) == ("interrupted", "failed")
    assert out.splitlines()[-1].startswith("interrupted: verify of pool lab FAILED: 1 of 2")
    assert_nothing_left(isolated_tmp)
