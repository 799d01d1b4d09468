"""What one host gave back, or why it could not be asked: plain records, no I/O.

Apart from ``transport`` (which drives commands under asyncio) so that the
pure code reading a host's answer (``collect.probe_reply``,
``verify.enforce_reply``) and its tests need only these records.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STDERR_TAIL", "STDOUT_BUDGET", "STDOUT_CAP", "STDOUT_FREE", "HostFailure", "RemoteRun"]

#: A probe document is ~100 KB per machine type; 32 MiB is far beyond any honest answer.
STDOUT_CAP = 32 * 1024 * 1024
#: Enough for a Python traceback or QEMU's complaint, bounded per host.
STDERR_TAIL = 8 * 1024
#: stdout every host may hold without asking: a probe document of several machine types.
STDOUT_FREE = 1024 * 1024
#: stdout beyond that, summed over every host in flight of this process: with the free
#: share of 32 hosts, the collector's output buffers stay under ~300 MiB.
STDOUT_BUDGET = 256 * 1024 * 1024


class HostFailure(Exception):
    """The host could not be asked at all; becomes a failure row, never reaches the CLI.

    ``transient`` failures (refused or reset connections, connect timeouts:
    what sshd's MaxStartups and a busy network look like) may be retried;
    the others (host key, auth, bad address) will not change by retrying.
    """

    def __init__(
        self,
        stage: str,
        message: str,
        *,
        transient: bool = False,
        evidence: str = "",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.transient = transient
        self.evidence = evidence
        self.code = code

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RemoteRun:
    """What one started command gave back; ``probe_reply`` turns it into an outcome."""

    stdout: bytes
    stderr_tail: bytes
    exit_status: int | None
    #: Signal name without "SIG" (``KILL``) when the command died of a signal.
    exit_signal: str | None
    duration_s: float
    #: The command outlived the deadline: stdin was closed and SIGTERM sent.
    timed_out: bool = False
    #: It did not even stop after the grace period and was closed hard.
    killed: bool = False
    #: stdout went over ``STDOUT_CAP``, or over the shared budget (``over_budget``);
    #: the rest was read and dropped.
    stdout_overflow: bool = False
    over_budget: bool = False
    #: Writing the bundle to stdin failed (the command closed it, or the channel died).
    upload_error: str | None = None
    #: The connection or channel was lost before the command's exit was reported.
    lost: str | None = None
