"""The ``fleetcpu hosts`` view: index records -> JSON objects or a text table. Pure.

The JSON keys are a contract for scripts (``host``, ``pool``, ``status``,
``stage``, ``error``, ``accel``, ``qemu_version``, ``run``, ``collected_at``
at least); new keys may be added, none renamed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..vocabulary import Accel
from .layout import rfc3339
from .views import AccelLatest, HostState

__all__ = ["host_json", "hosts_table"]

_ERROR_WIDTH = 60


def _accel_json(slot: AccelLatest | None) -> dict[str, object] | None:
    if slot is None:
        return None
    return {"run": slot.run, "collected_at": rfc3339(slot.collected_at)}


def host_json(state: HostState) -> dict[str, object]:
    return {
        "host": state.host,
        "pool": state.pool,
        "status": state.status,
        "stage": state.stage,
        "error": state.error,
        "error_code": state.error_code,
        "accel": state.accel,
        "qemu_version": state.qemu_version,
        "run": state.run,
        "collected_at": rfc3339(state.collected_at),
        "cpu_digest": state.cpu_digest,
        "declared_machine_types": list(state.declared_machine_types),
        "abi_level": state.abi_level,
        # The latest successful run per accelerator: "since when did it fail?"
        "last_ok": {Accel.KVM: _accel_json(state.kvm), Accel.TCG: _accel_json(state.tcg)},
    }


def _one_line(text: str | None) -> str:
    if not text:
        return "-"
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 3] + "..."


def hosts_table(states: Sequence[HostState]) -> str:
    header = ("HOST", "POOL", "STATUS", "ACCEL", "QEMU", "LEVEL", "COLLECTED", "STAGE", "ERROR")
    rows = [header] + [
        (
            s.host,
            s.pool,
            s.status,
            s.accel or "-",
            s.qemu_version or "-",
            s.abi_level or "-",
            rfc3339(s.collected_at),
            s.stage or "-",
            _one_line(s.error),
        )
        for s in states
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
