"""``fleetcpu blockers`` and ``fleetcpu check`` in a subprocess, on a store built by ``fleetcpu import``.

Probe documents come from the real probe run against replay hosts (real
CPUs' captures behind the stand-in QEMU) and from this host's own probes;
the store is written by the real ``import`` command. What is held: exit
codes (0, 2, 3, 20, 21, 22, 23, 25), the one-line errors, the table and the
JSON documents against their schemas, and every way a candidate is loaded
(stored member, stored non-member, probe document not stored) or refused
before any computation (a QEMU without the pool's machine type).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleetcpu.explain.printout import BLOCKERS_JSON_SCHEMA, CHECK_JSON_SCHEMA

from .conftest import PYTHON, REPO, invoke
from .support.replay.hosts import make_replay_host

GOLDEN = REPO / "tests" / "golden"


def probe_doc(tmp: Path, name: str, *args: str, hostname: str) -> str:
    """The real probe against a fresh replay host of capture ``name``: the document text."""
    host = make_replay_host(tmp, name, hostname=hostname)
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", *host.probe_args(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def aged(text: str, age: timedelta) -> str:
    doc = json.loads(text)
    moment = datetime.now(UTC) - age
    doc["time"] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return json.dumps(doc)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("explain-fleet")
    store = str(tmp / "store")
    docs = tmp / "docs"
    docs.mkdir()

    def add(pool: str, host: str, capture: str, *args: str, age: timedelta = timedelta(minutes=5)) -> Path:
        path = docs / f"{host}.json"
        path.write_text(aged(probe_doc(tmp / "hosts", capture, "--accel", "kvm", *args, hostname=host), age))
        if pool:
            res = invoke("import", "--store", store, "--pool", pool, "--host", host, str(path))
            assert res.returncode == 0, res.stderr
        return path

    add("prod", "gold-0", "Xeon-Gold-6130")
    add("prod", "gold-1", "Xeon-Gold-6130")
    add("prod", "e3", "Xeon-E3-1225-v5")
    add("prod", "plat", "Xeon-Platinum-9242")
    add("prod", "stale", "Xeon-E5-2650", age=timedelta(days=30))
    add("spare", "newgold", "Xeon-Gold-6130")
    add("mixed", "mixed-intel", "Xeon-Gold-6130")
    add("mixed", "mixed-amd", "Ryzen-9-3900X-12-Core")
    add("ryzen82", "ryzen-8", "qemu-8.2-Ryzen-9-3900X")
    add("ryzen10", "ryzen-10", "qemu-10.0-Ryzen-9-3900X")
    unstored = {
        "gold-doc": add("", "gold-doc", "Xeon-Gold-6130"),
        "old-doc": add("", "old-doc", "Core-i5-2500"),
        "qemu5-doc": add("", "qemu5-doc", "qemu-5.0-Xeon-E3-1245-v5"),
    }
    res = invoke(
        "import",
        "--store",
        store,
        "--pool",
        "local",
        "--host",
        "this-host",
        str(GOLDEN / "probe-kvm-q35.json"),
    )
    assert res.returncode == 0, res.stderr
    return {"store": store, "tmp": tmp, "docs": unstored}


def cli(fleet: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI on the fleet's store; pool ``local`` is this host's golden probe, years old."""
    max_age = "36500d" if "local" in args else "7d"
    return invoke(*args, "--store", fleet["store"], "--max-age", max_age)


# --------------------------------------------------------------------------- blockers


@pytest.mark.plain
def test_blockers_table_puts_the_cheapest_win_first(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "blockers", "--pool", "prod")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("pool prod: 4 host(s), pc-q35-0.0, kvm, GenuineIntel; model ")
    first = out.index("hosts: ")
    assert out[first:].startswith("hosts: e3\n")  # one host, AVX-512 and a better model back
    assert "avx512f" in out[first : out.index("\n\n", first)]
    assert "Features the pool does not get" in out and "not-offered (e3): " in out
    assert "Models some hosts block" in out
    assert "Members not counted (1):\n  stale (stale): " in out


def test_blockers_json_is_the_documented_shape(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "blockers", "--pool", "prod", "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, BLOCKERS_JSON_SCHEMA)
    assert doc["schema"] == "fleetcpu.blockers/1"
    assert doc["groups"][0]["hosts"] == ["e3"] and "avx512f" in doc["groups"][0]["gain"]["features"]
    assert [g["hosts"] for g in doc["groups"]][1:] in (
        [["gold-0", "gold-1"], ["plat"]],
        [["plat"], ["gold-0", "gold-1"]],
    )
    assert [(m["host"], m["code"]) for m in doc["missing"]] == [("stale", "stale")]
    avx = next(f for f in doc["features"] if f["feature"] == "avx512f")
    assert (avx["reason"], avx["hosts"]) == ("not-offered", ["e3"])


def test_blockers_errors_are_the_baselines(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "blockers", "--pool", "nope")
    assert (res.returncode, res.stdout) == (20, "") and res.stderr.startswith("error: unknown pool")
    res = cli(fleet, "blockers", "--pool", "mixed")
    assert res.returncode == 23 and "AuthenticAMD: mixed-amd; GenuineIntel: mixed-intel" in res.stderr
    res = cli(fleet, "blockers", "--pool", "prod", "--strict")
    assert res.returncode == 21 and "--strict and 1 member(s) missing: stale" in res.stderr
    assert len(res.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- check


def test_a_stored_host_of_another_pool_that_can_join(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "check", "--pool", "prod", "newgold")
    assert (res.returncode, res.stderr) == (0, ""), res.stderr
    assert res.stdout.startswith("newgold (store) vs pool prod (pc-q35-0.0, kvm): CAN join")


@pytest.mark.plain
def test_a_member_holding_the_pool_back_is_25(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "check", "--pool", "prod", "e3")
    assert res.returncode == 25
    assert "CANNOT join (compared with the pool without it)" in res.stdout
    assert "  - avx512f: e3 does not offer it" in res.stdout
    [line] = res.stderr.splitlines()
    assert line.startswith("error: e3 would lower pool prod: removes ")
    assert "the named model changes from " in line
    res = cli(fleet, "check", "--pool", "prod", "e3", "--format", "json")
    assert res.returncode == 25
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, CHECK_JSON_SCHEMA)
    assert (doc["host"], doc["source"], doc["member"], doc["can_join"]) == ("e3", "store", True, False)
    assert {"avx512f", "avx512bw"} <= {c["feature"] for c in doc["changes"] if c["kind"] == "feature-removed"}
    assert [(m["host"], m["code"]) for m in doc["missing"]] == [("stale", "stale")]


def test_probe_documents_not_stored(fleet: dict[str, Any]) -> None:
    docs = fleet["docs"]
    res = cli(fleet, "check", "--pool", "prod", str(docs["gold-doc"]), "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, CHECK_JSON_SCHEMA)
    assert (doc["host"], doc["source"], doc["member"], doc["can_join"]) == (
        "gold-doc",
        "document",
        False,
        True,
    )
    res = cli(fleet, "check", "--pool", "prod", str(docs["old-doc"]))
    assert res.returncode == 25 and "old-doc would lower pool prod" in res.stderr
    # Nothing was stored by checking.
    hosts = invoke("hosts", "--store", fleet["store"], "--format", "json")
    assert "gold-doc" not in hosts.stdout and "old-doc" not in hosts.stdout


def test_bad_documents_are_exit_3(fleet: dict[str, Any]) -> None:
    tmp: Path = fleet["tmp"]
    (tmp / "bad.json").write_text('{"schema": "fleetcpu.probe/1", "status": 7}')
    for arg in (str(tmp / "bad.json"), str(tmp / "absent.json")):
        res = cli(fleet, "check", "--pool", "prod", arg)
        assert (res.returncode, res.stdout) == (3, ""), res.stderr
        assert res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1


def test_a_document_of_the_other_accelerator_is_21(fleet: dict[str, Any]) -> None:
    tmp: Path = fleet["tmp"]
    probe = invoke("probe", "--accel", "tcg", env={"TMPDIR": str(tmp)})
    assert probe.returncode == 0, probe.stderr
    (tmp / "this-tcg.json").write_text(probe.stdout)
    res = cli(fleet, "check", "--pool", "local", str(tmp / "this-tcg.json"))
    assert res.returncode == 21 and "probed under tcg, the pool uses kvm" in res.stderr


def test_a_qemu_without_the_machine_type_cannot_join(fleet: dict[str, Any]) -> None:
    # A document: its QEMU 5.0 lists no pc-q35-7.2.
    res = cli(fleet, "check", "--pool", "local", str(fleet["docs"]["qemu5-doc"]), "--format", "json")
    assert res.returncode == 25
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, CHECK_JSON_SCHEMA)
    assert [c["kind"] for c in doc["changes"]] == ["machine-type-missing"]
    assert "does not list it" in doc["changes"][0]["message"]
    # A stored host: QEMU 8.2 predates pc-q35-10.0.
    res = cli(fleet, "check", "--pool", "ryzen10", "ryzen-8")
    assert res.returncode == 25
    assert "cannot run the pool's machine type pc-q35-10.0: its QEMU 8.2.0 predates it" in res.stderr


def test_a_newer_qemu_never_probed_with_the_machine_type_is_22(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "check", "--pool", "ryzen82", "ryzen-10")
    assert res.returncode == 22
    assert "ryzen-10 was not probed with the pool's machine type pc-q35-8.2" in res.stderr
    assert "--machine-type pc-q35-8.2" in res.stderr


def test_an_unknown_host_is_a_usage_error(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "check", "--pool", "prod", "no-such-host")
    assert res.returncode == 2 and "neither a probe document nor a host in the store" in res.stderr


def test_another_vendor_is_refused(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "check", "--pool", "prod", "mixed-amd", "--format", "json")
    assert res.returncode == 25
    doc = json.loads(res.stdout)
    assert [c["kind"] for c in doc["changes"]] == ["vendor-differs"]
    assert (doc["changes"][0]["before"], doc["changes"][0]["after"]) == ("GenuineIntel", "AuthenticAMD")


def test_the_only_member_and_a_mixed_pool(fleet: dict[str, Any]) -> None:
    res = cli(fleet, "check", "--pool", "ryzen82", "ryzen-8")
    assert res.returncode == 0  # itself, the only member: nothing to lower
    res = cli(fleet, "check", "--pool", "mixed", "newgold")
    assert res.returncode == 23  # the pool itself mixes vendors: no answer, as for baseline
