"""The typed records the store hands to its consumers (``hosts``, baseline, verify, analysis).

Why records and not DataFrames: the baseline and verify code is pure logic
that must be type-checked; a DataFrame's columns are invisible to mypy. The
CPU data itself comes back as the probe's own records (``MachineProbe``,
``CpuModel``, ``Expansion``, ``FeatureWord``, ``VcpuProps``, ``HostFacts``),
so code written against a live probe works unchanged on stored data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ..outcome import ConnectionSpec
from ..probe.document import HostFacts, MachineInfo, MachineProbe
from ..vocabulary import Accel, Status

__all__ = ["AccelLatest", "HostSnapshot", "HostState", "RunInfo"]


@dataclass(frozen=True)
class RunInfo:
    """One committed run (a row of ``runs``)."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    command: str
    inventory: str | None
    fleetcpu_version: str
    #: complete | interrupted (Ctrl-C or an error: every host added before it is kept) |
    #: partial (layout 2: being written now; its committed parts so far) | killed (layout
    #: 2: its writer died before its last part; its committed parts are all of it)
    status: str
    hosts_ok: int
    hosts_failed: int
    hosts_detail: int
    #: Commit records: 1 in layout 1, the committed parts in layout 2.
    parts: int = 1


@dataclass(frozen=True)
class AccelLatest:
    """A host's latest successful run under one accelerator, and where its CPU data lives."""

    run: str
    collected_at: datetime
    detail_run: str | None
    cpu_digest: str | None


@dataclass(frozen=True)
class HostState:
    """The latest record of one host (a row of the index), failed or not."""

    host: str
    pool: str
    run: str
    collected_at: datetime
    status: str
    stage: str | None
    error: str | None
    error_code: str | None
    accel: str | None
    qemu_version: str | None
    cpu_digest: str | None
    detail_run: str | None
    #: Latest successful data per accelerator, None when the host never succeeded with it.
    kvm: AccelLatest | None
    tcg: AccelLatest | None
    #: Machine types the inventory declared for the host's pool at its latest run.
    declared_machine_types: tuple[str, ...] = ()
    #: The x86-64 level of the latest record's CPU data (hosts schema 3); None: unknown.
    abi_level: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def latest_ok(self, accel: str) -> AccelLatest | None:
        if accel == Accel.KVM:
            return self.kvm
        if accel == Accel.TCG:
            return self.tcg
        return None


@dataclass(frozen=True)
class HostSnapshot:
    """A host's latest successful data for one accelerator, rebuilt from the tables.

    ``run`` is the successful run (facts, QEMU and connection come from its
    ``hosts`` row); ``detail_run`` is the possibly older run holding the
    identical CPU data.
    """

    host: str
    pool: str
    accel: str
    run: str
    collected_at: datetime
    detail_run: str
    cpu_digest: str
    facts: HostFacts
    qemu_version: str | None
    qemu_package: str | None
    qemu_binary: str | None
    probe_version: str | None
    connection: ConnectionSpec
    #: Resolved machine type -> everything its QEMU launch said, in probe order.
    machines: Mapping[str, MachineProbe]
    #: Its QEMU's machine list (``query-machines``: every type it can start, not only
    #: the probed ones); None when not recorded (a row written before ``hosts`` v2).
    qemu_machines: tuple[MachineInfo, ...] | None = None
