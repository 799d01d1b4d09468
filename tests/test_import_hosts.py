"""``fleetcpu import`` and ``fleetcpu hosts`` through the real CLI in a subprocess."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from fleetcpu.store import Store

from .conftest import invoke
from .test_store_support import (
    all_files,
    at,
    base_time,
    failed_document,
    hosts_json,
    ok_document,
    renamed,
    run_file,
    write_document,
)

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_import_then_hosts_json_contract(tmp_path: Path) -> None:
    store = tmp_path / "store"
    t = base_time()
    files = [
        write_document(tmp_path / "kvm01.json", at(renamed(ok_document("kvm"), "kvm01"), t)),
        write_document(tmp_path / "kvm02.json", at(renamed(failed_document(), "kvm02"), t)),
        write_document(
            tmp_path / "kvm01-later.json", at(renamed(ok_document("tcg"), "kvm01"), t + timedelta(hours=1))
        ),
    ]
    res = invoke("import", "--store", str(store), "--pool", "prod", *map(str, files))
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 3

    res = invoke("hosts", "--store", str(store), "--format", "json")
    assert res.returncode == 0, res.stderr
    hosts = hosts_json(res.stdout)
    assert [h["host"] for h in hosts] == ["kvm01", "kvm02"]
    required = {"host", "pool", "status", "stage", "error", "accel", "qemu_version", "run", "collected_at"}
    for h in hosts:
        assert required <= set(h)
        assert h["status"] in ("ok", "failed")
        assert isinstance(h["collected_at"], str) and RFC3339_UTC.match(h["collected_at"])
        assert h["pool"] == "prod"
    kvm01, kvm02 = hosts
    # Each file is a run of its own, timed by its document.
    assert kvm01["collected_at"] == "2026-03-01T13:00:00.123Z"
    assert str(kvm01["run"]).startswith("20260301T130000.123Z-")
    assert (kvm01["status"], kvm01["accel"], kvm01["stage"], kvm01["error"]) == ("ok", "tcg", None, None)
    assert kvm01["qemu_version"] == ok_document().qemu.version  # type: ignore[union-attr]
    last_ok = kvm01["last_ok"]
    assert isinstance(last_ok, dict) and last_ok["kvm"]["run"].startswith("20260301T120000.123Z")
    failed = failed_document()
    assert (kvm02["status"], kvm02["stage"], kvm02["error"], kvm02["error_code"]) == (
        "failed",
        failed.stage,
        failed.error,
        failed.error_code,
    )
    assert kvm02["accel"] is None and kvm02["qemu_version"] is None

    runs = Store.open(store).runs()
    assert [r.command for r in runs] == ["import"] * 3
    assert {r.inventory for r in runs} == {str(f) for f in files}

    table = invoke("hosts", "--store", str(store))
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["HOST", "POOL", "STATUS"]
    assert lines[1].split()[:4] == ["kvm01", "prod", "ok", "tcg"]
    assert lines[2].split()[:3] == ["kvm02", "prod", "failed"]
    assert failed.error is not None and failed.error.split()[0] in lines[2]


def test_pool_filter_unknown_pool_and_empty_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    doc = write_document(tmp_path / "d.json", ok_document())
    assert invoke("import", "--store", str(store), "--host", "a", "--pool", "p1", str(doc)).returncode == 0
    assert invoke("import", "--store", str(store), "--host", "b", str(doc)).returncode == 0
    res = invoke("hosts", "--store", str(store), "--format", "json", "--pool", "p1")
    assert [h["host"] for h in hosts_json(res.stdout)] == ["a"]
    res = invoke("hosts", "--store", str(store), "--format", "json")
    assert [(h["host"], h["pool"]) for h in hosts_json(res.stdout)] == [("b", "default"), ("a", "p1")]
    res = invoke("hosts", "--store", str(store), "--pool", "p9")
    assert res.returncode == 20
    assert res.stderr == "error: unknown pool 'p9'; pools in the store: default, p1\n"

    for empty in (tmp_path / "nothing-here", tmp_path / "empty-dir"):
        if empty.name == "empty-dir":
            empty.mkdir()
        res = invoke("hosts", "--store", str(empty))
        assert res.returncode == 21
        assert res.stderr == (f"error: {empty}: store is empty: run fleetcpu collect or import first\n")
        assert not empty.exists() or list(empty.iterdir()) == []  # reading creates nothing


def test_store_location_precedence(tmp_path: Path) -> None:
    doc = write_document(tmp_path / "d.json", ok_document())
    xdg, env_store, flag = tmp_path / "xdg", tmp_path / "env", tmp_path / "flag"
    env = {"XDG_DATA_HOME": str(xdg), "FLEETCPU_STORE": ""}
    assert invoke("import", "--host", "x", str(doc), env=env).returncode == 0
    assert (xdg / "fleetcpu" / "fleetcpu-store.json").exists()
    env["FLEETCPU_STORE"] = str(env_store)
    assert invoke("import", "--host", "y", str(doc), env=env).returncode == 0
    assert invoke("import", "--host", "z", "--store", str(flag), str(doc), env=env).returncode == 0
    for root, host in ((xdg / "fleetcpu", "x"), (env_store, "y"), (flag, "z")):
        assert [s.host for s in Store.open(root).latest()] == [host]
    res = invoke("hosts", "--format", "json", env=env)
    assert [h["host"] for h in hosts_json(res.stdout)] == ["y"]
    home = tmp_path / "home"
    res = invoke(
        "import", "--host", "w", str(doc), env={"HOME": str(home), "XDG_DATA_HOME": "", "FLEETCPU_STORE": ""}
    )
    assert res.returncode == 0, res.stderr
    assert (home / ".local/share/fleetcpu/fleetcpu-store.json").exists()


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the error must name)."""
    good = json.loads(ok_document().to_json())
    cases: dict[str, tuple[str, str]] = {
        "not-json": ("{ this is not json", "not JSON"),
        "wrong-schema": (json.dumps({**good, "schema": "fleetcpu.probe/9"}), "schema"),
        "not-a-probe": (json.dumps({"hello": "world"}), "schema"),
        "wrong-type": (json.dumps({**good, "duration_s": "fast"}), "duration_s"),
        "deep-wrong-type": (
            json.dumps(
                {
                    **good,
                    "machine_types": [
                        {
                            **good["machine_types"][0],
                            "feature_words": [{"leaf": "one", "subleaf": 0, "register": "eax", "bits": 1}],
                        }
                    ],
                }
            ),
            "machine_types[0].feature_words[0].leaf",
        ),
        "bad-time": (json.dumps({**good, "time": "yesterday"}), "time"),
    }
    out = {}
    for name, (text, key) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        out[name] = (path, key)
    return out


@pytest.mark.parametrize(
    "case", ["not-json", "wrong-schema", "not-a-probe", "wrong-type", "deep-wrong-type", "bad-time"]
)
def test_one_bad_file_rejects_the_whole_import(tmp_path: Path, case: str) -> None:
    store = tmp_path / "store"
    good1 = write_document(tmp_path / "g1.json", renamed(ok_document(), "g1"))
    good2 = write_document(tmp_path / "g2.json", renamed(ok_document(), "g2"))
    assert invoke("import", "--store", str(store), str(good1)).returncode == 0
    before = all_files(store)
    bad, key = _bad_files(tmp_path)[case]
    res = invoke("import", "--store", str(store), str(good2), str(bad), str(good1))
    assert res.returncode == 3, res.stderr
    assert res.stderr.startswith(f"error: {bad}: ") and key in res.stderr
    assert len(res.stderr.splitlines()) == 1 and res.stdout == ""
    assert all_files(store) == before  # byte for byte: nothing stored, nothing rewritten


def test_a_bad_file_into_a_new_store_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    res = invoke("import", "--store", str(tmp_path / "new"), str(bad))
    assert res.returncode == 3 and not (tmp_path / "new").exists()
    res = invoke("import", "--store", str(tmp_path / "new"), str(tmp_path / "missing.json"))
    assert res.returncode == 3 and "missing.json" in res.stderr


def test_host_identity(tmp_path: Path) -> None:
    store = tmp_path / "store"
    anonymous = write_document(tmp_path / "anon.json", renamed(ok_document(), None))
    res = invoke("import", "--store", str(store), str(anonymous))
    assert res.returncode == 3 and "host.hostname" in res.stderr and "--host" in res.stderr
    res = invoke("import", "--store", str(store), "--host", "bad name", str(anonymous))
    assert res.returncode == 3
    res = invoke("import", "--store", str(store), "--host", "inv-name", str(anonymous))
    assert res.returncode == 0, res.stderr
    named = write_document(tmp_path / "named.json", renamed(ok_document(), "probe-says"))
    assert invoke("import", "--store", str(store), str(named)).returncode == 0
    states = Store.open(store).latest()
    assert [s.host for s in states] == ["inv-name", "probe-says"]
    # The probe's hostname stays a fact of the row, not the key.
    rows = {r["host"]: r for r in Store.open(store).table("hosts").to_pylist()}
    assert rows["inv-name"]["hostname"] is None
    assert rows["inv-name"]["conn_transport"] == "import"


def test_reimporting_the_same_file_adds_a_run_but_no_detail(tmp_path: Path) -> None:
    store = tmp_path / "store"
    doc = write_document(tmp_path / "d.json", renamed(ok_document(), "kvm01"))
    assert invoke("import", "--store", str(store), str(doc)).returncode == 0
    detail_before = {f for f in all_files(store) if "/models/" in f}
    assert invoke("import", "--store", str(store), str(doc)).returncode == 0
    assert {f for f in all_files(store) if "/models/" in f} == detail_before
    s = Store.open(store)
    assert len(s.runs()) == 2
    snap = s.snapshots(["kvm01"], "tcg")["kvm01"]
    assert tuple(snap.machines.values()) == ok_document().machine_types
    assert run_file(store, "models", snap.detail_run).exists()
