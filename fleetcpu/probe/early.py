"""The probe's first tens of milliseconds: QEMU boots while the rest of the probe is imported.

A probe mostly waits: for ``QEMU -version``, then for the guest to come up
to its QMP greeting. Importing asyncio, qemu.qmp and the records takes about
as long, so the shipped entry point (``python3 -m fleetcpu.probe``) starts
``-version`` first, reads host facts while it runs, and once the banner has
proved the binary is QEMU starts the chain's first guest, and only then
imports the rest. ``run.run_probe`` takes both processes over as if it had
started them: same argv, same attempts, same cleanup, same deadline.

Nothing here decides what ``run`` would decide otherwise. A binary that is
missing or not QEMU, a ``-version`` still running, a failed spawn or a
signal already received just leaves that step to ``run``, which takes it
(and reports any error) the usual way.

Signals that arrive before the event loop runs are recorded, not acted on:
the loop cancels the probe on them at once, so QEMU is stopped, the work
directory removed and an ``interrupted`` document printed, as for any later
signal.

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import signal
import tempfile
import time
from types import FrameType
from typing import TYPE_CHECKING, List, Optional

from ..errors import FleetcpuError
from .child import Launch, VersionRun, find_binary
from .plan import DEFAULT_MACHINE, WORKDIR_PREFIX, ProbeOptions, chain

if TYPE_CHECKING:
    from .records import HostFacts

#: How long the entry point waits for ``-version`` before leaving it to the event loop.
VERSION_WAIT = 1.0
INTERRUPTING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def now_rfc3339() -> str:
    """UTC now to the millisecond (``2026-01-01T00:00:00.000Z``), without importing datetime."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%03dZ" % (
        ns // 10**6 % 1000
    )


class Early:
    """What was started before the event loop, for ``run`` to take over."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.when = now_rfc3339()
        self.signals: List[int] = []
        self.facts: Optional[HostFacts] = None
        self.version: Optional[VersionRun] = None
        self.workdir: Optional[str] = None
        self.launch: Optional[Launch] = None

    def record_signal(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.signals.append(signum)

    def take_launch(self, machine: str, accel: str, cpu: str) -> Optional[Launch]:
        """The pre-started guest if it is the one asked for (it always is: the chain's first)."""
        launch = self.launch
        if launch is None or (launch.machine, launch.accel, launch.cpu) != (machine, accel, cpu):
            return None
        self.launch = None
        return launch


def begin(opts: ProbeOptions) -> Early:
    """Start ``-version`` and, when it proves QEMU, the first guest; never raises for host trouble."""
    early = Early()
    for sig in INTERRUPTING:
        signal.signal(sig, early.record_signal)
    try:
        early.version = VersionRun(find_binary(opts.qemu_binary))
    except FleetcpuError:
        return early
    from .facts import read_facts  # imports the records, while -version runs

    early.facts = read_facts(opts.host_root)
    if not early.version.wait(VERSION_WAIT) or early.signals:
        return early
    try:
        early.version.version()
    except FleetcpuError:
        return early
    (accel, cpu), *_ = chain(opts.accel, early.facts.dev_kvm)[0]
    machine = opts.machine_types[0] if opts.machine_types else DEFAULT_MACHINE
    early.workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
    launch = Launch(early.version.binary, machine, accel, cpu)
    try:
        launch.spawn(early.workdir)
    except OSError:
        return early
    early.launch = launch
    return early
