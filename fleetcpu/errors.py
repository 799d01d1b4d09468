"""The one error tree of fleetcpu; every class owns its process exit code.

Operators script around fleetcpu (cron, CI gates, config management), so the
exit code is a contract: each failure a script may want to react to has its
own number, and the numbers never move. The CLI catches only
``FleetcpuError`` and prints ``error: <message>`` on one line.

This module ships to KVM hosts inside the probe bundle, so it is stdlib-only
and must run on Python 3.9.

    FleetcpuError                   1  internal error
    +-- UsageError                  2  bad flags or arguments
    +-- BadInputError               3  inventory or probe document unusable
    |   +-- InventoryError
    |   +-- ProbeDocumentError
    +-- StoreError                  4  store corrupt, foreign or locked
    |   +-- StoreCorruptError
    |   +-- StoreForeignError
    |   +-- StoreLockedError
    |   +-- StoreWriteError            (read-only, full, a table folder that is a file)
    +-- SomeHostsFailedError        5  run finished, some hosts failed (stored)
    +-- AllHostsFailedError         6  run finished, every host failed
    +-- StrayFilesError             7  fsck: files no committed run lists
    +-- ProbeError                     a probe could not produce CPU data
    |   +-- QemuMissingError       10
    |   +-- NotQemuError           11
    |   +-- QemuDiedError          12
    |   +-- UnknownMachineTypeError 13
    |   +-- QmpProtocolError       14
    |   +-- ProbeTimeoutError      15
    |   +-- HostRootError          16  (stage facts)
    +-- UnknownPoolError           20
    +-- NoUsableDataError          21
    +-- NoCommonMachineTypeError   22
    +-- MixedVendorsError          23
    +-- VerifyFailedError          24
    +-- CheckRefusedError          25  host would lower the pool's CPU
    +-- NonCompliantError          26  members cannot run their pool's adopted CPU
    +-- InterruptedByUserError    130
"""

from __future__ import annotations

from typing import Dict, List, Tuple, Type

from .vocabulary import Stage

__all__ = [
    "AllHostsFailedError",
    "BadInputError",
    "CheckRefusedError",
    "FleetcpuError",
    "HostRootError",
    "InterruptedByUserError",
    "InventoryError",
    "MixedVendorsError",
    "NoCommonMachineTypeError",
    "NoUsableDataError",
    "NonCompliantError",
    "NotQemuError",
    "ProbeDocumentError",
    "ProbeError",
    "ProbeTimeoutError",
    "QemuDiedError",
    "QemuMissingError",
    "QmpProtocolError",
    "RequirementUnmetError",
    "SomeHostsFailedError",
    "StoreCorruptError",
    "StoreError",
    "StoreForeignError",
    "StoreLockedError",
    "StoreWriteError",
    "StrayFilesError",
    "UnknownMachineTypeError",
    "UnknownPoolError",
    "UsageError",
    "VerifyFailedError",
    "exit_code_table",
]


class FleetcpuError(Exception):
    """Root of every error fleetcpu raises on purpose."""

    exit_code = 1
    #: Stable slug used in JSON output and stored failure rows.
    code = "internal"
    #: One line for the exit-code table in the README.
    meaning = "internal error (a bug: please report it)"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(FleetcpuError):
    exit_code = 2
    code = "usage"
    meaning = "bad command-line usage"


class BadInputError(FleetcpuError):
    exit_code = 3
    code = "bad-input"
    meaning = "bad input file (inventory, probe document)"


class InventoryError(BadInputError):
    code = "inventory"

    def __init__(self, path: str, line: int, problem: str) -> None:
        where = "%s:%d" % (path, line) if line else path
        super().__init__("%s: %s" % (where, problem))
        self.path = path
        self.line = line
        self.problem = problem


class ProbeDocumentError(BadInputError):
    code = "probe-document"

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__("%s: %s: %s" % (source, key or "<document>", problem))
        self.source = source
        self.key = key
        self.problem = problem


class StoreError(FleetcpuError):
    exit_code = 4
    code = "store"
    meaning = "store corrupt, foreign or locked"


class StoreCorruptError(StoreError):
    code = "store-corrupt"


class StoreForeignError(StoreError):
    code = "store-foreign"


class StoreLockedError(StoreError):
    code = "store-locked"


class StoreWriteError(StoreError):
    """The store could not be written; ``reason`` is one line (path: strerror)."""

    code = "store-write"

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class SomeHostsFailedError(FleetcpuError):
    exit_code = 5
    code = "some-hosts-failed"
    meaning = "some hosts failed (their failure rows are stored)"


class AllHostsFailedError(FleetcpuError):
    exit_code = 6
    code = "all-hosts-failed"
    meaning = "all hosts failed (their failure rows are stored)"


class StrayFilesError(FleetcpuError):
    """``fleetcpu fsck`` found files that are part of no committed run, and no damage."""

    exit_code = 7
    code = "stray-files"
    meaning = "fsck: the store holds files no committed run lists (fleetcpu ignores them)"


class ProbeError(FleetcpuError):
    """The probe could not produce CPU data; ``stage`` says where it stopped."""

    stage = Stage.QEMU


class QemuMissingError(ProbeError):
    exit_code = 10
    code = "qemu-missing"
    meaning = "QEMU binary missing"


class NotQemuError(ProbeError):
    exit_code = 11
    code = "not-qemu"
    meaning = "the binary is not QEMU"


class QemuDiedError(ProbeError):
    exit_code = 12
    code = "qemu-died"
    meaning = "QEMU died at start"


class UnknownMachineTypeError(ProbeError):
    exit_code = 13
    code = "unknown-machine-type"
    meaning = "unknown machine type"


class QmpProtocolError(ProbeError):
    exit_code = 14
    code = "qmp"
    stage = Stage.QMP
    meaning = "QMP protocol failure"


class ProbeTimeoutError(ProbeError):
    exit_code = 15
    code = "timeout"
    stage = Stage.TIMEOUT
    meaning = "probe timeout"


class HostRootError(ProbeError):
    """``--host-root`` (inventory ``host_root``) is not a directory: no fact could be read.

    Reading under a missing root gave every fact null and an ``ok`` document,
    so a typo in ``host_root`` looked like a host with no CPU facts.
    """

    exit_code = 16
    code = "host-root"
    stage = Stage.FACTS
    meaning = "--host-root is not a directory (no host facts)"


class UnknownPoolError(FleetcpuError):
    exit_code = 20
    code = "unknown-pool"
    meaning = "unknown pool"


class NoUsableDataError(FleetcpuError):
    exit_code = 21
    code = "no-usable-data"
    meaning = "empty pool or no usable data"


class NoCommonMachineTypeError(FleetcpuError):
    exit_code = 22
    code = "no-common-machine-type"
    meaning = "no machine type common to the pool"


class MixedVendorsError(FleetcpuError):
    exit_code = 23
    code = "mixed-vendors"
    meaning = "mixed CPU vendors refused"


class VerifyFailedError(FleetcpuError):
    exit_code = 24
    code = "verify-failed"
    meaning = "verify failed on some hosts"


class CheckRefusedError(FleetcpuError):
    exit_code = 25
    code = "check-refused"
    meaning = "the host cannot join the pool without lowering its CPU model"


class NonCompliantError(FleetcpuError):
    """Some members cannot run their pool's adopted CPU (``fleetcpu adopt``).

    Raised after the run is stored and summarised: ``collect`` returns it
    before 5 (some host is always down in a large fleet, and that must not
    hide a host that lost a feature the pool's guests use).
    """

    exit_code = 26
    code = "non-compliant"
    meaning = "some members cannot run their pool's adopted CPU"


class RequirementUnmetError(FleetcpuError):
    """The pool's CPU lacks a feature ``--require`` asks (``baseline``, ``adopt``).

    Nothing is stored. The message names each required feature the pool
    lacks, the members lacking it, and the hosts to leave out to meet the
    requirement. A member that loses a required feature *after* an adoption
    is non-compliant (26): the adopted CPU holds it.
    """

    exit_code = 27
    code = "requirement-unmet"
    meaning = "the pool cannot meet --require"


class InterruptedByUserError(FleetcpuError):
    exit_code = 130
    code = "interrupted"
    meaning = "interrupted (Ctrl-C / SIGTERM)"


def _walk(cls: Type[FleetcpuError]) -> List[Type[FleetcpuError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_walk(sub))
    return out


def exit_code_table() -> List[Tuple[int, str]]:
    """(exit code, meaning) for every code in the contract, 0 included, sorted.

    Derived from the classes so the README table and the tests cannot drift
    from the code.
    """
    seen: Dict[int, str] = {0: "success"}
    for cls in _walk(FleetcpuError):
        seen.setdefault(cls.exit_code, cls.meaning)
    return sorted(seen.items())
