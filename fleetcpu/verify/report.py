"""A verify report as the operator reads it (a table) or a program does (``fleetcpu.verify-report/1``).

Pure: strings out, no printing. The summary line always comes last, and
says how many hosts passed and, per verdict, how many did not: "3 hosts
failed" is not actionable, "2 refused, 1 differs" is.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..store.layout import rfc3339
from .verdicts import VERDICTS, Difference, HostVerdict, VerifyReport

__all__ = [
    "DETAIL_WIDTH",
    "FORMATS",
    "REPORT_SCHEMA",
    "render",
    "report_json",
    "summary_line",
    "table",
    "verdict_json",
]

FORMATS = ("table", "json")
REPORT_SCHEMA = "fleetcpu.verify-report/1"
#: Characters of the DETAIL column before it is cut (the JSON and the store keep everything).
DETAIL_WIDTH = 160


def _difference(d: Difference) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "name": d.name,
        "host": d.host,
        "pool": d.pool,
        "extra": list(d.extra),
        "lacking": list(d.lacking),
    }


def verdict_json(h: HostVerdict) -> dict[str, Any]:
    return {
        "host": h.host,
        "verdict": h.verdict,
        "passed": h.passed,
        "reason": h.reason,
        "started": h.started,
        "exit_status": h.exit_status,
        "machine_type": h.machine_type,
        "qemu_version": h.qemu_version,
        "missing": list(h.missing),
        "filtered": list(h.filtered),
        "words_digest": h.words_digest,
        "equal_to_pool": h.equal_to_pool,
        "differences": [_difference(d) for d in h.differences],
        "vcpu": dataclasses.asdict(h.vcpu) if h.vcpu is not None else None,
        "stage": h.stage,
        "error": h.error,
        "error_code": h.error_code,
        "stderr_tail": h.stderr_tail,
        "collected_at": rfc3339(h.collected_at),
        "duration_s": h.duration_s,
    }


def report_json(report: VerifyReport) -> dict[str, Any]:
    t = report.target
    counts = report.counts()
    passed = counts.get("pass", 0)
    return {
        "schema": REPORT_SCHEMA,
        "pool": t.pool,
        "accel": t.accel,
        "machine_type": t.machine_type,
        "cpu": t.cpu,
        "cpu_source": t.cpu_source,
        "model": t.model,
        "run_id": report.run_id,
        "passed": report.passed,
        "interrupted": report.interrupted,
        "reference": None
        if report.reference is None
        else {"host": report.reference, "words_digest": report.reference_digest},
        "summary": {
            "hosts": len(report.hosts),
            "passed": passed,
            "failed": len(report.hosts) - passed,
            "verdicts": {v: counts[v] for v in VERDICTS if counts.get(v)},
        },
        "hosts": [verdict_json(h) for h in report.hosts],
    }


def summary_line(report: VerifyReport) -> str:
    t = report.target
    n = len(report.hosts)
    counts = report.counts()
    run = f"; run {report.run_id}" if report.run_id else ""
    took = f" in {report.elapsed_s:.1f}s"
    if report.passed:
        return f"verified pool {t.pool}: all {n} host(s) passed{took}{run}"
    failed = ", ".join(f"{v} {counts[v]}" for v in VERDICTS if v != "pass" and counts.get(v))
    head = "interrupted: " if report.interrupted else ""
    return (
        f"{head}verify of pool {t.pool} FAILED: {counts.get('pass', 0)} of {n} host(s) passed"
        f"{f', {failed}' if failed else ''}{took}{run}"
    )


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _detail(h: HostVerdict, reference: str | None) -> str:
    if h.passed:
        return "reference" if h.host == reference else ""
    text = h.reason.replace("\n", " ")
    return text if len(text) <= DETAIL_WIDTH else text[: DETAIL_WIDTH - 3] + "..."


def table(report: VerifyReport) -> str:
    t = report.target
    source = (
        f"the pool's baseline ({t.model})"
        if t.cpu_source == "baseline" and t.model
        else "the pool's baseline"
        if t.cpu_source == "baseline"
        else "--cpu"
    )
    lines = [
        f"pool {t.pool}, machine type {t.machine_type}, accel {t.accel}, CPU from {source}:",
        f"  -cpu {t.cpu},enforce",
        "",
    ]
    head = ("HOST", "VERDICT", "STARTED", "FILTERED", "SAME CPU", "DETAIL")
    rows = [head] + [
        (
            h.host,
            h.verdict,
            _yes_no(h.started),
            "-" if h.started is not True else (",".join(h.filtered) or "none"),
            _yes_no(h.equal_to_pool),
            _detail(h, report.reference),
        )
        for h in report.hosts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    lines.append("")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def render(report: VerifyReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report_json(report), indent=2) + "\n"
    if fmt == "table":
        return table(report)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
