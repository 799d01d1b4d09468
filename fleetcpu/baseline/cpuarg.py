"""The two ``-cpu`` strings. Pure.

Spelling: ``+feat`` / ``-feat``, never mixed with ``feat=on|off``. QEMU
accepts both, but applies ``+``/``-`` after every ``key=value`` property
(so no scalar can undo a feature), and warns about "ambiguous CPU model
strings" when one feature is given both ways; one spelling everywhere keeps
the strings unambiguous on QEMU 2.x to 10.x.

Both strings carry ``vendor=``. Feature bits depend on it: QEMU copies the
leaf-1 EDX bits into 0x80000001 EDX for AMD vendors only, so the same
features under another vendor give the guest different CPUID (and the
2015 self-test different feature-words). And a guest told "GenuineIntel"
on AMD silicon takes Intel-only code paths (SYSENTER in compat mode,
Intel MSRs). The chosen model may be of the other vendor (on the test host,
an AMD EPYC, the best model is the Intel ``pentium3-v1``). Both pin the
smallest member's ``phys-bits`` when it is recorded.

The custom string starts from ``base`` (nothing implicit, as the 2015
``-cpu custom`` thread wanted) and pins every scalar the data knows:
``level``/``xlevel`` explicitly, because an explicit level is final in QEMU
while an implicit one is raised by ``full-cpuid-auto-level`` from the
features. ``model-id`` is pinned to a fixed, quote-free brand string: base's
own is empty, and the hosts' brands ("AMD EPYC 7601 ...") would promise a
guest a CPU it does not get.
"""

from __future__ import annotations

from collections.abc import Iterable

from .types import Scalars

__all__ = ["CUSTOM_BASE", "MODEL_ID", "custom", "named"]

#: The brand string guests see with the custom form (no spaces or commas: no quoting needed).
MODEL_ID = "fleetcpu-baseline"
CUSTOM_BASE = "base"


def _features(enable: Iterable[str], disable: Iterable[str] = ()) -> list[str]:
    return [f"+{name}" for name in sorted(enable)] + [f"-{name}" for name in sorted(disable)]


def named(
    model: str,
    vendor: str | None,
    enable: Iterable[str],
    disable: Iterable[str],
    phys_bits: int | None = None,
) -> str:
    """``Model,vendor=V,phys-bits=N,+a,+b,-c``: the model, the pool's vendor and phys-bits,
    then explicit changes.

    phys-bits is pinned as in the custom string (and libvirt's ``<maxphysaddr>``,
    Proxmox's ``phys-bits``): a named model pins none, so QEMU would give the
    guest its default (40) whatever the members have, and the two strings
    would start different guests.
    """
    parts = [model]
    if vendor:
        parts.append(f"vendor={vendor}")
    if phys_bits is not None:
        parts.append(f"phys-bits={phys_bits}")
    return ",".join(parts + _features(enable, disable))


def custom(vendor: str | None, scalars: Scalars, features: Iterable[str]) -> str:
    """``base,vendor=...,family=...,...,model-id=...,+every-feature``; unknown scalars left out."""
    parts = [CUSTOM_BASE]
    if vendor:
        parts.append(f"vendor={vendor}")
    for key, value in (
        ("family", scalars.family),
        ("model", scalars.model),
        ("stepping", scalars.stepping),
        ("level", scalars.level),
    ):
        if value is not None:
            parts.append(f"{key}={value}")
    if scalars.xlevel is not None:
        parts.append(f"xlevel={scalars.xlevel:#x}")
    if scalars.phys_bits is not None:
        parts.append(f"phys-bits={scalars.phys_bits}")
    parts.append(f"model-id={MODEL_ID}")
    return ",".join(parts + _features(features))
