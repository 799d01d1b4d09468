"""One ``HostOutcome`` -> the rows it adds to each table. Pure: no I/O, no pyarrow.

Why a digest: at 10,000 hosts an hour, rewriting ~160 model, feature-word and
expansion rows per host per run would make the store grow by tens of GB a
year to say "nothing changed". The detail tables are written for a host only
when ``cpu_digest`` (sha256 over exactly what those tables hold) differs from
the digest of its latest data; otherwise the ``hosts`` row's ``detail_run``
points at the run that already holds identical rows.

The canonical form is built by hand rather than with ``dataclasses.asdict``
and ``json.dumps``: joining names is an order of magnitude faster than the
former and 2.5x faster than the latter (it runs for every host of every
run, ~0.2 ms), and it covers
precisely the fields the detail tables store, so equal digests mean equal rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..outcome import HostOutcome
from ..probe.abi_level import level_of
from ..probe.document import (
    Attempt,
    Expansion,
    MachineInfo,
    MachineProbe,
    ProbeDocument,
    QueryFailure,
)
from ..vocabulary import Status
from .layout import parse_rfc3339, utc

__all__ = [
    "DetailRows",
    "Row",
    "abi_level",
    "attempts_json",
    "cpu_digest",
    "detail_rows",
    "host_row",
    "machine_list_rows",
    "unique_machines",
]

Row = dict[str, object]


@dataclass
class DetailRows:
    """The detail-table rows of one host in one run."""

    machines: list[Row] = field(default_factory=list)
    feature_words: list[Row] = field(default_factory=list)
    models: list[Row] = field(default_factory=list)
    expansion: list[Row] = field(default_factory=list)

    def by_table(self) -> dict[str, list[Row]]:
        return {
            "machines": self.machines,
            "feature_words": self.feature_words,
            "models": self.models,
            "expansion": self.expansion,
        }


def unique_machines(machine_types: Iterable[MachineProbe]) -> tuple[MachineProbe, ...]:
    """First probe per resolved machine type: ``q35`` and ``pc-q35-7.2`` asked together
    launch the same machine, and detail rows are keyed by the resolved name."""
    seen: set[str] = set()
    out = []
    for mp in machine_types:
        if mp.machine_type not in seen:
            seen.add(mp.machine_type)
            out.append(mp)
    return tuple(out)


# Separators of the canonical text. The joined strings are QEMU identifiers
# (feature, model, machine-type and property names: letters, digits, ``-_.+``),
# which never hold a comma or an ASCII control character; anything free-form
# (model-id, messages, property values) goes through ``repr``. So equal text
# means equal content, without the cost of escaping every name.
_ITEMS = ","
_FIELDS = "\x1f"
_RECORDS = "\n"


def _canon_expansion(exp: Expansion | None) -> str:
    if exp is None:
        return "None"
    features = sorted(exp.features.items())
    return _FIELDS.join(
        (
            exp.model,
            _ITEMS.join(name for name, on in features if on),
            _ITEMS.join(name for name, on in features if not on),
            _ITEMS.join(f"{name}={value!r}" for name, value in sorted(exp.props.items())),
        )
    )


def _canon_machine(mp: MachineProbe) -> str:
    v = mp.vcpu
    return _RECORDS.join(
        (
            _FIELDS.join((mp.requested, mp.machine_type, mp.accel, mp.cpu)),
            *(
                _FIELDS.join(
                    (
                        m.name,
                        _ITEMS.join(m.unavailable_features),
                        repr(m.alias_of),
                        repr(m.deprecated),
                        repr(m.migration_safe),
                        repr(m.static),
                        repr(m.typename),
                        "None" if m.features is None else "=" + _ITEMS.join(m.features),
                    )
                )
                for m in mp.models
            ),
            _canon_expansion(mp.static_expansion),
            _canon_expansion(mp.full_expansion),
            repr((v.vendor, v.family, v.model, v.stepping, v.model_id, v.level, v.xlevel, v.phys_bits)),
            _ITEMS.join(f"{w.leaf}.{w.subleaf}.{w.register}={w.bits}" for w in mp.feature_words),
            _ITEMS.join(f"{w.leaf}.{w.subleaf}.{w.register}={w.bits}" for w in mp.filtered_features),
            repr([(e.query, e.error_class, e.message) for e in mp.errors]),
        )
    )


def cpu_digest(machine_types: Sequence[MachineProbe]) -> str | None:
    """sha256 of the detail content (no timings in it); None when there is none."""
    if not machine_types:
        return None
    text = (_RECORDS * 2).join(_canon_machine(mp) for mp in machine_types)
    return hashlib.sha256(text.encode()).hexdigest()


def _errors_json(errors: Sequence[QueryFailure]) -> str | None:
    if not errors:
        return None
    return json.dumps(
        [{"query": e.query, "error_class": e.error_class, "message": e.message} for e in errors]
    )


def attempts_json(attempts: Sequence[Attempt]) -> str | None:
    if not attempts:
        return None
    return json.dumps(
        [
            {
                "machine_type": a.machine_type,
                "accel": a.accel,
                "cpu": a.cpu,
                "argv": list(a.argv),
                "outcome": a.outcome,
                "exit_status": a.exit_status,
                "stderr_tail": a.stderr_tail,
                "duration_s": a.duration_s,
            }
            for a in attempts
        ]
    )


def _probe_time(doc: ProbeDocument) -> datetime | None:
    try:
        return parse_rfc3339(doc.time)
    except ValueError:
        return None


def _stderr_tail(outcome: HostOutcome) -> str | None:
    """The outcome's own tail, else the last failed QEMU attempt's: the line an operator needs."""
    if outcome.stderr_tail:
        return outcome.stderr_tail
    doc = outcome.document
    if doc is not None and not doc.ok:
        for attempt in reversed(doc.attempts):
            if attempt.stderr_tail:
                return attempt.stderr_tail
    return None


def machine_list_rows(machines: Sequence[MachineInfo]) -> list[Row]:
    """The ``qemu_machines`` value of a QEMU's machine list (``hosts`` schema 2)."""
    return [
        {"name": m.name, "alias": m.alias, "is_default": m.is_default, "deprecated": m.deprecated}
        for m in machines
    ]


def abi_level(machine_types: Sequence[MachineProbe]) -> str | None:
    """The host's x86-64 level: what every machine type probed offers (host expansions' enabled
    features, the static one preferred as the baseline does); None without any expansion."""
    common: frozenset[str] | None = None
    for mp in machine_types:
        exp = mp.static_expansion if mp.static_expansion is not None else mp.full_expansion
        if exp is None:
            continue
        enabled = frozenset(name for name, on in exp.features.items() if on)
        common = enabled if common is None else common & enabled
    return None if common is None else level_of(common)


def host_row(outcome: HostOutcome, run_id: str, digest: str | None, detail_run: str | None) -> Row:
    doc = outcome.document
    facts = doc.host if doc is not None else None
    qemu = doc.qemu if doc is not None else None
    conn = outcome.connection
    ok = outcome.ok
    return {
        "run_id": run_id,
        "host": outcome.host,
        "pool": outcome.pool,
        "collected_at": utc(outcome.collected_at),
        "status": Status.OK if ok else Status.FAILED,
        "stage": None if ok else outcome.failure_stage,
        "error": None if ok else outcome.failure_message,
        "error_code": outcome.error_code or (doc.error_code if doc is not None else None),
        "stderr_tail": _stderr_tail(outcome),
        "accel": doc.accel if doc is not None else None,
        "accel_reason": doc.accel_reason if doc is not None else None,
        "qemu_version": qemu.version if qemu is not None else None,
        "qemu_package": qemu.package if qemu is not None else None,
        "qemu_binary": qemu.binary if qemu is not None else None,
        "qemu_kvm_present": qemu.kvm_present if qemu is not None else None,
        "qemu_kvm_enabled": qemu.kvm_enabled if qemu is not None else None,
        "hostname": facts.hostname if facts is not None else None,
        "kernel_release": facts.kernel_release if facts is not None else None,
        "cpu_vendor": facts.cpu.vendor if facts is not None else None,
        "cpu_family": facts.cpu.family if facts is not None else None,
        "cpu_model": facts.cpu.model if facts is not None else None,
        "cpu_stepping": facts.cpu.stepping if facts is not None else None,
        "cpu_model_name": facts.cpu.model_name if facts is not None else None,
        "microcode": facts.cpu.microcode if facts is not None else None,
        "kvm_module": facts.kvm_module if facts is not None else None,
        "kvm_nested": facts.kvm_nested if facts is not None else None,
        "dev_kvm": facts.dev_kvm if facts is not None else None,
        "synthetic": facts.synthetic if facts is not None else None,
        "probe_time": _probe_time(doc) if doc is not None else None,
        "probe_version": doc.probe_version if doc is not None else None,
        "probe_duration_s": doc.duration_s if doc is not None else None,
        "duration_s": outcome.duration_s,
        "machine_types": (
            [mp.machine_type for mp in unique_machines(doc.machine_types)] if doc is not None else []
        ),
        "declared_machine_types": list(outcome.declared_machine_types),
        "conn_transport": conn.transport,
        "conn_address": conn.address,
        "conn_port": conn.port,
        "conn_user": conn.user,
        "conn_python": conn.python,
        "conn_qemu": conn.qemu,
        "attempts": attempts_json(doc.attempts) if doc is not None else None,
        "cpu_digest": digest,
        "detail_run": detail_run,
        "qemu_machines": machine_list_rows(qemu.machines) if qemu is not None else None,
        "abi_level": abi_level(doc.machine_types) if doc is not None and ok else None,
    }


def _expansion_row(run_id: str, host: str, machine_type: str, kind: str, exp: Expansion) -> Row:
    return {
        "run_id": run_id,
        "host": host,
        "machine_type": machine_type,
        "kind": kind,
        "model": exp.model,
        "enabled": sorted(name for name, on in exp.features.items() if on),
        "disabled": sorted(name for name, on in exp.features.items() if not on),
        "props": json.dumps(dict(sorted(exp.props.items()))),
    }


def detail_rows(run_id: str, host: str, machine_types: Sequence[MachineProbe]) -> DetailRows:
    out = DetailRows()
    for mp in machine_types:
        mt = mp.machine_type
        v = mp.vcpu
        out.machines.append(
            {
                "run_id": run_id,
                "host": host,
                "machine_type": mt,
                "requested": mp.requested,
                "accel": mp.accel,
                "cpu": mp.cpu,
                "vendor": v.vendor,
                "family": v.family,
                "model": v.model,
                "stepping": v.stepping,
                "model_id": v.model_id,
                "level": v.level,
                "xlevel": v.xlevel,
                "phys_bits": v.phys_bits,
                "errors": _errors_json(mp.errors),
            }
        )
        # Supported and filtered bits of one register share a row: "which bits of
        # 7.0.ebx did QEMU filter on kvm12" is then one row, not a join.
        words: dict[tuple[int, int, str], Row] = {}
        for w in mp.feature_words:
            words[(w.leaf, w.subleaf, w.register)] = {
                "run_id": run_id,
                "host": host,
                "machine_type": mt,
                "leaf": w.leaf,
                "subleaf": w.subleaf,
                "register": w.register,
                "supported": w.bits,
                "filtered": None,
            }
        for w in mp.filtered_features:
            row = words.setdefault(
                (w.leaf, w.subleaf, w.register),
                {
                    "run_id": run_id,
                    "host": host,
                    "machine_type": mt,
                    "leaf": w.leaf,
                    "subleaf": w.subleaf,
                    "register": w.register,
                    "supported": None,
                    "filtered": None,
                },
            )
            row["filtered"] = w.bits
        out.feature_words.extend(words.values())
        for m in mp.models:
            out.models.append(
                {
                    "run_id": run_id,
                    "host": host,
                    "machine_type": mt,
                    "model": m.name,
                    "usable": m.usable,
                    "unavailable_features": list(m.unavailable_features),
                    "alias_of": m.alias_of,
                    "deprecated": m.deprecated,
                    "migration_safe": m.migration_safe,
                    "static": m.static,
                    "typename": m.typename,
                    "features": None if m.features is None else list(m.features),
                }
            )
        if mp.static_expansion is not None:
            out.expansion.append(_expansion_row(run_id, host, mt, "static", mp.static_expansion))
        if mp.full_expansion is not None:
            out.expansion.append(_expansion_row(run_id, host, mt, "full", mp.full_expansion))
    return out
