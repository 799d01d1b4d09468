"""The ``fleetcpu.verify/1`` document: what one ``enforce`` launch told, and how it is read back.

Split from ``enforce`` (the launch itself) because both sides need it: the
host writes it, and the orchestrator's pure judging code (``verify.judge``,
``verify.enforce_reply``) reads it without importing anything that starts
processes. QEMU's enforce warnings are parsed here too (``missing_features``):
they are part of what the document says.

Python 3.9, stdlib only: this module ships to hosts in the bundle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import FrozenSet, List, Optional, Tuple

from ..errors import ProbeDocumentError
from ..vocabulary import Status
from . import features
from .document import (
    REGISTERS,
    FeatureWord,
    QueryFailure,
    VcpuProps,
)
from .envelope import JsonDocument, check_status

__all__ = [
    "SCHEMA",
    "SCHEMA_MAJOR",
    "QemuBrief",
    "VerifyDocument",
    "check_verify_document",
    "missing_features",
    "verify_from_json",
]

SCHEMA = "fleetcpu.verify/1"
SCHEMA_MAJOR = "fleetcpu.verify/"

# QEMU's warning for each feature it cannot give (target/i386/cpu.c,
# mark_unavailable_features): "<who> doesn't support requested feature:
# CPUID.07H:EBX.avx2 [bit 5]" or "MSR(10AH).taa-no [bit 8]"; a bit without a
# name has no ".<name>". ``who`` is "host" (KVM) or "TCG".
_MISSING_RE = re.compile(
    r"doesn't support requested feature: "
    r"(?:CPUID\.(?P<leaf>[0-9A-Fa-f]+)H:(?P<reg>[A-Za-z]+)|MSR\((?P<msr>[0-9A-Fa-f]+)H\))"
    r"(?:\.(?P<name>\S+))? \[bit (?P<bit>\d+)\]"
)


@dataclass(frozen=True)
class QemuBrief:
    """Which QEMU answered: enough to tell hosts apart in a report, unlike the probe's full list."""

    binary: str
    version: str
    package: str = ""


@dataclass(frozen=True)
class VerifyDocument(JsonDocument):
    """Everything one verify launch told us; ``status`` failed means no answer was reached.

    It opens with the envelope's fields (``envelope.JsonDocument``) and closes
    with the failure's, as every host document does.
    """

    #: The CPU as asked, without the ``,enforce`` verify appends.
    cpu: str
    #: The machine type as asked (versioned, or an alias such as q35).
    requested_machine_type: str
    accel: str
    qemu: Optional[QemuBrief] = None
    #: None: QEMU was never launched; False: it refused (see exit_status, stderr_tail, missing).
    started: Optional[bool] = None
    #: The versioned machine type the host's QEMU resolved the request to.
    machine_type: Optional[str] = None
    #: What query-kvm says the started guest really uses.
    accel_used: Optional[str] = None
    exit_status: Optional[int] = None
    stderr_tail: str = ""
    #: Canonical names of the features QEMU said it could not give, in its order.
    missing: Tuple[str, ...] = ()
    #: None: not read (did not start, or QEMU refused the qom-get; see errors).
    feature_words: Optional[Tuple[FeatureWord, ...]] = None
    filtered_features: Optional[Tuple[FeatureWord, ...]] = None
    vcpu: VcpuProps = field(default_factory=VcpuProps)
    errors: Tuple[QueryFailure, ...] = ()
    argv: Tuple[str, ...] = ()
    stage: Optional[str] = None
    error: Optional[str] = None
    error_code: Optional[str] = None
    exit_code: int = 0
    schema: str = SCHEMA


def verify_from_json(text: str, source: str = "<verify>") -> VerifyDocument:
    """Validate a verify document; errors name the key at fault (``ProbeDocumentError``).

    Read by the one document decoder, as probe documents are. Imported here,
    not at the top: the host writes verify documents and never reads one.
    """
    from .document_decoder import DocumentDecoder, DocumentKind

    kind = DocumentKind(VerifyDocument, SCHEMA, SCHEMA_MAJOR, "verify", check_verify_document)
    doc: VerifyDocument = DocumentDecoder(0).decode(kind, text, source)
    return doc


def check_verify_document(
    doc: VerifyDocument, source: str, _reused: FrozenSet[str] = frozenset()
) -> VerifyDocument:
    """The rules types cannot say (``_reused`` is empty: the decoder remembers no verify part)."""
    check_status(doc.status, doc.stage, source)
    if doc.status == Status.OK and doc.started is None:
        raise ProbeDocumentError(source, "started", "an ok document says whether QEMU started")
    for key in ("feature_words", "filtered_features"):
        for i, word in enumerate(getattr(doc, key) or ()):
            if word.register not in REGISTERS:
                raise ProbeDocumentError(
                    source, "%s[%d].register" % (key, i), "must be one of %s" % ", ".join(REGISTERS)
                )
    return doc


def missing_features(stderr: str) -> Tuple[str, ...]:
    """The features QEMU's enforce warnings name, canonical, each once, in QEMU's order.

    A bit QEMU prints without a name is named from its CPUID position (the
    subleaf is not in the message, 0 is assumed) so it is still reported.
    It reads the stderr tail the launch keeps (4 KiB, about 45 warnings):
    a host lacking more features than that is named by its last 45.
    """
    out: List[str] = []
    for m in _MISSING_RE.finditer(stderr):
        name = m.group("name")
        if name is None and m.group("leaf") is not None:
            found = features.names_for(int(m.group("leaf"), 16), 0, m.group("reg"), 1 << int(m.group("bit")))
            name = found[0] if found else None
        if name is None:
            name = "msr-0x%s-bit%s" % (m.group("msr").lower(), m.group("bit"))
        canon = features.canonical(name)
        if canon not in out:
            out.append(canon)
    return tuple(out)
