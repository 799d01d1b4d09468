"""The typed records of one ``fleetcpu verify`` run: what came back, and what it means.

Why two layers: ``HostRun`` is what one host gave back (its verify
document, or a failure before or around it), known without looking at any
other host; ``HostVerdict`` is its judgement, which needs every host (all
must present the same CPU). ``judge`` turns the first into the second and is
pure, so every verdict is tested on records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from ..probe.document import VcpuProps
from ..probe.enforce_document import VerifyDocument

__all__ = ["VERDICTS", "Difference", "HostRun", "HostVerdict", "Target", "VerifyReport"]

#: Every verdict, in the order a host can fall short; only ``pass`` passes.
#: refused: QEMU would not start the CPU with enforce (the features it named,
#: its stderr); filtered: it started but dropped features (a QEMU that ignored
#: enforce); unverified: it started clean but its feature-words could not be
#: read, so nothing proves it presents the pool's CPU; differs: its CPU is not
#: the reference's; failed: no answer (connect, hostkey, python, timeout...).
VERDICTS = ("pass", "refused", "filtered", "unverified", "differs", "failed")


@dataclass(frozen=True)
class Target:
    """What is verified, on which machine type and accelerator, and where the CPU came from."""

    pool: str
    accel: str
    #: As handed to every host: the baseline's (versioned) or ``--machine-type``.
    machine_type: str
    #: The -cpu string, without the ``,enforce`` every host adds.
    cpu: str
    #: ``baseline`` (the pool's computed named CPU) or ``option`` (``--cpu``).
    cpu_source: str
    #: The baseline's named model, when the CPU came from it.
    model: str | None = None


@dataclass(frozen=True)
class HostRun:
    """What one host gave back; ``stage`` set: it failed outside (or around) its document."""

    host: str
    pool: str
    #: Orchestrator clock (UTC), when this host's answer was taken.
    collected_at: datetime
    duration_s: float
    document: VerifyDocument | None
    stage: str | None = None
    error: str | None = None
    error_code: str | None = None
    #: The command's stderr tail (a traceback, the shell's complaint).
    stderr_tail: str = ""


@dataclass(frozen=True)
class Difference:
    """One way a host's vCPU differs from the reference's.

    ``kind`` register: ``name`` is ``0x<leaf>.<subleaf>.<reg>``, ``host`` and
    ``pool`` the register values (0 when QEMU did not list it), ``extra`` the
    features only this host shows, ``lacking`` those it lacks. ``kind``
    scalar: ``name`` is a ``VcpuProps`` field, ``host``/``pool`` its values.
    """

    kind: str
    name: str
    host: int | str
    pool: int | str
    extra: tuple[str, ...] = ()
    lacking: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostVerdict:
    """One host's judgement, with the evidence a report and the store need."""

    host: str
    pool: str
    collected_at: datetime
    duration_s: float
    verdict: str
    #: One line saying why (empty for a plain pass).
    reason: str
    started: bool | None = None
    exit_status: int | None = None
    #: The versioned machine type the host's QEMU resolved the request to.
    machine_type: str | None = None
    qemu_version: str | None = None
    missing: tuple[str, ...] = ()
    filtered: tuple[str, ...] = ()
    words_digest: str | None = None
    equal_to_pool: bool | None = None
    differences: tuple[Difference, ...] = ()
    vcpu: VcpuProps | None = None
    stage: str | None = None
    error: str | None = None
    error_code: str | None = None
    stderr_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass(frozen=True)
class VerifyReport:
    """The pool's answer: every host's verdict and the vCPU they were held against."""

    target: Target
    hosts: tuple[HostVerdict, ...]
    #: The host whose vCPU every other host must equal (None: no vCPU could be read).
    reference: str | None
    reference_digest: str | None
    run_id: str | None = None
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        """Every member passed; a pool with no host verified proves nothing and fails."""
        return bool(self.hosts) and all(h.passed for h in self.hosts) and not self.interrupted

    def counts(self) -> Counter[str]:
        return Counter(h.verdict for h in self.hosts)
