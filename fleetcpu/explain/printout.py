"""``blockers`` and ``check`` as a table for people and JSON for scripts. Pure.

The JSON documents are contracts like ``fleetcpu.baseline/1``: keys may be
added in ``/1``, never renamed or retyped; ``BLOCKERS_JSON_SCHEMA`` and
``CHECK_JSON_SCHEMA`` (JSON Schema 2020-12, here as Python data so they ship
with the code) describe them and the tests validate every document against
them. Host lists are complete in JSON; the table abbreviates ("... and 40
more") so that a 10,000-host pool stays readable.
"""

from __future__ import annotations

import json
from typing import Any

from ..baseline.compute import host_list
from ..baseline.types import Baseline
from ..vocabulary import Accel, rfc3339
from .answers import Blockers, CheckResult, WhatIf

__all__ = [
    "BLOCKERS_JSON_SCHEMA",
    "CHECK_JSON_SCHEMA",
    "blockers_json",
    "blockers_table",
    "check_json",
    "check_table",
    "dumps",
]

_SCALARS = ("family", "model", "stepping", "level", "xlevel", "phys_bits")


def _pool_json(b: Baseline) -> dict[str, Any]:
    return {
        "model": b.model,
        "cpu": b.cpu,
        "custom": b.custom,
        "features": list(b.features),
        "scalars": {k: getattr(b.scalars, k) for k in _SCALARS},
    }


def _what_if_json(w: WhatIf) -> dict[str, Any]:
    return {
        "label": w.label,
        "hosts": list(w.hosts),
        "size": len(w.hosts),
        "score": round(w.score, 4),
        "gain": {
            "features": list(w.features),
            "model_before": w.model_before,
            "model_after": w.model_after,
            "new_models": list(w.new_models),
            "scalars": [{"scalar": s.scalar, "before": s.before, "after": s.after} for s in w.scalars],
        },
    }


def blockers_json(x: Blockers) -> dict[str, Any]:
    b = x.baseline
    return {
        "schema": x.schema,
        "pool": b.pool,
        "machine_type": b.machine_type,
        "accel": b.accel,
        "vendor": b.vendor,
        "baseline": _pool_json(b),
        "hosts": [
            {"host": h.host, "qemu_version": h.qemu_version, "collected_at": rfc3339(h.collected_at)}
            for h in b.hosts
        ],
        "features": [
            {"feature": f.feature, "reason": f.reason, "hosts": list(f.hosts), "message": f.message}
            for f in x.features
        ],
        "models": [
            {
                "model": m.model,
                "by_some_hosts": m.by_some_hosts,
                "hosts": list(m.hosts),
                "blocks": [
                    {"reason": blk.reason, "detail": blk.detail, "hosts": list(blk.hosts)} for blk in m.blocks
                ],
            }
            for m in x.models
        ],
        "groups": [_what_if_json(w) for w in x.groups],
        "missing": [{"host": m.host, "code": m.code, "message": m.message} for m in b.missing],
        "warnings": [
            {"code": w.code, "feature": w.feature, "hosts": list(w.hosts), "message": w.message}
            for w in b.warnings
        ],
    }


def _gain_text(w: WhatIf) -> str:
    parts = []
    if w.features:
        parts.append(f"+{len(w.features)} feature(s)")
    if w.model_after != w.model_before:
        parts.append(f"model {w.model_before} -> {w.model_after}")
    parts += [f"{s.scalar.replace('_', '-')} {s.before} -> {s.after}" for s in w.scalars]
    if w.new_models:
        parts.append(f"{len(w.new_models)} more model(s) usable")
    return ", ".join(parts) or "nothing"


def _names(names: list[str], limit: int) -> str:
    shown = " ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def blockers_table(x: Blockers, limit: int = 20) -> str:
    """The human report: what-ifs first (the actionable part), then features, then models."""
    b = x.baseline
    out = [
        f"pool {b.pool}: {len(b.hosts)} host(s), {b.machine_type}, {b.accel}, "
        f"{b.vendor or 'vendor unknown'}; model {b.model} (+{len(b.enable)} -{len(b.disable)}),"
        f" {len(b.features)} features",
        "",
    ]
    if x.groups:
        out.append(
            f"Without one group of identical hosts ({len(x.groups)} groups; best gain per "
            "host removed first):"
        )
        for w in x.groups[:limit]:
            out.append(f"  {w.label:<5} {len(w.hosts):>6} host(s): {_gain_text(w)}")
            out.append(f"        hosts: {host_list(list(w.hosts))}")
            if w.features:
                out.append(f"        features: {' '.join(w.features)}")
            if w.new_models:
                out.append(
                    f"        models: {' '.join(w.new_models[:12])}"
                    + (f" and {len(w.new_models) - 12} more" if len(w.new_models) > 12 else "")
                )
        if len(x.groups) > limit:
            out.append(f"  ... and {len(x.groups) - limit} more groups (--format json lists all)")
    else:
        out.append("Every member has the same CPU data: no host removal changes the result.")
    out += ["", f"Features the pool does not get ({len(x.features)}), by reason and hosts:"]
    by_cause: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for f in x.features:
        by_cause.setdefault((f.reason, f.hosts), []).append(f.feature)
    for (reason, hosts), names in sorted(
        by_cause.items(), key=lambda kv: (not kv[0][1], len(kv[0][1]), kv[0])
    ):
        who = host_list(list(hosts)) if hosts else "policy"
        out.append(f"  {reason} ({who}): {_names(names, limit * 2)}")
    some = [m for m in x.models if m.by_some_hosts]
    out += [
        "",
        f"Models some hosts block ({len(some)}; {len(x.models) - len(some)} more are "
        "blocked on every member or by naming rules, see --format json):",
    ]
    by_blocks: dict[tuple[tuple[str, str, tuple[str, ...]], ...], list[str]] = {}
    size: dict[tuple[tuple[str, str, tuple[str, ...]], ...], int] = {}
    for m in some:
        key = tuple((blk.reason, blk.detail, blk.hosts) for blk in m.blocks)
        by_blocks.setdefault(key, []).append(m.model)
        size[key] = len(m.hosts)  # the blocks' hosts, counted once (no set per key)
    ranked = sorted(by_blocks.items(), key=lambda kv: (size[kv[0]], kv[0]))
    for key, models in ranked[:limit]:
        reasons = "; ".join(
            f"{reason} on {host_list(list(hosts), 4)} ({detail})" for reason, detail, hosts in key
        )
        out.append(f"  {_names(models, limit)}: {reasons}")
    if len(ranked) > limit:
        out.append(f"  ... and {len(ranked) - limit} more lines (--format json lists all)")
    if b.missing:
        out += ["", f"Members not counted ({len(b.missing)}):"]
        out += [f"  {m.host} ({m.code}): {m.message}" for m in b.missing]
    return "\n".join(out) + "\n"


def check_json(c: CheckResult) -> dict[str, Any]:
    return {
        "schema": c.schema,
        "pool": c.pool,
        "machine_type": c.machine_type,
        "accel": c.accel,
        "host": c.host,
        "source": c.source,
        "member": c.member,
        "can_join": c.can_join,
        "before": _pool_json(c.before) if c.before else None,
        "after": _pool_json(c.after) if c.after else None,
        "changes": [
            {
                "kind": ch.kind,
                "message": ch.message,
                "feature": ch.feature,
                "before": ch.before,
                "after": ch.after,
            }
            for ch in c.changes
        ],
        "new_warnings": list(c.new_warnings),
        "missing": [{"host": m.host, "code": m.code, "message": m.message} for m in c.missing],
    }


def check_table(c: CheckResult) -> str:
    ref = "the pool without it" if c.member else "the pool"
    out = [
        f"{c.host} ({c.source}) vs pool {c.pool} ({c.machine_type}, {c.accel}): "
        + ("CAN join" if c.can_join else "CANNOT join")
        + f" (compared with {ref})"
    ]
    if c.before is not None:
        out.append(
            f"  now:       {c.before.model} (+{len(c.before.enable)} "
            f"-{len(c.before.disable)}), {len(c.before.features)} features"
        )
    if c.after is not None:
        out.append(
            f"  with it:   {c.after.model} (+{len(c.after.enable)} "
            f"-{len(c.after.disable)}), {len(c.after.features)} features"
        )
    out += [f"  - {ch.message}" for ch in c.changes]
    out += [f"  note {w}" for w in c.new_warnings]
    out += [f"  not counted: {m.host} ({m.code}): {m.message}" for m in c.missing]
    return "\n".join(out) + "\n"


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def _nullable(kind: str | list[str]) -> dict[str, Any]:
    kinds = [kind] if isinstance(kind, str) else kind
    return {"type": [*kinds, "null"]}


_STRINGS = {"type": "array", "items": {"type": "string"}}
_POOL = {
    "type": "object",
    "required": ["model", "cpu", "custom", "features", "scalars"],
    "properties": {
        "model": {"type": "string"},
        "cpu": {"type": "string"},
        "custom": {"type": "string"},
        "features": _STRINGS,
        "scalars": {
            "type": "object",
            "required": list(_SCALARS),
            "properties": {k: _nullable("integer") for k in _SCALARS},
        },
    },
}
_SCALAR_CHANGE = {
    "type": "object",
    "required": ["scalar", "before", "after"],
    "properties": {
        "scalar": {"type": "string"},
        "before": _nullable(["integer", "string"]),
        "after": _nullable(["integer", "string"]),
    },
}
_COMMON = {
    "schema": {"type": "string"},
    "pool": {"type": "string"},
    "machine_type": {"type": "string"},
    "accel": {"enum": list(Accel.values())},
}

BLOCKERS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fleetcpu.blockers/1",
    "type": "object",
    "required": [
        "schema",
        "pool",
        "machine_type",
        "accel",
        "vendor",
        "baseline",
        "hosts",
        "features",
        "models",
        "groups",
        "missing",
        "warnings",
    ],
    "properties": {
        **_COMMON,
        "schema": {"const": "fleetcpu.blockers/1"},
        "vendor": _nullable("string"),
        "baseline": _POOL,
        "hosts": {
            "type": "array",
            "items": {"type": "object", "required": ["host", "qemu_version", "collected_at"]},
        },
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["feature", "reason", "hosts", "message"],
                "properties": {
                    "feature": {"type": "string"},
                    "reason": {
                        "enum": [
                            "not-offered",
                            "non-migratable",
                            "nested-policy",
                            "nested-off",
                            "kvm-pv-policy",
                            "tsx-policy",
                        ]
                    },
                    "hosts": _STRINGS,
                    "message": {"type": "string"},
                },
            },
        },
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["model", "by_some_hosts", "hosts", "blocks"],
                "properties": {
                    "model": {"type": "string"},
                    "by_some_hosts": {"type": "boolean"},
                    "hosts": _STRINGS,
                    "blocks": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["reason", "detail", "hosts"],
                            "properties": {
                                "reason": {"type": "string"},
                                "detail": {"type": "string"},
                                "hosts": _STRINGS,
                            },
                        },
                    },
                },
            },
        },
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label", "hosts", "size", "score", "gain"],
                "properties": {
                    "label": {"type": "string"},
                    "hosts": _STRINGS,
                    "size": {"type": "integer", "minimum": 1},
                    "score": {"type": "number"},
                    "gain": {
                        "type": "object",
                        "required": ["features", "model_before", "model_after", "new_models", "scalars"],
                        "properties": {
                            "features": _STRINGS,
                            "model_before": {"type": "string"},
                            "model_after": {"type": "string"},
                            "new_models": _STRINGS,
                            "scalars": {"type": "array", "items": _SCALAR_CHANGE},
                        },
                    },
                },
            },
        },
        "missing": {"type": "array"},
        "warnings": {"type": "array"},
    },
}

CHECK_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fleetcpu.check/1",
    "type": "object",
    "required": [
        "schema",
        "pool",
        "machine_type",
        "accel",
        "host",
        "source",
        "member",
        "can_join",
        "before",
        "after",
        "changes",
        "new_warnings",
        "missing",
    ],
    "properties": {
        **_COMMON,
        "schema": {"const": "fleetcpu.check/1"},
        "host": {"type": "string"},
        "source": {"enum": ["store", "document"]},
        "member": {"type": "boolean"},
        "can_join": {"type": "boolean"},
        "before": {"oneOf": [_POOL, {"type": "null"}]},
        "after": {"oneOf": [_POOL, {"type": "null"}]},
        "changes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kind", "message", "feature", "before", "after"],
                "properties": {
                    "kind": {
                        "enum": [
                            "feature-removed",
                            "model-changed",
                            "spelling-changed",
                            "scalar-dropped",
                            "vendor-differs",
                            "machine-type-missing",
                        ]
                    },
                    "message": {"type": "string"},
                    "feature": _nullable("string"),
                    "before": _nullable(["integer", "string"]),
                    "after": _nullable(["integer", "string"]),
                },
            },
        },
        "new_warnings": _STRINGS,
        "missing": {"type": "array", "items": {"type": "object", "required": ["host", "code", "message"]}},
    },
}
