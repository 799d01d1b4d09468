"""libvirt's view of CPUs: its ``cpu_map`` tables, and a baseline spelt in its terms.

* ``cpumap``  reads a cpu_map directory (the only I/O here) into pure records
* ``spell``   a ``Baseline`` -> libvirt model + ``require``/``disable`` features (pure)

Used by the ``libvirt``, ``nova`` and ``kubevirt`` export formats
(``fleetcpu.export``), which all hand the CPU to libvirt in the end.
"""

from .cpumap import SYSTEM_CPU_MAP, CpuMap, CpuMapError, LibvirtFeature, LibvirtModel, load_cpu_map
from .spell import LibvirtCpu, spell

__all__ = [
    "SYSTEM_CPU_MAP",
    "CpuMap",
    "CpuMapError",
    "LibvirtCpu",
    "LibvirtFeature",
    "LibvirtModel",
    "load_cpu_map",
    "spell",
]
