"""``fleetcpu verify``: prove a pool's CPU on its hosts, the 2015 self-test carried to a fleet.

Before an operator rolls a CPU model into production, every host of the
pool starts it (paused, with ``enforce``) on the pool's machine type, and
all of them must present the same CPU. Layers, one job each:

* ``fleetcpu.probe.verify``  the host half, shipped in the probe bundle:
  start, read the vCPU, stop; one ``fleetcpu.verify/1`` document
* ``plan``       the I/O shell before contact: inventory or store -> CPU,
  machine type, hosts and how to reach them
* ``interpret``  a command's bytes -> the host's document or a failure (pure)
* ``judge``      every host's answer -> a verdict per host (pure)
* ``render``     table or ``fleetcpu.verify-report/1`` (pure); ``rows``:
  the store's ``verify`` rows (pure)
* ``runner``     collect's transports, bundle, fan-out and retries; the
  stored run; the exit code

Only ``plan`` and ``runner`` do I/O; everything else is tested on records.
"""

from .judge import judge
from .records import VERDICTS, Difference, HostRun, HostVerdict, Target, VerifyReport
from .render import REPORT_SCHEMA

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
