"""A damaged store says so; foreign files never change an answer; ``fsck`` lists both.

Real stores written by the real writer, real damage done to their files
(deleted, replaced by another run's file, foreign Parquet dropped beside
them), and the real CLI reading them. Stores written before commit records
listed their files are rebuilt here by rewriting each ``runs`` file in the
old schema, byte for byte what an older fleetcpu wrote.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fleetcpu.store import Store
from fleetcpu.store.layout import Layout, new_run_id, part_name

from .conftest import invoke
from .test_store_support import ok_document, outcome, run_file, with_blocked_model

NOW = datetime.now(UTC).replace(microsecond=0)


def _build(root: Path, layout: int = 2) -> tuple[Store, str, str]:
    """Two runs of pool prod: all CPU data in the first, the second points at it."""
    store = Store.create_or_open(root, layout=layout)
    doc = ok_document("kvm")
    first = store.run_writer(command="collect", started_at=NOW - timedelta(hours=2))
    with first as w:
        for i in range(3):
            w.add(outcome(f"kvm{i:02d}", doc, when=NOW - timedelta(hours=2)))
        w.add(outcome("odd", with_blocked_model(doc), when=NOW - timedelta(hours=2)))
    second = store.run_writer(command="collect", started_at=NOW - timedelta(hours=1))
    with second as w:
        for i in range(3):
            w.add(outcome(f"kvm{i:02d}", doc, when=NOW - timedelta(hours=1)))
        w.add(outcome("bad", None, stage="connect", error="refused", when=NOW - timedelta(hours=1)))
    return store, first.run_id, second.run_id


def _baseline(root: Path) -> tuple[int, str, str]:
    res = invoke("baseline", "--store", str(root), "--pool", "prod", "--format", "json")
    return res.returncode, res.stdout, res.stderr


def _fsck(root: Path) -> tuple[int, str, str]:
    res = invoke("fsck", "--store", str(root))
    return res.returncode, res.stdout, res.stderr


def _make_legacy(root: Path) -> None:
    """Rewrite every commit record (of a layout 1 store: older fleetcpus wrote no other)
    as a fleetcpu before file lists wrote it."""
    for path in sorted((root / "v1" / "runs").glob("date=*/run-*.parquet")):
        table = pq.read_table(path)
        assert table["part"].null_count == table.num_rows
        table = table.drop_columns(["files", "part"])
        table = table.replace_schema_metadata({b"fleetcpu.table": b"runs", b"fleetcpu.schema_version": b"1"})
        pq.write_table(table, path, compression="zstd")


def test_a_deleted_detail_file_is_named_exit_4(tmp_path: Path) -> None:
    store, first, _ = _build(tmp_path / "store")
    rc, _, err = _baseline(store.root)
    assert rc == 0, err
    models = run_file(store.root, "models", first)
    models.unlink()
    rc, out, err = _baseline(store.root)
    assert rc == 4, (rc, out, err)
    assert str(models) in err and "missing" in err
    rc, out, err = _fsck(store.root)
    assert rc == 4, (rc, out, err)
    assert str(models) in out and first in out


def test_a_replaced_file_is_named_exit_4(tmp_path: Path) -> None:
    store, first, second = _build(tmp_path / "store")
    layout = Layout(store.root)
    # A whole, valid hosts file of ours, but another run's: only the record can tell.
    replaced = run_file(store.root, "hosts", second)
    shutil.copy(run_file(store.root, "hosts", first), replaced)
    layout.index_file.unlink()  # so that reading must go back to the hosts files
    res = invoke("hosts", "--store", str(store.root), "--format", "json")
    assert res.returncode == 4, res.stdout
    assert str(replaced) in res.stderr
    rc, out, _ = _fsck(store.root)
    assert rc == 4 and str(replaced) in out


def test_runs_without_a_file_list_are_trusted_and_called_unverified(tmp_path: Path) -> None:
    store, first, second = _build(tmp_path / "store", layout=1)
    rc, before, err = _baseline(store.root)
    assert rc == 0, err
    _make_legacy(store.root)
    rc, after, err = _baseline(store.root)
    assert (rc, after) == (0, before), err
    rc, out, err = _fsck(store.root)
    assert rc == 0, (out, err)
    assert "2 unverified" in out and first in out and second in out
    # Trusted as before: a legacy run's missing detail file still reads as none.
    Layout(store.root).run_file("models", first).unlink()  # layout 1: the run's own file
    assert _baseline(store.root)[0] == 0


def test_foreign_and_misplaced_files_change_no_answer_and_fsck_lists_them(tmp_path: Path) -> None:
    store, first, second = _build(tmp_path / "store")
    layout = Layout(store.root)
    hosts_json = invoke("hosts", "--store", str(store.root), "--format", "json").stdout
    rc, baseline, err = _baseline(store.root)
    assert rc == 0, err
    hosts_rows = store.table("hosts").num_rows
    assert _fsck(store.root)[0] == 0

    day = run_file(store.root, "hosts", second).parent
    stray = [
        day / "part-0.parquet",  # someone's own file
        day / f"run-{new_run_id(NOW)}.parquet",  # foreign, valid run name
        layout.table_dir("hosts") / "date=garbage" / "x.parquet",  # a folder no run writes
        day / part_name(second, 2),  # a part its run never had
    ]
    pd.DataFrame({"host": ["x"], "cpu": ["y"]}).to_parquet(stray[0])
    pd.DataFrame({"run_id": ["r"], "host": ["x"]}).to_parquet(stray[1])
    stray[2].parent.mkdir()
    shutil.copy(run_file(store.root, "hosts", first), stray[2])
    shutil.copy(run_file(store.root, "hosts", first), stray[3])
    # One of ours, of another table, under an uncommitted run name in hosts/.
    misplaced = day / f"run-{new_run_id(NOW + timedelta(seconds=1))}.parquet"
    shutil.copy(run_file(store.root, "models", first), misplaced)
    stray.append(misplaced)
    layout.index_file.unlink()  # rebuilt from the hosts files: the strays must not count

    res = invoke("hosts", "--store", str(store.root), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == json.loads(hosts_json)
    assert _baseline(store.root)[:2] == (0, baseline)
    assert Store.open(store.root).table("hosts").num_rows == hosts_rows

    rc, out, err = _fsck(store.root)
    assert rc == 7, (rc, out, err)
    for path in stray:
        assert str(path) in out, (path, out)
    assert str(run_file(store.root, "hosts", first)) not in out


def test_report_over_a_garbled_file_fails_like_the_other_commands(tmp_path: Path) -> None:
    store, first, _ = _build(tmp_path / "store")
    machines = run_file(store.root, "machines", first)
    machines.write_bytes(b"garbage" * 100)
    rc, _, err = _baseline(store.root)
    assert rc == 4 and str(machines) in err
    out = tmp_path / "r.html"
    res = invoke("report", "--store", str(store.root), "--pool", "prod", "-o", str(out))
    assert res.returncode == 4, (res.stdout, res.stderr)
    assert str(machines) in res.stderr
    assert not out.exists()


def test_the_runs_schema_gains_only_a_nullable_file_list_and_part() -> None:
    from fleetcpu.store import TABLES

    assert TABLES["runs"].names[-2:] == ["files", "part"]
    field = TABLES["runs"].schema.field("files")
    assert field.nullable and pa.types.is_list(field.type)
    part = TABLES["runs"].schema.field("part")
    assert part.nullable and part.type == pa.int32()
    assert TABLES["runs"].version == 3
