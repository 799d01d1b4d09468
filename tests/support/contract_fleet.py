"""Probe documents of real CPUs for the contract's tests, with the changes operators meet.

The documents are what the real probe records through the replay stand-in
(``replay.members.machine_probe``, held equal to the probe by
``tests/test_baseline_replay.py``), plus the QEMU's own ``query-machines``
answer from the same capture. The changes are made the way QEMU reports
them: a feature lost to a microcode update disappears from the host's
expansions and joins the ``unavailable-features`` of every model that
enables it; a feature gained appears in the expansions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetcpu.probe import qmp_decode
from fleetcpu.probe.document import Expansion, MachineInfo, MachineProbe, ProbeDocument, QemuInfo

from .replay import members as replay
from .replay import replay_qemu
from .replay.hosts import BINARY_NAME, find_capture

__all__ = ["POOL", "document", "gain", "lose", "machine_list", "write_doc"]

#: Skylake-SP, Cascade Lake, Cascade Lake-AP and Broadwell: the issue's pool of four
#: (captures with QEMU's model list; the Broadwell makes the TSX-carrying baseline).
POOL = ("Xeon-Gold-6130", "Xeon-Platinum-8268", "Xeon-Platinum-9242", "Xeon-E5-2650-v4")


def machine_list(name: str) -> tuple[MachineInfo, ...]:
    cap = find_capture(name)
    r = replay_qemu.Replay(cap.path, BINARY_NAME, replay_qemu.Log(None))
    value, _how, _source = r.answer("query-machines", {})
    return qmp_decode.decode_machines(value)


def _exp(e: Expansion | None, gone: frozenset[str], new: frozenset[str]) -> Expansion | None:
    if e is None:
        return None
    features = {k: (v or k in new) and k not in gone for k, v in e.features.items()}
    features.update(dict.fromkeys(new - set(features), True))
    return dataclasses.replace(e, features=features)


def lose(mp: MachineProbe, gone: set[str]) -> MachineProbe:
    """``mp`` with ``gone`` no longer offered, as QEMU reports it."""
    lost = frozenset(gone)
    models = [
        dataclasses.replace(
            m, unavailable_features=tuple(sorted({*m.unavailable_features, *(lost & set(m.features or ()))}))
        )
        if lost & set(m.features or ())
        else m
        for m in mp.models
    ]
    return dataclasses.replace(
        mp,
        models=tuple(models),
        static_expansion=_exp(mp.static_expansion, lost, frozenset()),
        full_expansion=_exp(mp.full_expansion, lost, frozenset()),
    )


def gain(mp: MachineProbe, new: set[str]) -> MachineProbe:
    """``mp`` with ``new`` offered too (a microcode update exposing a mitigation)."""
    added = frozenset(new)
    return dataclasses.replace(
        mp,
        static_expansion=_exp(mp.static_expansion, frozenset(), added),
        full_expansion=_exp(mp.full_expansion, frozenset(), added),
    )


def document(
    name: str,
    *,
    microcode: str = "0x1",
    mp: MachineProbe | None = None,
    machines: tuple[MachineInfo, ...] | None = None,
    qemu_version: str | None = None,
    accel: str = "kvm",
    when: datetime | None = None,
) -> ProbeDocument:
    mp = mp or replay.machine_probe(name, accel)
    when = when or datetime.now(UTC)
    return ProbeDocument(
        status="ok",
        probe_version="replay",
        time=when.isoformat(),
        duration_s=0.1,
        host=replay.facts(name, microcode=microcode),
        accel=accel,
        qemu=QemuInfo(
            binary=BINARY_NAME,
            version=qemu_version or replay.qemu_version(name),
            package="replay",
            kvm_present=True,
            kvm_enabled=accel == "kvm",
            machines=machine_list(name) if machines is None else machines,
        ),
        machine_types=(mp,),
    )


def write_doc(path: Path, doc: ProbeDocument) -> Path:
    path.write_text(json.dumps(doc.to_dict()))
    return path


def importing_fleet(tmp_path: Path, invoke: Callable[..., Any]) -> Callable[..., Any]:
    """The real CLI on a store in ``tmp_path``, and ``run.add(host, capture, pool=, **kw)``,
    which imports ``document(capture, **kw)`` as ``host`` (``run.store``: the store's path).

    The contract's tests and the requirements' build their pools with it."""
    store = tmp_path / "store"
    docs = tmp_path / "docs"
    docs.mkdir()
    count = [0]

    def run(*args: str, **kw: Any) -> Any:
        return invoke(*args, "--store", str(store), **kw)

    def add(host: str, name: str, pool: str = "prod", **kw: Any) -> Any:
        count[0] += 1
        path = write_doc(docs / f"{count[0]:03d}-{host}.json", document(name, **kw))
        return run("import", "--pool", pool, "--host", host, str(path))

    run.add = add  # type: ignore[attr-defined]
    run.store = store  # type: ignore[attr-defined]
    return run
