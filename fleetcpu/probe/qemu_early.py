"""The probe's first milliseconds: QEMU boots while the rest of the probe is imported.

A probe mostly waits for the guest to come up to its QMP greeting.
Importing asyncio, qemu.qmp and the records takes about as long, so the
shipped entry point (``python3 -m fleetcpu.probe``) finds the binary,
starts the chain's first guest, and only then reads host facts (importing
the records) and the rest. ``run.run_probe`` takes the guest over as if it
had started it: same argv, same attempt, same cleanup, same deadline.

Nothing here decides what ``run`` would decide otherwise. A binary that is
missing or cannot be executed, a failed spawn or a signal already received
just leaves that step to ``run``, which takes it (and reports any error)
the usual way. Whether the binary is QEMU at all is ``run``'s question too:
the guest's QMP greeting answers it, and ``-version`` is asked only when no
launch answered.

Signals that arrive before the event loop runs are recorded, not acted on:
the loop cancels the probe on them at once, so QEMU is stopped, the work
directory removed and an ``interrupted`` document printed, as for any later
signal.

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from types import FrameType
from typing import TYPE_CHECKING, List, Optional

from ..errors import FleetcpuError
from ..vocabulary import now_rfc3339
from .launch_plan import DEFAULT_MACHINE, WORKDIR_PREFIX, ProbeOptions, chain, dev_kvm_state
from .qemu_spawn import Launch, find_binary

if TYPE_CHECKING:
    from .document import HostFacts

__all__ = ["INTERRUPTING", "Early", "begin"]

INTERRUPTING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Early:
    """What was started before the event loop, for ``run`` to take over."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.when = now_rfc3339()
        self.signals: List[int] = []
        self.facts: Optional[HostFacts] = None
        self.workdir: Optional[str] = None
        self.launch: Optional[Launch] = None

    def record_signal(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.signals.append(signum)

    def take_launch(self, binary: str, machine: str, accel: str, cpu: str) -> Optional[Launch]:
        """The pre-started guest if it is the one asked for (it always is: the chain's first)."""
        launch = self.launch
        if launch is None or (launch.argv[0], launch.machine, launch.accel, launch.cpu) != (
            binary,
            machine,
            accel,
            cpu,
        ):
            return None
        self.launch = None
        return launch


def begin(opts: ProbeOptions) -> Early:
    """Start the chain's first guest, then read host facts while it boots; never raises for host trouble."""
    early = Early()
    for sig in INTERRUPTING:
        signal.signal(sig, early.record_signal)
    try:
        binary = find_binary(opts.qemu_binary)
    except FleetcpuError:
        return early
    if early.signals:
        return early
    if not os.path.isdir(opts.host_root):
        return early  # run_probe reports it; no guest to start for it
    (accel, cpu), *_ = chain(opts.accel, dev_kvm_state())[0]
    machine = opts.machine_types[0] if opts.machine_types else DEFAULT_MACHINE
    early.workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
    launch = Launch(binary, machine, accel, cpu)
    try:
        launch.spawn(early.workdir)
    except FleetcpuError:
        pass  # run_probe meets the same error and reports it
    else:
        early.launch = launch
    from .facts import read_facts  # imports the records, while QEMU boots

    early.facts = read_facts(opts.host_root)
    return early
