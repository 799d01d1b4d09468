"""The envelope of every document a host prints: how it opens, how it says it failed, how it is written.

A host prints two documents: the probe's (``fleetcpu.probe/1``,
``document``) and verify's (``fleetcpu.verify/1``, ``enforce_document``).
Each had its own copy of what they share: the opening fields, the ``ok``
test, the failed document's stage, error, error code and exit code, and the
reader's checks of the schema string and the status. A fix to one (the
stage of a non-probe error, the check that a failed document names its
stage) then had to be made twice. Here it is written once:

* ``JsonDocument``: the opening fields (``status``, ``probe_version``,
  ``time``, ``duration_s``), which come first in both documents, ``ok``,
  and the writing (``schema`` first, then the fields in order). The closing
  fields (``stage``, ``error``, ``error_code``, ``exit_code``, ``schema``)
  are declared by each document, last: a dataclass puts a base's fields
  before its subclass's, and moving them would reorder the JSON.
  ``tests/test_failed_documents.py`` holds the two closings to each other.
* ``build``: the one builder of a document from what a run learnt, failed
  (with where and why) when the run ended with an error.
* ``read_envelope`` and ``check_status``: the reader's checks both
  documents share, before and after their fields are decoded.

Python 3.9, stdlib only: this module ships to hosts in the bundle.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Type, TypeVar

from .. import __version__
from ..errors import FleetcpuError, ProbeDocumentError, ProbeError
from ..vocabulary import Status

__all__ = ["JsonDocument", "build", "check_status", "read_envelope"]


@dataclass(frozen=True)
class JsonDocument:
    """What every document a host prints opens with, and how it is written as JSON."""

    status: str
    probe_version: str
    #: When the run started, host clock (``vocabulary.now_rfc3339``).
    time: str
    duration_s: float

    @property
    def ok(self) -> bool:
        """An answer was reached (for verify: even QEMU refusing the CPU is one)."""
        return self.status == Status.OK

    def to_dict(self) -> Dict[str, Any]:
        out = _plain(self)
        assert isinstance(out, dict)
        # schema first, for humans reading the file
        return {"schema": out.pop("schema"), **out}

    def to_json(self, indent: Optional[int] = None) -> str:
        """``to_dict()`` as JSON, but with the encoder walking the records itself.

        The C encoder takes tuples, lists, dicts and scalars as they are and asks
        ``_fields`` only for each record: same text, a quarter of the time of
        building the plain copy first, at the very end of every probe.
        """
        fields = _fields(self)
        top = {"schema": fields.pop("schema"), **fields}
        return json.dumps(top, indent=indent, default=_fields)


def _fields(record: Any) -> Dict[str, Any]:
    """One record's fields by name, values untouched (the JSON encoder's ``default``)."""
    names = getattr(record, "__dataclass_fields__", None)
    if names is None:
        raise TypeError("not JSON serialisable: %s" % type(record).__name__)
    return {name: getattr(record, name) for name in names}


def _plain(value: Any) -> Any:
    """Records -> JSON-ready values; ``dataclasses.asdict`` deep-copies and was 3x slower."""
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------
# Building one: opening, the run's own fields, and the failure if there was one.

_D = TypeVar("_D", bound=JsonDocument)


def _failure(error: FleetcpuError) -> Dict[str, Any]:
    """The closing fields of a failed document: where the run stopped, the error, its codes.

    A probe error names its stage (qemu, qmp, timeout, facts); any other
    error (an interruption) is its own stage, named by its code.
    """
    return {
        "status": Status.FAILED,
        "stage": error.stage if isinstance(error, ProbeError) else error.code,
        "error": error.message,
        "error_code": error.code,
        "exit_code": error.exit_code,
    }


def build(
    cls: Type[_D],
    started: float,
    when: str,
    fields: Dict[str, Any],
    error: Optional[FleetcpuError],
    when_failed: Optional[Dict[str, Any]] = None,
) -> _D:
    """The document ``cls`` of a run that started at ``started`` (monotonic) and ``when`` (RFC 3339).

    ``fields``: what the run learnt, kept in a failed document too (it is the
    evidence). ``when_failed``: what a failed document says instead (the
    probe's machine types: a failed probe's partial CPU data is never data).
    """
    out: Dict[str, Any] = {
        "status": Status.OK,
        "probe_version": __version__,
        "time": when,
        "duration_s": round(time.monotonic() - started, 4),
    }
    out.update(fields)
    if error is not None:
        out.update(_failure(error))
        out.update(when_failed or {})
    return cls(**out)


# --------------------------------------------------------------------------
# Reading one: the checks both documents share.

_STATUSES = Status.values()


def read_envelope(value: Any, schema: str, major: str, kind: str, source: str) -> Dict[str, Any]:
    """``value`` if it is a JSON object of exactly ``schema``; errors say which way it is not.

    Another version of the same document (``major``, e.g. ``fleetcpu.probe/``)
    is named as unsupported, not as garbage: an orchestrator older than its
    hosts says so.
    """
    if not isinstance(value, dict):
        raise ProbeDocumentError(source, "", "not a JSON object")
    found = value.get("schema")
    if not isinstance(found, str) or not found.startswith(major):
        raise ProbeDocumentError(source, "schema", "not a fleetcpu %s document (%r)" % (kind, found))
    if found != schema:
        raise ProbeDocumentError(
            source, "schema", "unsupported version %r (this fleetcpu reads %r)" % (found, schema)
        )
    return value


def check_status(status: str, stage: Optional[str], source: str) -> None:
    """A decoded document's status is ok or failed, and a failed one says where it stopped."""
    if status not in _STATUSES:
        raise ProbeDocumentError(source, "status", "must be 'ok' or 'failed'")
    if status == Status.FAILED and not stage:
        raise ProbeDocumentError(source, "stage", "a failed document must say its stage")
