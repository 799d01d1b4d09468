"""``fleetcpu collect``: one probe per host over the fleet transport, one stored row per host.

Everything here runs on the operator's machine (Python >= 3.11), never on a
KVM host. How hosts are reached (inventory, ssh, bundle, fan-out) lives in
``fleetcpu.fleet``, shared with ``verify``; this package is what a collect
adds on top: reading each host's reply as a probe document
(``probe_reply``, with the run's own ``probe.document_decoder``) and the run itself
(``collect_fleet``).
"""

__all__ = []
