"""``--format json``: the ``fleetcpu.baseline/1`` document. Pure.

The shape is a contract (``fleetcpu/schemas/baseline-1.json``, checked by the
tests against every document they produce): keys may be added in a later
``/1`` document, never renamed or retyped; a breaking change is
``fleetcpu.baseline/2``. Times are RFC 3339 UTC with milliseconds, as in the
store. The explanations (``Baseline.blocked``/``models``) are not part of
``/1``: ``fleetcpu blockers`` will give them their own document.
"""

from __future__ import annotations

import json
from typing import Any

from ..baseline.types import Baseline
from ..vocabulary import rfc3339
from .rendered import Rendered

__all__ = ["render_json", "to_json"]


def to_json(b: Baseline) -> dict[str, Any]:
    """The document as plain JSON values, keys in the issue's order."""
    s = b.scalars
    return {
        "schema": b.schema,
        "pool": b.pool,
        "machine_type": b.machine_type,
        "accel": b.accel,
        "vendor": b.vendor,
        "model": b.model,
        "enable": list(b.enable),
        "disable": list(b.disable),
        "features": list(b.features),
        "scalars": {
            "family": s.family,
            "model": s.model,
            "stepping": s.stepping,
            "level": s.level,
            "xlevel": s.xlevel,
            "phys_bits": s.phys_bits,
        },
        "cpu": b.cpu,
        "custom": b.custom,
        "hosts": [
            {
                "host": h.host,
                "accel": h.accel,
                "qemu_version": h.qemu_version,
                "collected_at": rfc3339(h.collected_at),
            }
            for h in b.hosts
        ],
        "missing": [{"host": m.host, "code": m.code, "message": m.message} for m in b.missing],
        "warnings": [
            {"code": w.code, "feature": w.feature, "hosts": list(w.hosts), "message": w.message}
            for w in b.warnings
        ],
        # Added within /1 (keys added after the first release go last).
        "abi_level": b.abi_level,
    }


def render_json(b: Baseline) -> Rendered:
    return Rendered(json.dumps(to_json(b), indent=2) + "\n")
