"""Host facts read from files under a root directory, never from the running kernel.

Reading under ``--host-root`` lets a probe in a container report the host's
``/proc`` and ``/sys`` mounted elsewhere, and lets tests give a replayed host
a synthetic identity (another CPU, another microcode) without root.
Facts explain a CPU (why did TSX vanish? a microcode update); they never
decide what a guest can run: that comes from QEMU.

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Optional

from ..vocabulary import KvmNested
from .document import CpuFacts, HostFacts
from .launch_plan import dev_kvm_state

__all__ = ["SYNTHETIC_MARKER", "parse_cpuinfo", "read_facts"]

#: A file at the host root whose content labels facts as made up for tests.
SYNTHETIC_MARKER = "fleetcpu-synthetic"


def _read(root: str, rel: str) -> Optional[str]:
    try:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _first_line(root: str, rel: str) -> Optional[str]:
    text = _read(root, rel)
    if text is None:
        return None
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line or None


def parse_cpuinfo(text: str) -> CpuFacts:
    """The first processor block of ``/proc/cpuinfo`` (x86 layout)."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())

    def num(key: str) -> Optional[int]:
        try:
            return int(fields[key], 0)
        except (KeyError, ValueError):
            return None

    microcode = fields.get("microcode")
    if microcode is not None:
        with contextlib.suppress(ValueError):  # keep an odd spelling as the kernel gave it
            microcode = hex(int(microcode, 0))
    return CpuFacts(
        vendor=fields.get("vendor_id"),
        family=num("cpu family"),
        model=num("model"),
        stepping=num("stepping"),
        model_name=fields.get("model name"),
        microcode=microcode,
    )


def _kvm_module(root: str) -> Optional[str]:
    try:
        names = sorted(os.listdir(os.path.join(root, "sys/module")))
    except OSError:
        return None
    vendor = [n for n in names if n.startswith("kvm_")]
    # Prefer the well-known hardware modules when several are loaded.
    for known in ("kvm_intel", "kvm_amd"):
        if known in vendor:
            return known
    return vendor[0] if vendor else None


def _nested(root: str, module: Optional[str]) -> str:
    if module is None:
        return KvmNested.UNKNOWN
    value = _first_line(root, "sys/module/%s/parameters/nested" % module)
    if value is None:
        return KvmNested.UNKNOWN
    if value in ("Y", "y", "1"):
        return KvmNested.TRUE
    if value in ("N", "n", "0"):
        return KvmNested.FALSE
    return KvmNested.UNKNOWN


def read_facts(root: str = "/", dev_kvm: str = "/dev/kvm") -> HostFacts:
    hostname = _first_line(root, "proc/sys/kernel/hostname") or _first_line(root, "etc/hostname")
    if hostname is None and os.path.abspath(root) == "/":
        hostname = os.uname().nodename
    cpuinfo = _read(root, "proc/cpuinfo")
    module = _kvm_module(root)
    return HostFacts(
        hostname=hostname,
        kernel_release=_first_line(root, "proc/sys/kernel/osrelease"),
        cpu=parse_cpuinfo(cpuinfo) if cpuinfo else CpuFacts(),
        kvm_module=module,
        kvm_nested=_nested(root, module),
        dev_kvm=dev_kvm_state(dev_kvm),
        synthetic=_first_line(root, SYNTHETIC_MARKER),
    )
