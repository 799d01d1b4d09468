"""The pandas and DuckDB examples of docs/store.md and the README run as written against a
real layout 2 store holding a killed run: its committed part must count, and its part killed
between its files and its record (whole files no record lists) must change no answer."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import duckdb
import pytest

from fleetcpu.store import Store

from .conftest import PYTHON, REPO
from .test_store_support import failed_document, ok_document, outcome, run_files

DOC = REPO / "docs" / "store.md"
README = REPO / "README.md"

# Part 1 (kvm04, pool dev) is committed; part 2 (kvm01 with changed CPU data) is killed
# after its files are published, before its record: raw readers see those files.
KILLED = """
import sys
from fleetcpu.store import Store
from tests.test_store_support import ok_document, outcome, with_blocked_model
store = Store.open(sys.argv[1])
with store.run_writer(command="collect", flush_every=1) as w:
    print(w.run_id, flush=True)
    w.add(outcome("kvm04", ok_document("kvm"), pool="dev"))
    w.add(outcome("kvm01", with_blocked_model(ok_document("kvm"))))
"""


def _blocks(language: str, doc: Path = DOC) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", doc.read_text(), flags=re.DOTALL)


def _usable() -> set[str]:
    return {m.name for m in ok_document("kvm").machine_types[0].models if m.usable}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs") / "store"
    s = Store.create_or_open(root)
    with s.run_writer(command="collect") as w:
        w.add(outcome("kvm01", ok_document("kvm")))
        w.add(outcome("kvm02", ok_document("kvm"), pool="dev"))
        w.add(outcome("kvm03", failed_document()))
    with s.run_writer(command="collect") as w:  # nothing changed: no detail rows this time
        w.add(outcome("kvm01", ok_document("kvm")))
    killed = subprocess.run(
        [PYTHON, "-c", KILLED, str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
        env={**os.environ, "FLEETCPU_TEST_HOOK_KILL_AT": "before-record-2"},
    )
    assert killed.returncode == -9, killed.stderr
    run = killed.stdout.strip()
    assert len(run_files(root, "runs", run)) == 1
    assert len(list(root.glob(f"v1/*/date=*/run-{run}-00002.parquet"))) == 5  # no record
    # The next fleetcpu reader folds the killed run's committed part into the index.
    assert {st.host for st in Store.open(root).latest()} == {"kvm01", "kvm02", "kvm03", "kvm04"}
    assert [r.status for r in Store.open(root).runs()] == ["complete", "complete", "killed"]
    return root


def test_python_examples_run(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runnable = [b for b in _blocks("python") if "{store}" in b]
    assert len(runnable) >= 3
    namespace: dict[str, object] = {"store": str(store)}  # one session, top to bottom
    for block in runnable:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    usable = _usable()
    assert any(name in out for name in usable)
    assert "dev" in out and "prod" in out
    # Committed rows only: kvm01's latest is its committed run, with every model usable,
    # not the killed part's changed data; kvm04 (the killed run's committed part) counts.
    found = namespace["usable"]
    per_pool = found.groupby(["pool", "model"])["host"].nunique().to_dict()  # type: ignore[attr-defined]
    assert per_pool == {**{("prod", m): 1 for m in usable}, **{("dev", m): 2 for m in usable}}


def test_sql_examples_run(store: Path) -> None:
    blocks = _blocks("sql")
    assert len(blocks) >= 3
    results = [duckdb.execute(b.replace("STORE", str(store))).fetchall() for b in blocks]
    per_model = results[0]
    usable = _usable()
    # Every kvm host, joined through detail_run although kvm01's latest run wrote no models.
    assert {row[2] for row in per_model} == usable
    assert {(row[0], row[2]): row[3] for row in per_model} == {
        **{("prod", m): 1 for m in usable},
        **{("dev", m): 2 for m in usable},
    }
    # Every committed hosts row: 3 + 1 + the killed run's committed part; not its lost part.
    assert sorted(row[1] for row in results[1]) == ["kvm01", "kvm01", "kvm02", "kvm03", "kvm04"]
    assert len(results[2]) == 6  # the schema-evolution example reads every file, as it says


def test_readme_examples_run(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (python,) = [b for b in _blocks("python", README) if "{store}" in b]
    namespace: dict[str, object] = {"store": str(store)}
    exec(compile(python, str(README), "exec"), namespace)  # noqa: S102 - our own docs
    latest = namespace["latest"]
    assert sorted(latest["host"]) == ["kvm01", "kvm02", "kvm03", "kvm04"]
    assert "prod" in capsys.readouterr().out
    (sql,) = [b for b in _blocks("sql", README) if "STORE" in b]
    rows = duckdb.execute(sql.replace("STORE", str(store))).fetchall()
    assert {(r[0], r[2]): r[3] for r in rows} == {
        **{("prod", m): 1 for m in _usable()},
        **{("dev", m): 2 for m in _usable()},
    }
