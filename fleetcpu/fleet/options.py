"""How the fleet is reached in one run: concurrency, timeouts, retries, ssh settings, transports.

``collect`` and ``verify`` take the same flags for these and must mean the
same by them (the same per-host deadline, the same transports), so both read
them from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .fanout import RetryPolicy
from .inventory import DEFAULT_MAX_HOSTS, HostSpec
from .ssh import SshSettings
from .transport import Transport

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_TIMEOUT", "FleetOptions", "build_transports"]

#: Why 32: the orchestrator is one event loop, and it spends ~5.5 ms of CPU per
#: host, of which ~4.3 ms is the bare SSH session (key exchange, login, close)
#: and the rest the ~80 KB upload, the ~80 KB document and the store
#: (benchmarks/collect_bench.py), so it saturates one core at ~170 hosts/s. A real
#: probe keeps a host busy 0.5-1 s, so ~32 hosts in flight reach 30-60 hosts/s
#: and ~128 would reach the core's limit; more only queues work in memory (one
#: document per host in flight) and makes a shared bastion's sshd (MaxStartups
#: 10:30:100) drop more connections. Far below the default 1024-descriptor limit
#: either way.
DEFAULT_CONCURRENCY = 32
#: Per-host command timeout: a KVM probe of a few machine types takes ~1 s; a
#: loaded host with a slow disk may take tens of seconds to start QEMU.
DEFAULT_TIMEOUT = 90.0


@dataclass(frozen=True)
class FleetOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 2
    backoff: float = 0.5
    ssh: SshSettings = field(default_factory=SshSettings)
    strict_inventory: bool = False
    max_hosts: int = DEFAULT_MAX_HOSTS

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(retries=self.retries, base=self.backoff)

    def host_deadline(self, retry: RetryPolicy) -> float:
        """Safety net over one host's retries + command + cleanup (collect's and verify's).

        The transports' own bounds normally end first; this catches a bug or
        a stuck library, so a host can never hold a worker forever.
        """
        return (
            (self.retries + 1) * self.ssh.connect_timeout
            + retry.worst_case()
            + self.timeout
            + 2 * self.ssh.grace
            + 5.0
        )


def build_transports(hosts: Sequence[HostSpec], options: FleetOptions) -> dict[str, Transport]:
    """Only the transports the inventory uses: a local-only run needs no key, config or known_hosts."""
    names = {h.transport for h in hosts}
    out: dict[str, Transport] = {}
    if "local" in names:
        from .local import LocalTransport

        out["local"] = LocalTransport(grace=options.ssh.grace)
    if "ssh" in names:
        from .ssh import SshTransport

        out["ssh"] = SshTransport(options.ssh)
    return out
