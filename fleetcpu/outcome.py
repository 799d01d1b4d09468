"""What happened to one host in one run: the record ``collect`` and ``import`` hand to the store.

A failed host is data, not an exception: it carries the stage where it
stopped (connect, hostkey, auth, upload, python, facts, qemu, qmp, timeout,
output, cleanup, ...), the message, and the evidence (stderr tail, the probe's failed
document when there is one), so history can answer "since when did kvm17
stop answering, and why?".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .probe.document import ProbeDocument
from .vocabulary import Stage

__all__ = ["STAGES", "ConnectionSpec", "HostOutcome"]

#: Failure stages, in the order a collection passes through them (``vocabulary.Stage``).
STAGES = Stage.values()


@dataclass(frozen=True)
class ConnectionSpec:
    """How the host was reached, so later commands (verify) can reach it again. Never secrets."""

    transport: str  # "ssh" | "local" | "import"
    address: str | None = None
    port: int | None = None
    user: str | None = None
    python: str | None = None
    qemu: str | None = None


@dataclass(frozen=True)
class HostOutcome:
    host: str
    pool: str
    #: Orchestrator clock (UTC), when this host's result was taken.
    collected_at: datetime
    #: The probe's document when one was obtained (ok, or failed with its own stage).
    document: ProbeDocument | None
    connection: ConnectionSpec
    #: Set when the host failed outside the probe (ssh, upload, garbage output...).
    stage: str | None = None
    error: str | None = None
    error_code: str | None = None
    stderr_tail: str = ""
    duration_s: float = 0.0
    #: Machine types the inventory declares for the host's pool (what its VMs pin).
    declared_machine_types: tuple[str, ...] = ()
    #: Lines of a login banner skipped before the document (noted in ``stderr_tail`` too).
    banner: int = 0

    @property
    def ok(self) -> bool:
        return self.stage is None and self.document is not None and self.document.ok

    @property
    def failure_stage(self) -> str | None:
        if self.stage is not None:
            return self.stage
        if self.document is not None and not self.document.ok:
            return self.document.stage
        return None if self.document is not None else Stage.OUTPUT

    @property
    def failure_message(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.document is not None and not self.document.ok:
            return self.document.error
        return None
