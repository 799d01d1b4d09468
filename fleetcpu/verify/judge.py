"""Every host's answer -> one verdict per host: pure, records in and out.

The rules, in the order a host can fall short (``records.VERDICTS``):

1. ``failed``: no answer from the host's QEMU (connect, hostkey, python,
   qemu missing, timeout, output...), or an answer whose command did not end
   cleanly (``cleanup``): the data is kept, the host does not pass.
2. ``refused``: QEMU would not start ``-cpu <CPU>,enforce``; the reason names
   the features QEMU said it lacks, else QEMU's first error line.
3. ``filtered``: it started yet filtered features. ``enforce`` forbids that,
   so only a QEMU that ignores it gets here; named with the probe's feature
   table (``decode.words_to_features``), an unnamed bit by its position.
4. ``unverified``: it started clean, but ``feature-words`` or
   ``filtered-features`` could not be read: nothing proves what the guest
   sees, and verify never claims what it did not see.
5. ``differs``: its vCPU is not the reference's (register bits, named; or a
   scalar: vendor, family, model, stepping, model-id, level, xlevel,
   phys-bits), i.e. a guest migrating between the two would see its CPU change.

The reference is the vCPU most hosts present (by feature-words digest),
ties broken by the host name that sorts first, and within that group the
first host by name: with one odd host out of ten, the odd one is named,
not the nine. Registers are compared without their zero words, because a
newer QEMU lists more (all-zero) words for the same guest CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ..probe import features
from ..probe.document import FeatureWord, VcpuProps
from ..probe.enforce_document import VerifyDocument
from ..probe.qmp_decode import words_to_features
from ..vocabulary import Stage
from .verdicts import Difference, HostRun, HostVerdict, Target, VerifyReport

__all__ = [
    "SCALARS",
    "Word",
    "describe",
    "differences",
    "first_error_line",
    "judge",
    "named_bits",
    "words_digest",
]

#: The vCPU scalars compared between hosts (``VcpuProps`` fields); None on either side: not compared.
SCALARS = ("vendor", "family", "model", "stepping", "model_id", "level", "xlevel", "phys_bits")

Word = tuple[int, int, str]

_ERROR_MARKERS = (
    "doesn't support",
    "error",
    "failed",
    "unsupported",
    "cannot",
    "could not",
    "not found",
    "invalid",
)


def _nonzero(words: Iterable[FeatureWord]) -> dict[Word, int]:
    out: dict[Word, int] = {}
    for w in words:
        if w.bits:
            out[(w.leaf, w.subleaf, w.register)] = out.get((w.leaf, w.subleaf, w.register), 0) | w.bits
    return out


def words_digest(words: Iterable[FeatureWord]) -> str:
    """sha256 of the non-zero registers, in order: equal digests, equal guest feature bits."""
    text = "".join(
        f"{leaf:x}.{sub:x}.{reg}={bits:x}\n" for (leaf, sub, reg), bits in sorted(_nonzero(words).items())
    )
    return hashlib.sha256(text.encode()).hexdigest()


def named_bits(leaf: int, subleaf: int, register: str, bits: int) -> tuple[str, ...]:
    """Feature names of ``bits`` in one register; outside the feature table, the bits in hex."""
    if not bits:
        return ()
    if features.is_feature_word(leaf, subleaf, register):
        return features.names_for(leaf, subleaf, register, bits)
    return (f"0x{leaf:x}.{subleaf}.{register}&0x{bits:x}",)


def _filtered_names(words: Sequence[FeatureWord]) -> tuple[str, ...]:
    named = set(words_to_features(words))
    for w in words:  # a filtered bit outside the feature table must still be reported
        if w.bits and not features.is_feature_word(w.leaf, w.subleaf, w.register):
            named.update(named_bits(w.leaf, w.subleaf, w.register, w.bits))
    return tuple(sorted(named))


def differences(
    host_words: Sequence[FeatureWord],
    pool_words: Sequence[FeatureWord],
    host_vcpu: VcpuProps,
    pool_vcpu: VcpuProps,
) -> tuple[Difference, ...]:
    """How a host's vCPU differs from the reference's: registers first (by CPUID order), then scalars."""
    mine, theirs = _nonzero(host_words), _nonzero(pool_words)
    out = []
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key, 0), theirs.get(key, 0)
        if a == b:
            continue
        leaf, sub, reg = key
        out.append(
            Difference(
                "register",
                f"0x{leaf:x}.{sub}.{reg}",
                a,
                b,
                extra=named_bits(leaf, sub, reg, a & ~b),
                lacking=named_bits(leaf, sub, reg, b & ~a),
            )
        )
    for name in SCALARS:
        a_value, b_value = getattr(host_vcpu, name), getattr(pool_vcpu, name)
        if a_value is not None and b_value is not None and a_value != b_value:
            out.append(Difference("scalar", name, a_value, b_value))
    return tuple(out)


def first_error_line(stderr: str) -> str:
    """The line of QEMU's stderr that names the cause (warnings first list what enforce refused)."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    causes = [ln for ln in lines if any(m in ln.lower() for m in _ERROR_MARKERS)]
    return (causes[-1] if causes else lines[-1] if lines else "no output on stderr")[:300]


def describe(diffs: Sequence[Difference], limit: int = 4) -> str:
    """``0x7.0.ebx +avx2 -bmi1; phys_bits 40 (pool 39)``: the first few differences, in a line."""
    parts = []
    for d in diffs[:limit]:
        if d.kind == "register":
            names = [f"+{n}" for n in d.extra] + [f"-{n}" for n in d.lacking]
            parts.append(f"{d.name} {' '.join(names)}")
        else:
            parts.append(f"{d.name} {d.host!r} (pool {d.pool!r})")
    more = len(diffs) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class _Reference(NamedTuple):
    host: str
    digest: str
    words: tuple[FeatureWord, ...]
    vcpu: VcpuProps


def _reference(runs: Sequence[HostRun]) -> _Reference | None:
    groups: dict[str, list[_Reference]] = {}
    for run in sorted(runs, key=lambda r: r.host):
        doc = run.document
        if _comparable(run) and doc is not None and doc.feature_words is not None:
            digest = words_digest(doc.feature_words)
            groups.setdefault(digest, []).append(_Reference(run.host, digest, doc.feature_words, doc.vcpu))
    if not groups:
        return None
    group = min(groups.values(), key=lambda g: (-len(g), g[0].host))
    return group[0]


def _comparable(run: HostRun) -> bool:
    """Started clean with enforce and answered both reads: its words can stand for the pool."""
    doc = run.document
    return (
        run.stage is None
        and doc is not None
        and doc.ok
        and doc.started is True
        and doc.feature_words is not None
        and doc.filtered_features is not None
        and not _nonzero(doc.filtered_features)
    )


def _qom_error(doc: VerifyDocument) -> str:
    failed = [
        f"{f.query}: {f.message}"
        for f in doc.errors
        if f.query.startswith("qom-get") or f.query == "query-cpus-fast"
    ]
    return "; ".join(failed[:2]) or "QEMU reported no vCPU"


def _verdict(run: HostRun, ref: _Reference | None) -> HostVerdict:  # noqa: PLR0911
    doc = run.document
    base = HostVerdict(
        host=run.host,
        pool=run.pool,
        collected_at=run.collected_at,
        duration_s=run.duration_s,
        verdict="failed",
        reason="",
        stage=run.stage,
        error=run.error,
        error_code=run.error_code,
        stderr_tail=run.stderr_tail,
    )
    if doc is not None:
        base = _with_document(base, doc, run)
    if run.stage is not None or doc is None:
        stage = run.stage or Stage.OUTPUT
        return dataclasses.replace(
            base, verdict="failed", stage=stage, reason=f"{stage}: {run.error or 'no verify document'}"
        )
    if not doc.ok:
        return dataclasses.replace(
            base,
            verdict="failed",
            stage=doc.stage,
            error=doc.error,
            error_code=doc.error_code,
            reason=f"{doc.stage}: {doc.error}",
        )
    if doc.started is False:
        missing = f"lacks {', '.join(doc.missing)}" if doc.missing else first_error_line(doc.stderr_tail)
        return dataclasses.replace(
            base, verdict="refused", reason=f"QEMU refused to start the CPU with enforce: {missing}"
        )
    if doc.filtered_features is not None and base.filtered:
        return dataclasses.replace(
            base,
            verdict="filtered",
            reason=f"started but filtered {', '.join(base.filtered)} (this QEMU did not honour enforce)",
        )
    if doc.feature_words is None or doc.filtered_features is None:
        return dataclasses.replace(
            base, verdict="unverified", reason=f"started, but its vCPU could not be read: {_qom_error(doc)}"
        )
    assert ref is not None, "a comparable host always yields a reference"
    diffs = differences(doc.feature_words, ref.words, doc.vcpu, ref.vcpu)
    base = dataclasses.replace(base, equal_to_pool=not diffs, differences=diffs)
    if diffs:
        return dataclasses.replace(
            base, verdict="differs", reason=f"differs from {ref.host}: {describe(diffs)}"
        )
    return dataclasses.replace(base, verdict="pass", reason="")


def _with_document(base: HostVerdict, doc: VerifyDocument, run: HostRun) -> HostVerdict:
    filtered = _filtered_names(doc.filtered_features or ())
    # QEMU's own words when it refused; else the command's (a traceback), else QEMU's warnings.
    stderr = doc.stderr_tail if doc.started is False or not run.stderr_tail else run.stderr_tail
    return dataclasses.replace(
        base,
        started=doc.started,
        exit_status=doc.exit_status,
        machine_type=doc.machine_type,
        qemu_version=doc.qemu.version if doc.qemu is not None else None,
        missing=doc.missing,
        filtered=filtered,
        words_digest=None if doc.feature_words is None else words_digest(doc.feature_words),
        vcpu=doc.vcpu if doc.started else None,
        stderr_tail=stderr,
    )


def judge(
    target: Target,
    runs: Sequence[HostRun],
    *,
    run_id: str | None = None,
    elapsed_s: float = 0.0,
    interrupted: bool = False,
) -> VerifyReport:
    """The pool's report: one verdict per host (sorted by name) against the majority vCPU."""
    names = [r.host for r in runs]
    if len(set(names)) != len(names):
        raise ValueError("a host answered twice in one verify run")
    ref = _reference(runs)
    verdicts = tuple(_verdict(r, ref) for r in sorted(runs, key=lambda r: r.host))
    return VerifyReport(
        target=target,
        hosts=verdicts,
        reference=ref.host if ref is not None else None,
        reference_digest=ref.digest if ref is not None else None,
        run_id=run_id,
        elapsed_s=elapsed_s,
        interrupted=interrupted,
    )
