"""The I/O shell of ``check``: the host to judge, from the store or from a probe document.

``HOST|PROBE.json``: an existing file (or any argument ending in ``.json``)
is a probe document, validated with ``document_from_json`` (a bad one is
exit 3, like ``fleetcpu import``); anything else names a stored host, whose
latest successful data for the pool's accelerator is used under the same
``--max-age`` rule as pool members.

The pool's machine type is fixed by the pool; the host must have been
probed with it. When it was not, the host is *refused* only when its QEMU
certainly lacks that machine type: the document's own machine list says
so, or (for a stored host, whose machine list the store does not keep) its
QEMU version is older than the machine type's (``pc-q35-8.2`` first exists
in QEMU 8.2). Otherwise nobody knows, and that is exit 22 with the command
that would find out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..baseline.machine import family_version
from ..baseline.member import member_from_probe
from ..baseline.select import build_members, classify
from ..baseline.types import Member
from ..errors import BadInputError, NoCommonMachineTypeError, NoUsableDataError, UsageError
from ..probe.document import MachineProbe, ProbeDocument
from ..probe.document_decoder import document_from_json
from ..store import Store
from ..vocabulary import Accel, Status
from .answers import Change

__all__ = ["Candidate", "is_document", "load_candidate", "qemu_too_old"]

#: Machine-type families whose version is the QEMU release that introduced them.
_VERSIONED_FAMILIES = ("pc-q35", "pc-i440fx")


@dataclass(frozen=True)
class Candidate:
    """The host to judge: its member record, or why it cannot join at all."""

    host: str
    #: store | document
    source: str
    member: Member | None
    #: Set when the host is refused before any computation (machine type missing).
    refusal: Change | None = None


def is_document(arg: str) -> bool:
    return arg.endswith(".json") or Path(arg).is_file()


def _version(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    parts = []
    for p in text.split("."):
        digits = "".join(c for c in p if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def qemu_too_old(qemu_version: str | None, machine_type: str) -> bool:
    """True when a QEMU of this version cannot have this upstream machine type."""
    family, version = family_version(machine_type)
    have = _version(qemu_version)
    return family in _VERSIONED_FAMILIES and bool(version) and have is not None and have[:2] < version[:2]


def _missing_type(host: str, machine_type: str, why: str) -> Change:
    return Change(
        "machine-type-missing",
        f"{host} cannot run the pool's machine type {machine_type}: {why}",
        feature=None,
        before=machine_type,
        after=None,
    )


def _not_probed(host: str, machine_type: str) -> NoCommonMachineTypeError:
    return NoCommonMachineTypeError(
        f"{host} was not probed with the pool's machine type {machine_type}; probe it with "
        f"fleetcpu probe --machine-type {machine_type} (or collect with machine_types="
        f"{machine_type}) and check again"
    )


def _from_document(path: str, machine_type: str, accel: str) -> Candidate:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read probe document: {exc}") from exc
    doc = document_from_json(text, path)
    host = doc.host.hostname or Path(path).stem
    probe = _machine(doc, machine_type)
    if probe is None:
        names: set[str] = set()
        if doc.qemu is not None:
            names = {m.name for m in doc.qemu.machines} | {m.alias for m in doc.qemu.machines if m.alias}
        if doc.qemu is not None and names and machine_type not in names:
            return Candidate(
                host,
                "document",
                None,
                _missing_type(host, machine_type, f"its QEMU {doc.qemu.version} does not list it"),
            )
        if doc.status != Status.OK and not doc.machine_types:
            raise NoUsableDataError(
                f"{path}: a failed probe ({doc.stage or 'unknown stage'}: "
                f"{doc.error or doc.error_code or 'no message'}): no CPU data"
            )
        raise _not_probed(host, machine_type)
    if probe.accel != accel:
        raise NoUsableDataError(
            f"{path}: {host} was probed under {probe.accel}, the pool uses {accel}: "
            + (
                "TCG shows what QEMU emulates, not what KVM guests get"
                if accel == Accel.KVM
                else "KVM data says nothing about what TCG emulates"
            )
        )
    if probe.static_expansion is None and probe.full_expansion is None:
        raise NoUsableDataError(
            f"{path}: its probe of {machine_type} recorded no host CPU expansion: nothing to judge"
        )
    member = member_from_probe(
        host, probe.accel, doc.qemu.version if doc.qemu else None, _time(doc), doc.host, probe
    )
    return Candidate(host, "document", member)


def _machine(doc: ProbeDocument, machine_type: str) -> MachineProbe | None:
    return next((mp for mp in doc.machine_types if mp.machine_type == machine_type), None)


def _time(doc: ProbeDocument) -> datetime:
    try:
        moment = datetime.fromisoformat(doc.time)
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _from_store(
    store: Store, host: str, machine_type: str, accel: str, max_age: timedelta, now: datetime
) -> Candidate:
    states = {s.host: s for s in store.latest()}
    state = states.get(host)
    if state is None:
        raise UsageError(f"{host}: neither a probe document nor a host in the store ({store.root})")
    found = classify([state], accel, max_age, now)
    if found.missing:
        raise NoUsableDataError(f"{host}: {found.missing[0].message}")
    snap = store.snapshots([host], accel).get(host)
    if snap is None:
        raise NoUsableDataError(f"{host}: no CPU data stored for its successful {accel} run")
    if machine_type not in snap.machines:
        if qemu_too_old(snap.qemu_version, machine_type):
            return Candidate(
                host,
                "store",
                None,
                _missing_type(host, machine_type, f"its QEMU {snap.qemu_version} predates it"),
            )
        raise _not_probed(host, machine_type)
    probe = snap.machines[machine_type]
    if probe.static_expansion is None and probe.full_expansion is None:
        raise NoUsableDataError(
            f"{host}: its {accel} probe of {machine_type} recorded no host CPU expansion: nothing to judge"
        )
    [member] = build_members([snap], machine_type)
    return Candidate(host, "store", member)


def load_candidate(
    store: Store, arg: str, machine_type: str, accel: str, max_age: timedelta, now: datetime | None = None
) -> Candidate:
    """The host named by ``arg`` (see the module docstring); raises exit 2/3/21/22 errors."""
    if is_document(arg):
        return _from_document(arg, machine_type, accel)
    return _from_store(store, arg, machine_type, accel, max_age, now or datetime.now(UTC))
