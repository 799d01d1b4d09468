"""The pool's CPU as a contract: adopted, judged on every collect and import, reported by status.

Layers, one job each:

* ``cpu_string``  a ``-cpu`` string -> model, features switched on and off, properties (pure)
* ``judge``       the one rule: can host H start CPU string S on machine type M (pure)
* ``states``      the closed set of compliance states and one host's verdict as a row (pure)
* ``adoption``    the adopted CPU as a record and a row, and the change from the previous (pure)
* ``status``      a pool's status: members by state, headroom, ``fleetcpu.status/1`` (pure)
* ``prometheus``  the status as Prometheus text exposition (pure)
* ``shell``       the I/O shell: the store -> adoptions, verdicts, status; the .prom file

Only ``shell`` touches the store; the rest is tested on records. See docs/contract.md.
"""

from .cpu_string import CpuString, parse_cpu
from .judge import HostCpu, Verdict, judge

__all__ = ["CpuString", "HostCpu", "Verdict", "judge", "parse_cpu"]
