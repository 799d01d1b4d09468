"""The status as Prometheus text exposition, for node_exporter's textfile collector. Pure.

Why metrics at all: operators alert from their own Prometheus, not from a
command's exit code. One series per host (complies or not), per pool the
members in every state (zeros included, so a state that empties is a 0,
not a vanished series), the headroom, the adopted feature count, and the
time of the last successful collect (alert when it stops moving).
"""

from __future__ import annotations

from collections.abc import Sequence

from .states import COMPLIANT, STATES
from .status import PoolStatus

__all__ = ["METRICS", "render"]

#: name -> help; every metric is a gauge.
METRICS = {
    "fleetcpu_host_compliant": "1 if the host can start its pool's adopted CPU, else 0.",
    "fleetcpu_pool_members": "Members of the pool in each compliance state.",
    "fleetcpu_pool_adopted_features": "Features of the pool's adopted CPU.",
    "fleetcpu_pool_adopted_timestamp_seconds": "When the pool's CPU was adopted.",
    "fleetcpu_pool_headroom_features": "Features today's baseline would add over the adopted CPU.",
    "fleetcpu_pool_lost_features": "Adopted features today's baseline no longer has.",
    "fleetcpu_pool_last_successful_collect_timestamp_seconds": (
        "Latest successful probe of any member of the pool."
    ),
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: dict[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    text = repr(float(value)) if value != int(value) else str(int(value))
    return f"{name}{{{inner}}} {text}"


def render(statuses: Sequence[PoolStatus]) -> str:
    samples: dict[str, list[str]] = {name: [] for name in METRICS}
    for s in statuses:
        pool = {"pool": s.pool}
        if s.adoption is not None:
            for m in s.members:
                samples["fleetcpu_host_compliant"].append(
                    _series(
                        "fleetcpu_host_compliant",
                        {"pool": s.pool, "host": m.host},
                        1 if m.state == COMPLIANT else 0,
                    )
                )
            counts = s.counts()
            for state in STATES:
                samples["fleetcpu_pool_members"].append(
                    _series("fleetcpu_pool_members", {**pool, "state": state}, counts[state])
                )
            samples["fleetcpu_pool_adopted_features"].append(
                _series("fleetcpu_pool_adopted_features", pool, len(s.adoption.features))
            )
            samples["fleetcpu_pool_adopted_timestamp_seconds"].append(
                _series("fleetcpu_pool_adopted_timestamp_seconds", pool, s.adoption.adopted_at.timestamp())
            )
        if s.headroom is not None and s.headroom.problem is None:
            samples["fleetcpu_pool_headroom_features"].append(
                _series("fleetcpu_pool_headroom_features", pool, len(s.headroom.gain))
            )
            samples["fleetcpu_pool_lost_features"].append(
                _series("fleetcpu_pool_lost_features", pool, len(s.headroom.lost))
            )
        if s.last_collect is not None:
            samples["fleetcpu_pool_last_successful_collect_timestamp_seconds"].append(
                _series(
                    "fleetcpu_pool_last_successful_collect_timestamp_seconds",
                    pool,
                    s.last_collect.timestamp(),
                )
            )
    out = []
    for name, help_text in METRICS.items():
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(samples[name])
    return "\n".join(out) + "\n"
