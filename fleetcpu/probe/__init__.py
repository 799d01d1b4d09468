"""The host-side probe: launches the host's own QEMU and records what its CPU offers.

Runs on the host's Python 3.9 with only the standard library and qemu.qmp;
the orchestrator ships this package alone (see ``fleetcpu.fleet.bundle``).
"""

__all__ = []
