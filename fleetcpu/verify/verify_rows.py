"""One ``HostVerdict`` -> its row of the store's ``verify`` table. Pure: no I/O, no pyarrow."""

from __future__ import annotations

import json

from .report import verdict_json
from .verdicts import HostVerdict, Target

__all__ = ["verify_row"]


def verify_row(verdict: HostVerdict, target: Target, reference: str | None) -> dict[str, object]:
    """The row, minus ``run_id`` (the writer's); differences as JSON, like ``hosts.attempts``."""
    diffs = verdict_json(verdict)["differences"]
    return {
        "host": verdict.host,
        "pool": verdict.pool,
        "collected_at": verdict.collected_at,
        "accel": target.accel,
        "machine_type": target.machine_type,
        "resolved_machine_type": verdict.machine_type,
        "cpu": target.cpu,
        "passed": verdict.passed,
        "verdict": verdict.verdict,
        "started": verdict.started,
        "exit_status": verdict.exit_status,
        "missing": list(verdict.missing),
        "filtered": list(verdict.filtered),
        "words_digest": verdict.words_digest,
        "equal_to_pool": verdict.equal_to_pool,
        "reference": reference,
        "differences": json.dumps(diffs) if diffs else None,
        "stage": verdict.stage,
        "error": verdict.error if verdict.error is not None else (verdict.reason or None),
        "error_code": verdict.error_code,
        "stderr_tail": verdict.stderr_tail or None,
        "qemu_version": verdict.qemu_version,
        "duration_s": verdict.duration_s,
    }
