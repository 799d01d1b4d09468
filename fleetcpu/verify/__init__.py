"""``fleetcpu verify``: prove a pool's CPU on its hosts, the 2015 self-test carried to a fleet.

Before an operator rolls a CPU model into production, every host of the
pool starts it (paused, with ``enforce``) on the pool's machine type, and
all of them must present the same CPU. Layers, one job each:

* ``fleetcpu.probe.enforce``  the host half, shipped in the probe bundle:
  start, read the vCPU, stop; one ``fleetcpu.verify/1`` document
* ``targets``    the I/O shell before contact: inventory or store -> CPU,
  machine type, hosts and how to reach them
* ``enforce_reply`` a command's bytes -> the host's document or a failure (pure)
* ``judge``      every host's answer -> a verdict per host (pure)
* ``report``     table or ``fleetcpu.verify-report/1`` (pure); ``verify_rows``:
  the store's ``verify`` rows (pure)
* ``verify_fleet`` the fleet transports, bundle, fan-out and retries; the
  stored run; the exit code

Only ``targets`` and ``verify_fleet`` do I/O; everything else is tested on records.
"""

from .judge import judge
from .report import REPORT_SCHEMA
from .verdicts import VERDICTS, Difference, HostRun, HostVerdict, Target, VerifyReport

__all__ = [
    "REPORT_SCHEMA",
    "VERDICTS",
    "Difference",
    "HostRun",
    "HostVerdict",
    "Target",
    "VerifyReport",
    "judge",
]
