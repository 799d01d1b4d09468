"""The baseline on replayed fleets: the real probe, the real store (``fleetcpu import``), the real CLI.

Three things are held here:

* ``tests/support/replay/members.py`` (what the property tests compute on) equals
  what the real probe records through the stand-in, capture by capture;
* the stand-in's named-model expansions follow ``replay_qemu.MODEL_RULE``;
* ``fleetcpu baseline`` in a subprocess, on stores built by ``fleetcpu
  import`` from probe documents (the stand-in's through the real probe, and
  real ones from this host in ``tests/golden``): exit codes 0/20/21/22/23,
  ``missing`` codes, warnings, policy flags, the JSON contract.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleetcpu.baseline.select import select_members
from fleetcpu.errors import NoUsableDataError
from fleetcpu.outcome import ConnectionSpec, HostOutcome
from fleetcpu.probe.document import ProbeDocument
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.store import Store

from .conftest import PYTHON, REPO, invoke
from .support.replay import cpumap, replay_qemu
from .support.replay import members as replay
from .support.replay.hosts import catalogue, make_replay_host, run_fake

SCHEMA = json.loads((REPO / "fleetcpu" / "schemas" / "baseline-1.json").read_text())
GOLDEN = REPO / "tests" / "golden"
CASES = [(c.name, a) for c in catalogue() for a in replay.accels(c.name)]


def probe_doc(
    tmp: Path,
    name: str,
    *args: str,
    microcode: str = "0x1",
    nested: bool = False,
    hostname: str | None = None,
) -> tuple[int, str]:
    """The real probe CLI against a fresh replay host: (exit code, document text)."""
    host = make_replay_host(tmp, name, microcode=microcode, nested=nested, hostname=hostname)
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", *host.probe_args(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )
    return res.returncode, res.stdout


# --------------------------------------------------------------------------- the shared helper


@pytest.mark.parametrize(("name", "accel"), CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_members_helper_equals_the_probe_through_the_stand_in(name: str, accel: str, tmp_path: Path) -> None:
    rc, text = probe_doc(tmp_path, name, "--accel", accel, microcode="0x2a")
    assert rc == 0, text
    doc = document_from_json(text, name)
    [mp] = doc.machine_types
    assert dataclasses.replace(mp, errors=()) == replay.machine_probe(name, accel)
    assert doc.qemu is not None and doc.qemu.version == replay.qemu_version(name)
    assert doc.host.cpu == replay.facts(name, microcode="0x2a").cpu
    # The models the probe could expand carry features; the rest say why not.
    asked = {
        f.query.rsplit(" ", 1)[1]
        for f in mp.errors
        if f.query.startswith("query-cpu-model-expansion static ")
    }
    for model in mp.models:
        expandable = model.usable and model.alias_of is None and model.name not in ("host", "max", "base")
        assert (model.features is not None) == (expandable and model.name not in asked), model


# --------------------------------------------------------------------------- the stand-in's rule


def test_named_model_expansion_follows_cpu_map(tmp_path: Path) -> None:
    host = make_replay_host(tmp_path, "Core-i7-8550U")
    with run_fake(host) as run:
        run.negotiate()
        reply = run.qmp.command(
            "query-cpu-model-expansion", {"type": "static", "model": {"name": "Skylake-Client-v1"}}
        )
        missing_map = run.qmp.command(
            "query-cpu-model-expansion", {"type": "static", "model": {"name": "Icelake-Client-v2"}}
        )
        via_twin = run.qmp.command(
            "query-cpu-model-expansion", {"type": "static", "model": {"name": "Icelake-Client-v1"}}
        )
        unknown = run.qmp.command(
            "query-cpu-model-expansion", {"type": "static", "model": {"name": "NoSuchCPU"}}
        )
        full = run.qmp.command(
            "query-cpu-model-expansion", {"type": "full", "model": {"name": "Skylake-Client-v1"}}
        )
    props = reply["return"]["model"]["props"]
    assert reply["return"]["model"]["name"] == "base" and all(v is True for v in props.values())
    table = cpumap.FeatureTable(cpumap_dir() / "x86_features.xml")
    libvirt = cpumap.load_models(cpumap_dir())["Skylake-Client"].features
    assert {cpumap.fold(k) for k in props} <= {
        cpumap.fold(table.get(f).name)  # type: ignore[union-attr]
        for f in libvirt
    }
    assert "pclmulqdq" in props and "pclmuldq" not in props  # QEMU's spelling, not libvirt's
    assert not [k for k in props if k.startswith("vmx-")], "libvirt lists vmx-*, QEMU drops them"
    assert missing_map["error"]["class"] == "GenericError"
    assert "cpu_map has no such model" in missing_map["error"]["desc"]
    assert "return" in via_twin
    assert unknown["error"]["desc"] == "CPU model 'NoSuchCPU' not found"
    assert "not captured" in full["error"]["desc"]
    answers = [e for e in host.qmp_log() if e["execute"] == "query-cpu-model-expansion"]
    assert [e["answer"] for e in answers] == ["synthetic", "refused", "synthetic", "error", "refused"]
    assert answers[2]["source"] == "cpu_map Icelake-Client (MODEL_RULE)"
    assert replay_qemu.ANSWERS["expansion static <named model>"]["cputest"][0] == replay_qemu.SYNTHETIC


def cpumap_dir() -> Path:
    return catalogue()[0].path.parent.parent / "cpu_map"


# --------------------------------------------------------------------------- the CLI on stores


def _shift(text: str, age: timedelta) -> str:
    """The document as if probed ``age`` ago (the importer times a run by the document)."""
    doc = json.loads(text)
    moment = datetime.now(UTC) - age
    doc["time"] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return json.dumps(doc)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """A store built by ``fleetcpu import``, and a runner of ``fleetcpu baseline`` on it."""
    tmp = tmp_path_factory.mktemp("fleet")
    store = tmp / "store"
    docs = tmp / "docs"
    docs.mkdir()

    def add(
        pool: str, host: str, name: str, *args: str, age: timedelta = timedelta(minutes=5), **kw: Any
    ) -> None:
        n = len(list(docs.iterdir()))
        rc, text = probe_doc(tmp / "hosts" / f"{host}-{n}", name, *args, **kw)
        assert rc == (10 if "--qemu-binary" in args else 0), text
        path = docs / f"{host}-{n}.json"
        path.write_text(_shift(text, age))
        res = invoke("import", "--store", str(store), "--pool", pool, "--host", host, str(path))
        assert res.returncode == 0, res.stderr

    intel = "Xeon-E3-1225-v5", "Xeon-E3-1245-v5", "Xeon-Gold-6130"
    for i, name in enumerate(intel):
        add("intel", f"intel-{i}", name, "--accel", "kvm", microcode=f"0x{0xD6 + i:x}")
    add("intel", "stale", "Xeon-E5-2650", "--accel", "kvm", age=timedelta(days=30))
    add("intel", "tcg-only", "qemu-5.0-Xeon-E3-1245-v5", "--accel", "tcg")
    add("intel", "dead", "Xeon-E5-2650", "--qemu-binary", "/nonexistent/qemu")
    add("intel", "flaky", "Xeon-E5-2650-v4", "--accel", "kvm", age=timedelta(days=2))
    add("intel", "flaky", "Xeon-E5-2650-v4", "--qemu-binary", "/nonexistent/qemu")
    add("mixed", "mixed-intel", "Xeon-Gold-6130", "--accel", "kvm")
    add("mixed", "mixed-amd", "Ryzen-9-3900X-12-Core", "--accel", "kvm")
    add("split", "split-0", "Xeon-Gold-6130", "--accel", "kvm")
    add("split", "split-1", "qemu-5.0-Xeon-E3-1245-v5", "--accel", "kvm")
    add("nested", "nested-0", "Xeon-Platinum-9242", "--accel", "kvm", nested=True)
    add("nested", "nested-1", "Xeon-Platinum-9242", "--accel", "kvm", nested=True)
    add("ryzen", "ryzen-10", "qemu-10.0-Ryzen-9-3900X", "--accel", "kvm")
    add("ryzen", "ryzen-10", "qemu-10.0-Ryzen-9-3900X", "--accel", "tcg")
    for golden, pool in (("probe-kvm-q35.json", "local"), ("probe-tcg-i440fx-2.0.json", "local-tcg")):
        res = invoke(
            "import", "--store", str(store), "--pool", pool, "--host", f"this-{pool}", str(GOLDEN / golden)
        )
        assert res.returncode == 0, res.stderr

    def baseline(*args: str) -> tuple[int, Any, str]:
        res = invoke("baseline", "--store", str(store), *args)
        if "json" in args and res.returncode == 0:
            doc = json.loads(res.stdout)
            jsonschema.validate(doc, SCHEMA)
            return res.returncode, doc, res.stderr
        return res.returncode, res.stdout, res.stderr

    return baseline


def test_pool_with_missing_and_flaky_members(fleet: Callable[..., Any]) -> None:
    rc, doc, err = fleet("--pool", "intel", "--format", "json")
    assert rc == 0, err
    assert [h["host"] for h in doc["hosts"]] == ["flaky", "intel-0", "intel-1", "intel-2"]
    assert {(m["host"], m["code"]) for m in doc["missing"]} == {
        ("stale", "stale"),
        ("tcg-only", "probed-under-tcg"),
        ("dead", "no-successful-probe"),
    }
    dead = next(m for m in doc["missing"] if m["host"] == "dead")
    assert "latest run failed at" in dead["message"] and "/nonexistent/qemu" in dead["message"]
    [flaky] = [w for w in doc["warnings"] if w["code"] == "latest-run-failed"]
    assert flaky["hosts"] == ["flaky"] and "(2d 0h old)" in flaky["message"]
    codes = {w["code"] for w in doc["warnings"]}
    assert {"tsx-microcode-differs", "security-feature-mixed"} <= codes
    assert doc["machine_type"] == "pc-q35-0.0" and doc["vendor"] == "GenuineIntel"
    assert doc["model"] != "base" and doc["cpu"].startswith(doc["model"] + ",vendor=GenuineIntel")
    # The same answer through the qemu format: two strings on stdout, comments on stderr.
    rc, out, err = fleet("--pool", "intel")
    assert rc == 0 and out == f"-cpu {doc['cpu']}\n-cpu {doc['custom']}\n"
    assert "# missing stale (stale)" in err and "# warning latest-run-failed" in err
    # A longer --max-age takes the stale member back in.
    rc, older, _ = fleet("--pool", "intel", "--format", "json", "--max-age", "60d")
    assert rc == 0 and "stale" in [h["host"] for h in older["hosts"]]
    assert set(older["features"]) <= set(doc["features"])


def test_strict_makes_missing_an_error(fleet: Callable[..., Any]) -> None:
    rc, out, err = fleet("--pool", "intel", "--strict")
    assert rc == 21 and out == ""
    assert err.startswith("error: pool 'intel': --strict and 3 member(s) missing: dead ")
    assert len(err.splitlines()) == 1


def test_unknown_pool_is_20(fleet: Callable[..., Any]) -> None:
    rc, out, err = fleet("--pool", "nope")
    assert (rc, out) == (20, "")
    assert (
        err == "error: unknown pool 'nope'; pools in the store: intel, local, local-tcg, "
        "mixed, nested, ryzen, split\n"
    )


def test_mixed_vendors_is_23(fleet: Callable[..., Any]) -> None:
    rc, out, err = fleet("--pool", "mixed")
    assert (rc, out) == (23, "")
    assert "AuthenticAMD: mixed-amd; GenuineIntel: mixed-intel" in err


def test_no_common_machine_type_is_22(fleet: Callable[..., Any]) -> None:
    rc, out, err = fleet("--pool", "split")
    assert (rc, out) == (22, "")
    assert "split-0 has pc-q35-0.0" in err and "split-1 has pc-q35-5.0" in err
    assert "machine_types=" in err
    rc, _, err = fleet("--pool", "intel", "--machine-type", "pc-q35-5.0")
    assert rc == 22 and "machine type pc-q35-5.0 was not probed on 4 of 4 members" in err
    rc, _, err = fleet("--pool", "split", "--machine-type", "q35")
    assert rc == 22 and "q35 is an alias standing for different machine types" in err


def test_only_the_pools_accelerator_counts(fleet: Callable[..., Any]) -> None:
    rc, kvm, _ = fleet("--pool", "ryzen", "--format", "json")
    assert rc == 0 and kvm["accel"] == "kvm"
    rc, tcg, _ = fleet("--pool", "ryzen", "--format", "json", "--accel", "tcg")
    assert rc == 0 and tcg["accel"] == "tcg" and tcg["missing"] == []
    assert kvm["features"] != tcg["features"]
    assert not [f for f in tcg["features"] if f.startswith("kvm")]
    rc, _, err = fleet("--pool", "intel", "--accel", "tcg")
    assert rc == 0, err  # tcg-only is the one member with TCG data


def test_policy_flags_through_the_cli(fleet: Callable[..., Any]) -> None:
    rc, plain, _ = fleet("--pool", "nested", "--format", "json")
    assert rc == 0 and "vmx" not in plain["features"]
    rc, nested, _ = fleet("--pool", "nested", "--format", "json", "--nested")
    assert rc == 0 and "vmx" in nested["features"]
    assert len([f for f in nested["features"] if f.startswith("vmx-")]) > 60
    rc, no_tsx, _ = fleet("--pool", "nested", "--format", "json", "--no-tsx")
    assert {"hle", "rtm"} <= set(plain["features"]) and not {"hle", "rtm"} & set(no_tsx["features"])
    rc, no_pv, _ = fleet("--pool", "nested", "--format", "json", "--no-kvm-pv")
    assert not [f for f in no_pv["features"] if f.startswith("kvm")]
    assert [f for f in plain["features"] if f.startswith("kvm")]
    rc, _, err = fleet("--pool", "nested", "--max-age", "soon")
    assert rc == 2 and "expected a number" in err


def test_real_documents_of_this_host(fleet: Callable[..., Any]) -> None:
    rc, doc, err = fleet("--pool", "local", "--format", "json", "--max-age", "36500d")
    assert rc == 0, err
    assert doc["model"] == "pentium3-v1" and doc["machine_type"] == "pc-q35-7.2"
    assert doc["hosts"] == [
        {
            "host": "this-local",
            "accel": "kvm",
            "qemu_version": "7.2.22",
            "collected_at": "2026-11-26T10:35:42.295Z",
        }
    ]
    rc, tcg, err = fleet("--pool", "local-tcg", "--format", "json", "--max-age", "36500d", "--accel", "tcg")
    assert rc == 0, err
    assert (tcg["model"], tcg["machine_type"]) == ("Westmere-v1", "pc-i440fx-2.0")
    rc, _, err = fleet("--pool", "local-tcg", "--max-age", "36500d")
    assert rc == 21 and "probed-under-tcg" in err


def test_declared_machine_types_are_preferred(tmp_path: Path) -> None:
    """Only ``collect`` stores what the inventory declares: written here through the store API."""
    store = Store.create_or_open(tmp_path / "store")
    now = datetime.now(UTC)
    docs: list[ProbeDocument] = []
    for machine in ("q35", "pc-i440fx-0.0"):
        rc, text = probe_doc(
            tmp_path / machine,
            "Xeon-Gold-6130",
            "--accel",
            "kvm",
            "--machine-type",
            "q35",
            "--machine-type",
            machine,
        )
        assert rc == 0
        docs.append(document_from_json(text, machine))
    assert [mp.machine_type for mp in docs[1].machine_types] == ["pc-q35-0.0", "pc-i440fx-0.0"]
    with store.run_writer("collect", started_at=now) as writer:
        for i, doc in enumerate(docs):
            writer.add(
                HostOutcome(
                    host=f"h{i}",
                    pool="p",
                    collected_at=now,
                    document=doc,
                    connection=ConnectionSpec("local"),
                    declared_machine_types=("pc-i440fx-0.0", "pc-q35-0.0"),
                )
            )
    chosen = select_members(store, "p")
    assert chosen.machine_type == "pc-q35-0.0"  # h0 has only q35: the only declared one on both
    assert [n.code for n in chosen.notices] == ["other-declared-machine-types"]
    assert "pc-i440fx-0.0" in chosen.notices[0].message
    assert select_members(store, "p", machine_type="pc-q35-0.0").notices == ()


def test_a_launch_without_any_host_expansion_is_missing_not_empty(tmp_path: Path) -> None:
    """A QEMU that answered no expansion of its CPU (both queries failed) offers nothing known.

    No capture fails both; the document of a real replay probe is edited to say so.
    """
    store = Store.create_or_open(tmp_path / "store")
    now = datetime.now(UTC)
    docs = {}
    for host in ("good", "blind"):
        rc, text = probe_doc(tmp_path / host, "Xeon-Gold-6130", "--accel", "kvm")
        assert rc == 0
        docs[host] = document_from_json(text, host)
    [mp] = docs["blind"].machine_types
    docs["blind"] = dataclasses.replace(
        docs["blind"], machine_types=(dataclasses.replace(mp, static_expansion=None, full_expansion=None),)
    )
    with store.run_writer("collect", started_at=now) as writer:
        for host, doc in docs.items():
            writer.add(
                HostOutcome(
                    host=host, pool="p", collected_at=now, document=doc, connection=ConnectionSpec("local")
                )
            )
    chosen = select_members(store, "p")
    assert [m.host for m in chosen.members] == ["good"]
    [missing] = chosen.missing
    assert (missing.host, missing.code) == ("blind", "no-successful-probe")
    assert "recorded no host CPU expansion" in missing.message
    with pytest.raises(NoUsableDataError):
        select_members(store, "p", strict=True)
