"""What goes into the store comes back out: golden documents, failures, older files.

Real Parquet files in a temporary store, read back through the store's own
readers and through pandas; nothing is mocked.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fleetcpu.outcome import STAGES, ConnectionSpec
from fleetcpu.probe.document import ProbeDocument
from fleetcpu.probe.document_decoder import document_from_json
from fleetcpu.store import TABLES, Store
from fleetcpu.store.layout import Layout, new_run_id, rfc3339, run_time
from fleetcpu.store.outcome_rows import cpu_digest
from fleetcpu.store.schema import HOSTS, META_TABLE, META_VERSION, RUNS

from .test_store_support import (
    base_time,
    failed_document,
    golden_documents,
    ok_document,
    outcome,
    run_file,
    with_blocked_model,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.create_or_open(tmp_path / "store")


@pytest.mark.parametrize("name", [name for name, _ in golden_documents()])
def test_golden_document_round_trips(store: Store, name: str) -> None:
    doc = dict(golden_documents())[name]
    accel = str(doc.accel)
    conn = ConnectionSpec("ssh", "10.1.2.3", 2222, "ops", "/usr/bin/python3", "/opt/qemu")
    with store.run_writer(command="collect", inventory="hosts.txt") as w:
        w.add(
            dataclasses.replace(
                outcome("kvm01", doc, declared=("pc-q35-7.2", "pc-i440fx-2.0")), connection=conn
            )
        )

    snap = store.snapshots(["kvm01"], accel)["kvm01"]
    # The CPU data comes back as the very records the probe produced.
    assert tuple(snap.machines.values()) == doc.machine_types
    assert list(snap.machines) == [mp.machine_type for mp in doc.machine_types]
    assert snap.facts == doc.host
    assert snap.connection == conn
    assert doc.qemu is not None
    assert (snap.qemu_version, snap.qemu_package, snap.qemu_binary) == (
        doc.qemu.version,
        doc.qemu.package,
        doc.qemu.binary,
    )
    assert snap.probe_version == doc.probe_version
    assert snap.qemu_machines == doc.qemu.machines and snap.qemu_machines  # hosts v2
    assert snap.run == snap.detail_run == w.run_id
    assert snap.cpu_digest == cpu_digest(doc.machine_types)

    (state,) = store.latest()
    assert state.declared_machine_types == ("pc-q35-7.2", "pc-i440fx-2.0")
    row = store.table("hosts").to_pylist()[0]
    assert row["declared_machine_types"] == ["pc-q35-7.2", "pc-i440fx-2.0"]
    assert row["status"] == "ok" and row["stage"] is None and row["error"] is None
    assert row["accel"] == doc.accel and row["accel_reason"] == doc.accel_reason
    assert row["machine_types"] == [mp.machine_type for mp in doc.machine_types]
    assert rfc3339(row["probe_time"]) == doc.time
    assert row["probe_duration_s"] == doc.duration_s
    attempts = json.loads(row["attempts"])
    assert [a["argv"] for a in attempts] == [list(a.argv) for a in doc.attempts]
    assert [a["outcome"] for a in attempts] == [a.outcome for a in doc.attempts]

    # One row per register: supported and filtered bits side by side.
    words = store.table("feature_words")
    mp = doc.machine_types[0]
    assert words.num_rows == sum(
        len({(w.leaf, w.subleaf, w.register) for w in m.feature_words + m.filtered_features})
        for m in doc.machine_types
    )
    models = store.table("models").to_pylist()
    assert len(models) == sum(len(m.models) for m in doc.machine_types)
    usable = {m["model"] for m in models if m["machine_type"] == mp.machine_type and m["usable"]}
    assert usable == {m.name for m in mp.models if m.usable}
    kinds = sorted(r["kind"] for r in store.table("expansion").to_pylist())
    assert kinds == sorted(["static", "full"] * len(doc.machine_types))


def test_every_table_file_names_its_table_and_version(store: Store) -> None:
    with store.run_writer(command="collect") as w:
        w.add(outcome("kvm01", ok_document()))
    for name in ("runs", "hosts", "machines", "feature_words", "models", "expansion"):
        path = run_file(store.root, name, w.run_id)
        assert path.name == f"run-{w.run_id}-00001.parquet"  # layout 2: part 1
        meta = pq.read_schema(path).metadata
        assert meta[META_TABLE] == name.encode()
        assert meta[META_VERSION] == str(TABLES[name].version).encode()
        assert pq.read_schema(path).remove_metadata().equals(TABLES[name].schema)
        # Hive partition by the run's UTC date, run id in the name.
        assert path.parent.name == f"date={run_time(w.run_id):%Y-%m-%d}"
    # Times are UTC milliseconds, and run ids sort like their times.
    assert store.table("runs").schema.field("started_at").type == pa.timestamp("ms", tz="UTC")
    early = new_run_id(base_time())
    late = new_run_id(base_time() + timedelta(milliseconds=1))
    assert early < late and early.startswith("20260301T120000.123Z-")


def test_every_failure_kind_is_a_row(store: Store) -> None:
    failed = failed_document()
    outcomes = [
        outcome(
            f"h-{stage}",
            None,
            stage=stage,
            error=f"{stage} went wrong",
            error_code=stage,
            stderr_tail=f"stderr of {stage}\n",
        )
        for stage in STAGES
    ]
    # The probe ran but failed on the host: its document carries stage and evidence.
    outcomes.append(outcome("h-probe", failed))
    # The probe printed garbage: no document, no stage given -> "output".
    outcomes.append(outcome("h-garbage", None, error="not JSON: 'Segmentation fault'"))
    # Succeeded, yet cleanup failed afterwards: failed, but its CPU data is kept.
    outcomes.append(outcome("h-cleanup-after-ok", ok_document(), stage="cleanup", error="rm: cannot remove"))
    with store.run_writer(command="collect", inventory="hosts.txt") as w:
        for o in outcomes:
            w.add(o)

    rows = {r["host"]: r for r in store.table("hosts").to_pylist()}
    assert len(rows) == len(outcomes)
    for stage in STAGES:
        r = rows[f"h-{stage}"]
        assert (r["status"], r["stage"], r["error"], r["error_code"], r["stderr_tail"]) == (
            "failed",
            stage,
            f"{stage} went wrong",
            stage,
            f"stderr of {stage}\n",
        )
        assert r["cpu_digest"] is None and r["detail_run"] is None
        assert r["conn_address"] == f"h-{stage}.example.com" and r["conn_port"] == 22
    r = rows["h-probe"]
    assert (r["status"], r["stage"], r["error"], r["error_code"]) == (
        "failed",
        failed.stage,
        failed.error,
        failed.error_code,
    )
    assert r["hostname"] == failed.host.hostname and r["kernel_release"] is not None
    assert rows["h-garbage"]["stage"] == "output"
    kept = rows["h-cleanup-after-ok"]
    assert kept["status"] == "failed" and kept["stage"] == "cleanup"
    assert kept["detail_run"] == w.run_id

    runs = store.runs()
    assert [(r.hosts_ok, r.hosts_failed, r.status) for r in runs] == [(0, len(outcomes), "complete")]
    latest = {s.host: s for s in store.latest()}
    assert latest["h-qemu"].stage == "qemu" and not latest["h-qemu"].ok
    # A failure is not "latest successful data".
    assert latest["h-cleanup-after-ok"].kvm is None and latest["h-cleanup-after-ok"].tcg is None
    assert store.snapshots(list(latest), "tcg") == {}


def test_a_file_written_with_an_older_narrower_schema_is_still_read(store: Store) -> None:
    """Additive evolution: a v1 hosts file from before some columns existed reads with nulls."""
    with store.run_writer(command="collect") as w:
        w.add(outcome("new", ok_document()))
    layout = Layout(store.root)
    old_run = new_run_id(base_time() - timedelta(days=30))
    # The older schema: as if qemu_kvm_*, synthetic, conn_* and probe_duration_s were added later.
    added = {
        "qemu_kvm_present",
        "qemu_kvm_enabled",
        "synthetic",
        "probe_duration_s",
        "conn_python",
        "conn_qemu",
        "qemu_machines",
    }
    narrow = pa.schema([f for f in HOSTS.schema if f.name not in added]).with_metadata(
        {META_TABLE: b"hosts", META_VERSION: b"0"}
    )
    row = store.table("hosts").to_pylist()[0]
    row.update(run_id=old_run, host="old", collected_at=base_time() - timedelta(days=30))
    path = layout.run_file("hosts", old_run)
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{k: row[k] for k in narrow.names}], schema=narrow), path)
    runs_row = store.table("runs").to_pylist()[0]
    runs_row.update(
        run_id=old_run,
        started_at=base_time() - timedelta(days=30),
        finished_at=base_time() - timedelta(days=30),
        files=None,
        part=None,
    )  # as before records listed files or parts
    rpath = layout.run_file("runs", old_run)
    rpath.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([runs_row], schema=RUNS.with_metadata), rpath)

    table = store.table("hosts")
    assert table.schema.names == HOSTS.names
    rows = {r["host"]: r for r in table.to_pylist()}
    assert set(rows) == {"old", "new"}
    for column in added:
        assert rows["old"][column] is None
    assert rows["new"]["qemu_kvm_present"] is not None and rows["new"]["qemu_machines"]
    assert rows["old"]["cpu_vendor"] == rows["new"]["cpu_vendor"]
    # The index rebuilt from history includes it, and the old host's data is still found:
    # its detail_run points at the run of "new" (same data), which exists.
    assert store.reindex() == 2
    assert {s.host for s in store.latest()} == {"old", "new"}
    # pandas with an explicit schema reads the mixed directory too (docs/store.md says so).
    df = pd.read_parquet(layout.table_dir("hosts"), schema=HOSTS.schema)
    assert len(df) == 2 and df["synthetic"].isna().all()


def test_tables_only_grow_nullable_columns_within_v1() -> None:
    """The schema evolution rule as a test: these v1 columns must keep name, type and
    nullability forever; new columns may only be appended as nullable."""
    frozen = {
        "runs": [
            "run_id",
            "started_at",
            "finished_at",
            "command",
            "inventory",
            "fleetcpu_version",
            "status",
            "hosts_ok",
            "hosts_failed",
            "hosts_detail",
        ],
        "hosts": [
            "run_id",
            "host",
            "pool",
            "collected_at",
            "status",
            "stage",
            "error",
            "error_code",
            "stderr_tail",
            "accel",
            "accel_reason",
            "qemu_version",
            "qemu_package",
            "qemu_binary",
            "qemu_kvm_present",
            "qemu_kvm_enabled",
            "hostname",
            "kernel_release",
            "cpu_vendor",
            "cpu_family",
            "cpu_model",
            "cpu_stepping",
            "cpu_model_name",
            "microcode",
            "kvm_module",
            "kvm_nested",
            "dev_kvm",
            "synthetic",
            "probe_time",
            "probe_version",
            "probe_duration_s",
            "duration_s",
            "machine_types",
            "declared_machine_types",
            "conn_transport",
            "conn_address",
            "conn_port",
            "conn_user",
            "conn_python",
            "conn_qemu",
            "attempts",
            "cpu_digest",
            "detail_run",
        ],
        "machines": [
            "run_id",
            "host",
            "machine_type",
            "requested",
            "accel",
            "cpu",
            "vendor",
            "family",
            "model",
            "stepping",
            "model_id",
            "level",
            "xlevel",
            "phys_bits",
            "errors",
        ],
        "feature_words": [
            "run_id",
            "host",
            "machine_type",
            "leaf",
            "subleaf",
            "register",
            "supported",
            "filtered",
        ],
        "models": [
            "run_id",
            "host",
            "machine_type",
            "model",
            "usable",
            "unavailable_features",
            "alias_of",
            "deprecated",
            "migration_safe",
            "static",
            "typename",
            "features",
        ],
        "expansion": ["run_id", "host", "machine_type", "kind", "model", "enabled", "disabled", "props"],
    }
    for name, columns in frozen.items():
        spec = TABLES[name]
        assert spec.names[: len(columns)] == columns, name
        for extra in spec.schema.names[len(columns) :]:
            assert spec.schema.field(extra).nullable, f"{name}.{extra} must be nullable"
    assert str(TABLES["feature_words"].schema.field("supported").type) == "int64"
    assert TABLES["hosts"].schema.field("collected_at").type == pa.timestamp("ms", tz="UTC")


def test_changed_cpu_data_writes_detail_again(store: Store) -> None:
    doc = ok_document()
    with store.run_writer(command="collect", started_at=base_time()) as w1:
        w1.add(outcome("kvm01", doc))
    changed = with_blocked_model(doc)
    with store.run_writer(command="collect", started_at=base_time() + timedelta(hours=1)) as w2:
        w2.add(outcome("kvm01", changed, when=base_time() + timedelta(hours=1)))
    snap = store.snapshots(["kvm01"], "tcg")["kvm01"]
    assert snap.detail_run == w2.run_id
    assert tuple(snap.machines.values()) == changed.machine_types
    assert store.runs()[1].hosts_detail == 1


def _doc_without_hostname() -> ProbeDocument:
    doc = ok_document()
    return dataclasses.replace(doc, host=dataclasses.replace(doc.host, hostname=None))


def test_times_are_utc_and_naive_times_are_refused(store: Store) -> None:
    with store.run_writer(command="collect") as w:
        with pytest.raises(ValueError, match="naive"):
            w.add(outcome("a", ok_document(), when=base_time().replace(tzinfo=None)))
        w.add(outcome("b", _doc_without_hostname()))
    (state,) = store.latest()
    assert state.host == "b"
    assert set(store.table("models")["host"].to_pylist()) == {"b"}  # nothing of "a" was kept
    assert state.collected_at == base_time() and state.collected_at.tzinfo is not None
    assert state.collected_at.utcoffset() == UTC.utcoffset(None)


def test_the_digest_sees_every_stored_field() -> None:
    """Dedup is only safe if any change to stored CPU data changes the digest."""
    doc = ok_document()
    mp = doc.machine_types[0]
    m0 = mp.models[0]
    w0 = mp.feature_words[0]
    exp = mp.full_expansion
    assert exp is not None
    first_feature = next(iter(exp.features))
    variants = {
        "same": mp,
        "requested": dataclasses.replace(mp, requested="other"),
        "cpu": dataclasses.replace(mp, cpu="host,pmu=off"),
        "model order": dataclasses.replace(mp, models=mp.models[::-1]),
        "unavailable": dataclasses.replace(
            mp, models=(dataclasses.replace(m0, unavailable_features=("x",)), *mp.models[1:])
        ),
        "unavailable order": dataclasses.replace(
            mp, models=(dataclasses.replace(m0, unavailable_features=("a", "b")), *mp.models[1:])
        ),
        "unavailable order 2": dataclasses.replace(
            mp, models=(dataclasses.replace(m0, unavailable_features=("b", "a")), *mp.models[1:])
        ),
        "features none->empty": dataclasses.replace(
            mp, models=(dataclasses.replace(m0, features=() if m0.features is None else None), *mp.models[1:])
        ),
        "migration_safe": dataclasses.replace(
            mp,
            models=(
                dataclasses.replace(m0, migration_safe=None if m0.migration_safe else True),
                *mp.models[1:],
            ),
        ),
        "word bits": dataclasses.replace(
            mp, feature_words=(dataclasses.replace(w0, bits=w0.bits ^ 1), *mp.feature_words[1:])
        ),
        "word moved to filtered": dataclasses.replace(
            mp, feature_words=mp.feature_words[1:], filtered_features=(w0, *mp.filtered_features)
        ),
        "feature flipped": dataclasses.replace(
            mp,
            full_expansion=dataclasses.replace(
                exp, features={**exp.features, first_feature: not exp.features[first_feature]}
            ),
        ),
        "prop 1": dataclasses.replace(
            mp, full_expansion=dataclasses.replace(exp, props={**exp.props, "x-test": 1})
        ),
        "prop True": dataclasses.replace(
            mp, full_expansion=dataclasses.replace(exp, props={**exp.props, "x-test": True})
        ),
        "prop '1'": dataclasses.replace(
            mp, full_expansion=dataclasses.replace(exp, props={**exp.props, "x-test": "1"})
        ),
        "no static": dataclasses.replace(mp, static_expansion=None),
        "vcpu level": dataclasses.replace(mp, vcpu=dataclasses.replace(mp.vcpu, level=99)),
    }
    digests = {name: cpu_digest((v,)) for name, v in variants.items()}
    assert len(set(digests.values())) == len(digests), digests
    assert cpu_digest(doc.machine_types) == cpu_digest(
        document_from_json(doc.to_json()).machine_types
    )  # stable across a JSON round trip
    assert cpu_digest(()) is None


def test_public_surface() -> None:
    import fleetcpu.store as store_pkg

    assert set(store_pkg.__all__) == {
        "TABLES",
        "AccelLatest",
        "HostSnapshot",
        "HostState",
        "RunInfo",
        "RunWriter",
        "Store",
        "TableSpec",
        "default_location",
        "resolve_location",
    }
    for name in store_pkg.__all__:
        assert getattr(store_pkg, name) is not None


def test_machine_lists_come_back_per_row_and_shared() -> None:
    """``hosts.qemu_machines`` (schema 2) read back: null stays None (not recorded), an
    empty list stays empty, and equal lists (hosts of one QEMU) are one shared tuple, also
    across chunks and slices. The lists are the golden documents' own."""
    from fleetcpu.store.outcome_rows import machine_list_rows
    from fleetcpu.store.snapshot import machine_lists

    docs = [doc for _, doc in golden_documents() if doc.qemu is not None and doc.qemu.machines]
    a = docs[0].qemu.machines  # type: ignore[union-attr]
    b = a[1:]
    field = HOSTS.schema.field("qemu_machines")
    rows = [machine_list_rows(a), None, machine_list_rows(b), [], machine_list_rows(a)]
    column = pa.chunked_array([pa.array(rows[:2], field.type), pa.array(rows[2:], field.type)])
    got = machine_lists(column)
    assert got == [a, None, b, (), a] and got[0] is got[4]
    sliced = pa.array([machine_list_rows(b), *rows], field.type).slice(2)
    assert machine_lists(pa.chunked_array([sliced])) == [None, b, (), a]
