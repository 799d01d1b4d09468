"""Shared material for the store tests (no tests here): real probe documents and outcomes.

The documents are real: the committed golden files of ``tests/golden`` when
present, plus one made by running the real probe under TCG once per session.
Variants (another time, host name or CPU) are derived with ``dataclasses.replace``,
so every stored value came from QEMU.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleetcpu.outcome import ConnectionSpec, HostOutcome
from fleetcpu.probe.document import CpuModel, ProbeDocument
from fleetcpu.probe.document_decoder import document_from_json

from .conftest import PYTHON, REPO

GOLDEN_DIR = REPO / "tests" / "golden"


@functools.cache
def live_tcg_document() -> ProbeDocument:
    """A probe of this machine's real QEMU under TCG (once per test process)."""
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", "--accel", "tcg"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return document_from_json(res.stdout, "live tcg probe")


@functools.cache
def golden_documents() -> tuple[tuple[str, ProbeDocument], ...]:
    """(name, document): every golden file, then the live TCG probe."""
    out = [
        (path.name, document_from_json(path.read_text(), str(path)))
        for path in sorted(GOLDEN_DIR.glob("*.json"))
    ]
    out.append(("live-tcg", live_tcg_document()))
    return tuple(out)


def ok_document(accel: str = "tcg") -> ProbeDocument:
    for _name, doc in golden_documents():
        if doc.ok and doc.accel == accel:
            return doc
    if accel == "tcg":
        return live_tcg_document()
    raise LookupError(f"no {accel} document")


@functools.cache
def failed_document() -> ProbeDocument:
    """A real failed document: the probe pointed at a QEMU that does not exist."""
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", "--qemu-binary", "/nonexistent/qemu-system-x86_64"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert res.returncode == 10, res.stderr
    return document_from_json(res.stdout, "failed probe")


def at(doc: ProbeDocument, moment: datetime) -> ProbeDocument:
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return dataclasses.replace(doc, time=stamp)


def renamed(doc: ProbeDocument, hostname: str | None) -> ProbeDocument:
    return dataclasses.replace(doc, host=dataclasses.replace(doc.host, hostname=hostname))


def with_microcode(doc: ProbeDocument, microcode: str) -> ProbeDocument:
    cpu = dataclasses.replace(doc.host.cpu, microcode=microcode)
    return dataclasses.replace(doc, host=dataclasses.replace(doc.host, cpu=cpu))


def with_blocked_model(doc: ProbeDocument, feature: str = "made-up-feature") -> ProbeDocument:
    """The same document, except its first usable model is now blocked by ``feature``:
    different CPU data, as after a microcode update."""
    mp = doc.machine_types[0]
    models = list(mp.models)
    i = next(i for i, m in enumerate(models) if m.usable)
    models[i] = dataclasses.replace(models[i], unavailable_features=(feature,))
    changed = dataclasses.replace(mp, models=tuple(models))
    return dataclasses.replace(doc, machine_types=(changed, *doc.machine_types[1:]))


def model_named(doc: ProbeDocument, name: str) -> CpuModel:
    return next(m for m in doc.machine_types[0].models if m.name == name)


def write_document(path: Path, doc: ProbeDocument) -> Path:
    path.write_text(doc.to_json())
    return path


def base_time() -> datetime:
    return datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def outcome(
    host: str,
    doc: ProbeDocument | None,
    *,
    pool: str = "prod",
    when: datetime | None = None,
    stage: str | None = None,
    error: str | None = None,
    error_code: str | None = None,
    stderr_tail: str = "",
    connection: ConnectionSpec | None = None,
    declared: tuple[str, ...] = (),
) -> HostOutcome:
    return HostOutcome(
        host=host,
        pool=pool,
        collected_at=when or base_time(),
        document=doc,
        connection=connection
        or ConnectionSpec(
            transport="ssh",
            address=f"{host}.example.com",
            port=22,
            user="root",
            python="python3",
        ),
        stage=stage,
        error=error,
        error_code=error_code,
        stderr_tail=stderr_tail,
        duration_s=1.25,
        declared_machine_types=declared,
    )


def hourly(start: datetime, n: int) -> Iterable[datetime]:
    for i in range(n):
        yield start + timedelta(hours=i)


def visible_files(root: Path) -> set[str]:
    """Every file a dataset reader or a ``*.parquet`` glob could see, relative to root."""
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not name.startswith("."):
                out.add(str(Path(dirpath, name).relative_to(root)))
    return out


def all_files(root: Path) -> dict[str, bytes]:
    """Path -> content of every file under root (hidden ones too, except the lock)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name != ".lock":
                p = Path(dirpath, name)
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def hidden_temporaries(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp"))


def hosts_json(stdout: str) -> list[dict[str, object]]:
    value = json.loads(stdout)
    assert isinstance(value, list)
    return value


def run_files(root: Path, table: str, run_id: str) -> list[Path]:
    """The files of ``table`` that run ``run_id`` committed, as its commit records list them
    (parts in order): ``run-<id>.parquet`` in a layout 1 store, ``run-<id>-00001.parquet``
    and on in layout 2. For ``runs``, the records themselves."""
    from fleetcpu.store import Store
    from fleetcpu.store.layout import Layout
    from fleetcpu.store.scan import records_of

    if table == "runs":
        return records_of(Layout(root), run_id)
    return [f.path for f in Store.open(root).committed_files(table, run_id)]


def run_file(root: Path, table: str, run_id: str) -> Path:
    """The one file of ``table`` a run of one part (or a layout 1 run) committed."""
    (path,) = run_files(root, table, run_id)
    return path
