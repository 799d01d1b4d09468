"""The rule every name a host reports must meet before fleetcpu stores or renders it.

Why: CPU model, feature, property and machine-type names go from a host's
document into ``-cpu`` strings, ``-readconfig`` files, libvirt XML,
``nova.conf``, KubeVirt and Proxmox configs. A name holding ``,`` or ``=``
adds a QEMU property (``+y,kvm=off``); one holding a newline or a quote
writes raw lines into a config (``[chardev "pwn"]``). QEMU's own names use
letters, digits, ``-``, ``_`` and ``.`` (``sse4.2``, ``avx512-vp2intersect``,
``kvm_pv_unhalt``, ``pc-q35-7.2``, ``486``), and so must every name we take:

    NAME    [A-Za-z0-9][A-Za-z0-9._-]{0,63}     (1 to 64 characters)
    VENDOR  1 to 12 printable ASCII characters, none of , = " ' \\ < > & #

The vendor is CPUID's 12-byte vendor string (``GenuineIntel``,
``"  Shanghai  "``), so it keeps its spaces. Every real name in libvirt's
and QEMU's captures (``../shared/realdata``) meets the rule; a test keeps it
so. Checked at decode (``document.check_probe_document``: a failure row or exit
3) and again by every renderer, which refuses a name it cannot quote.
"""

from __future__ import annotations

import re
from typing import Optional, Set

__all__ = [
    "NAME_RULE",
    "UNNAMED_FEATURE",
    "VENDOR_FORBIDDEN",
    "is_name",
    "is_vendor",
    "name_problem",
    "vendor_problem",
]

NAME_RULE = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
VENDOR_FORBIDDEN = ",=\"'\\<>&#"
_NAME = re.compile(NAME_RULE)

#: What an unavailable feature QEMU has no name for is recorded as. Older QEMUs
#: list such a bit as ``""`` (the Core-i7-7600U and Xeon-Platinum-8268
#: captures): not a name any config may hold, but the model still lacks the
#: bit, so it stays a blocker. The probe writes this name, and a document from
#: an older probe that kept ``""`` is read as if it had.
UNNAMED_FEATURE = "unnamed-feature"
_VENDOR = re.compile(r"[ -~]{1,12}")

#: Names seen to pass: a fleet repeats the same few thousand, so each is matched once.
_PASSED: Set[str] = set()
_PASSED_MAX = 50_000


def is_name(text: object) -> bool:
    """Whether ``text`` is a name fleetcpu may store and write into a config."""
    if text in _PASSED:
        return True
    if type(text) is not str or _NAME.fullmatch(text) is None:
        return False
    if len(_PASSED) < _PASSED_MAX:
        _PASSED.add(text)
    return True


def is_vendor(text: object) -> bool:
    """Whether ``text`` is a CPUID vendor string fleetcpu may write into a config."""
    return (
        type(text) is str
        and _VENDOR.fullmatch(text) is not None
        and not any(c in VENDOR_FORBIDDEN for c in text)
    )


def name_problem(text: str) -> Optional[str]:
    """Why ``text`` is not a name (for the one-line error), or None if it is one."""
    if is_name(text):
        return None
    return "%r is not a QEMU property name (the rule: %s)" % (text, NAME_RULE)


def vendor_problem(text: str) -> Optional[str]:
    if is_vendor(text):
        return None
    return "%r is not a CPUID vendor string (1 to 12 printable ASCII characters, none of %s)" % (
        text,
        VENDOR_FORBIDDEN,
    )
