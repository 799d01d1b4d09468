"""The pandas and DuckDB examples of docs/store.md run as written against a real store."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from fleetcpu.store import Store

from .conftest import REPO
from .test_store_support import failed_document, ok_document, outcome

DOC = REPO / "docs" / "store.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


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
    return root


def test_python_examples_run(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runnable = [b for b in _blocks("python") if "{store}" in b]
    assert len(runnable) >= 3
    namespace: dict[str, object] = {"store": str(store)}  # one session, top to bottom
    for block in runnable:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    usable = {m.name for m in ok_document("kvm").machine_types[0].models if m.usable}
    assert any(name in out for name in usable)
    assert "dev" in out and "prod" in out


def test_sql_examples_run(store: Path) -> None:
    blocks = _blocks("sql")
    assert len(blocks) >= 2
    results = [duckdb.execute(b.replace("STORE", str(store))).fetchall() for b in blocks]
    per_model = results[0]
    usable = {m.name for m in ok_document("kvm").machine_types[0].models if m.usable}
    # Both kvm hosts, joined through detail_run although the latest run wrote no models.
    assert {row[2] for row in per_model} == usable
    assert {row[0] for row in per_model} == {"prod", "dev"}
    assert len(results[1]) == 4  # every hosts row of both runs
