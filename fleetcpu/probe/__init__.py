"""The host-side probe: launches the host's own QEMU and records what its CPU offers.

Runs on the host's Python 3.9 with only the standard library and qemu.qmp;
the orchestrator ships this package alone (see ``fleetcpu.fleet.bundle``).
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["probe_and_print"]


def probe_and_print(values: Mapping[str, Any]) -> int:
    """The probe as one call (``fleetcpu probe``'s body): the flags of
    ``fleetcpu.probe.flags.FLAGS``, parsed, in (keyed by their ``dest``); one
    document on stdout, its error on stderr; its exit code out."""
    from .__main__ import run

    return run(values, head_start=False)
