"""What one probe will launch, decided from its options and ``/dev/kvm`` alone.

The fallback chain exists because real hosts refuse ``-cpu host`` in ways
nobody predicts (this project's own CI hosts abort with ``failed to set MSR
0x10a``): try ``host``, then ``host,arch-capabilities=off``, then TCG with
``max`` when KVM is absent, forbidden or broken, and write down why.

A module of its own, importing nothing heavy, because the shipped entry
point starts the chain's first QEMU before it imports asyncio (``qemu_early``).

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional, Tuple

from ..vocabulary import Accel, AccelRequest, DevKvm

__all__ = [
    "ACCELS",
    "DEFAULT_MACHINE",
    "DEFAULT_TIMEOUT",
    "KVM_CHAIN",
    "TCG_CHAIN",
    "WORKDIR_PREFIX",
    "Chain",
    "ProbeOptions",
    "chain",
    "dev_kvm_state",
]

DEFAULT_MACHINE = "q35"
DEFAULT_TIMEOUT = 60.0
#: ``--accel``'s choices (argparse's and the plain parser's), as plain strings.
ACCELS = AccelRequest.values()
KVM_CHAIN = ((Accel.KVM, "host"), (Accel.KVM, "host,arch-capabilities=off"))
TCG_CHAIN = ((Accel.TCG, "max"),)
WORKDIR_PREFIX = "fleetcpu-probe-"

Chain = Tuple[Tuple[str, str], ...]


class ProbeOptions(NamedTuple):
    """The probe's flags.

    A NamedTuple rather than a dataclass: importing dataclasses (inspect, ast,
    dis) before ``QEMU -version`` is started would delay it by some 6 ms.
    """

    machine_types: Tuple[str, ...] = ()
    qemu_binary: Optional[str] = None
    accel: str = AccelRequest.AUTO
    timeout: float = DEFAULT_TIMEOUT
    host_root: str = "/"


def dev_kvm_state(path: str = "/dev/kvm") -> str:
    """Whether this process (not the host root) can open KVM: ok, missing or no-permission.

    Here, not with the other host facts: it picks the chain's first launch,
    which the shipped entry starts before it imports the records.
    """
    if not os.path.exists(path):
        return DevKvm.MISSING
    if not os.access(path, os.R_OK | os.W_OK):
        return DevKvm.NO_PERMISSION
    return DevKvm.OK


def chain(accel: str, dev_kvm: str) -> Tuple[Chain, Optional[str]]:
    """The (accel, -cpu) attempts in order, and why TCG when TCG is all there is."""
    if accel == AccelRequest.TCG:
        return TCG_CHAIN, "requested"
    if accel == AccelRequest.KVM:
        return KVM_CHAIN, None
    if dev_kvm == DevKvm.MISSING:
        return TCG_CHAIN, "no /dev/kvm"
    if dev_kvm == DevKvm.NO_PERMISSION:
        return TCG_CHAIN, "/dev/kvm is not accessible to this user"
    return KVM_CHAIN + TCG_CHAIN, None
