"""The closed sets of words fleetcpu writes: accelerators, stages, outcomes, states, registers, levels.

Why one module: each of these sets is spelt in the probe's document, the
store's rows, the JSON Schemas (``fleetcpu/schemas``), the CLI's choices and
the code that branches on them. Written out in each place, the lists drifted
(the accelerator list was written five times, the registers three): a value
added in one place was a bad value in the next. Here each set is written
once; every other place names a member or derives its list from the class
(``tests/test_vocabulary.py`` holds the schemas and the package to that).

Why ``str`` enums: a member *is* its value (``Accel.KVM == "kvm"``, same
hash), so JSON, Parquet and a decoded document's plain strings stay what
they were, byte for byte, and records keep ``str`` fields that hold either.

Why ``__str__`` and ``__format__``: for a ``(str, Enum)`` member, Python
3.11 formats ``f"{Accel.KVM}"`` as ``Accel.KVM`` where 3.9 gives ``kvm``;
the probe runs on both, and a message or a command line must not depend
on which. ``Word`` makes every spelling (``str()``, f-strings,
``format()``, ``%s``) the value on every Python.

Also here, because they were written twice: the models that are never a
pool's model, and the one spelling of a time (RFC 3339, UTC, milliseconds).

Python 3.9, stdlib only: this module ships to hosts in the probe bundle. It
imports no ``datetime`` at module level: the probe starts QEMU before it
would need it.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import TYPE_CHECKING, FrozenSet, Tuple, Type, TypeVar

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "MIXED",
    "NOT_POOL_MODELS",
    "AbiLevel",
    "Accel",
    "AccelRequest",
    "DevKvm",
    "KvmNested",
    "Outcome",
    "Register",
    "Stage",
    "State",
    "Status",
    "Word",
    "now_rfc3339",
    "rfc3339",
]

_W = TypeVar("_W", bound="Word")


class Word(str, Enum):
    """A member of one closed set: a ``str`` equal to its value, spelt as its value everywhere."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)

    @classmethod
    def values(cls: Type[_W]) -> Tuple[str, ...]:
        """The values as plain strings, in definition order (click choices, schema enums, messages)."""
        return tuple(str.__str__(m) for m in cls)


class Accel(Word):
    """The accelerator a guest ran (or is to run) under; a TCG answer never speaks for KVM."""

    KVM = "kvm"
    TCG = "tcg"


class AccelRequest(Word):
    """What the probe is asked for: ``auto`` tries KVM, then falls back to TCG."""

    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


#: A probe document's ``accel`` when its machine types ran under different accelerators.
MIXED = "mixed"


class Status(Word):
    """A host document's ``status``: ``failed`` means no answer was reached (see ``stage``)."""

    OK = "ok"
    FAILED = "failed"


class Stage(Word):
    """Where a host's run stopped, in the order a collection passes through them."""

    INVENTORY = "inventory"
    CONNECT = "connect"
    HOSTKEY = "hostkey"
    AUTH = "auth"
    UPLOAD = "upload"
    PYTHON = "python"
    FACTS = "facts"
    QEMU = "qemu"
    QMP = "qmp"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    OUTPUT = "output"
    CLEANUP = "cleanup"


class Outcome(Word):
    """What became of one QEMU the probe started (an ``Attempt``), kept as evidence."""

    OK = "ok"
    DIED = "died"
    UNKNOWN_MACHINE_TYPE = "unknown-machine-type"
    QMP_ERROR = "qmp-error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


class State(Word):
    """A member's compliance with its pool's adopted CPU (``docs/contract.md``).

    * ``compliant``: the data proves it starts the adopted CPU, every feature;
    * ``non-compliant``: the data proves it cannot (``reason``, ``lacking``);
    * ``undecided``: the data cannot say (``detail`` says why): never compliant;
    * ``failed``: its latest run failed (older data may exist; it is not judged as current);
    * ``stale``: its latest successful data is older than ``--max-age``;
    * ``tcg-only``: its latest probe ran under another accelerator than the
      contract's (for a KVM contract: it fell back to TCG, so it runs no KVM guest).
    """

    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    UNDECIDED = "undecided"
    FAILED = "failed"
    STALE = "stale"
    TCG_ONLY = "tcg-only"


class KvmNested(Word):
    """The KVM module's ``nested`` parameter as the probe read it."""

    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


class DevKvm(Word):
    """Whether the probing process (not the host root) can open ``/dev/kvm``."""

    OK = "ok"
    MISSING = "missing"
    NO_PERMISSION = "no-permission"


class Register(Word):
    """A CPUID output register, as QEMU's ``feature-words`` spell it."""

    EAX = "eax"
    EBX = "ebx"
    ECX = "ecx"
    EDX = "edx"


class AbiLevel(Word):
    """An x86-64 psABI micro-architecture level, lowest first; each implies those before it.

    The features each needs, in QEMU's spellings, are ``fleetcpu.probe.abi_level``'s.
    """

    V1 = "x86-64-v1"
    V2 = "x86-64-v2"
    V3 = "x86-64-v3"
    V4 = "x86-64-v4"


#: Never candidates for a pool model: host/max follow the host, base is empty.
NOT_POOL_MODELS: FrozenSet[str] = frozenset({"host", "max", "base"})

_SECONDS = "%Y-%m-%dT%H:%M:%S"


def now_rfc3339() -> str:
    """UTC now to the millisecond (``2026-01-01T00:00:00.000Z``), without importing datetime."""
    ns = time.time_ns()
    return time.strftime(_SECONDS, time.gmtime(ns // 10**9)) + ".%03dZ" % (ns // 10**6 % 1000)


def rfc3339(moment: datetime) -> str:
    """``2026-11-26T10:13:36.578Z`` (the store's and every document's spelling); naive is UTC.

    The offset is subtracted rather than converted with ``astimezone``: the
    same instant, without importing ``datetime.timezone`` here.
    """
    offset = moment.utcoffset()
    if offset:
        moment = moment - offset
    return moment.strftime(_SECONDS) + ".%03dZ" % (moment.microsecond // 1000)
