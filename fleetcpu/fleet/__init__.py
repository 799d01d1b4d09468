"""The fleet transport: reaching many hosts and running one command on each.

``collect`` and ``verify`` both stand on it: the inventory (which hosts,
pools and connection settings every command that touches the fleet must
agree on), host-key policy, the ssh and local transports, the probe bundle
and the bootstrap that unpacks it on a host, bounded fan-out with retries,
and the progress line. Everything here runs on the operator's machine
(Python >= 3.11); the only code it sends to a host is ``bootstrap_host``
and the bundle of ``fleetcpu.probe``.
"""

__all__ = []
