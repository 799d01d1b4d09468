"""What came back from a host -> its verify document, or a failure with its stage and evidence.

Pure, tested from bytes. Why it delegates to collect's ``probe_reply`` when
no verify document arrived: the story before the document is the same
command's (no python3, an old Python, a damaged upload, a deadline, a
dead connection, garbage on stdout), and one decision table keeps both
commands' failure rows alike. What differs is only what a document is and
what it means for a verify document to arrive with trouble around it:

* a document that is not ``ok`` is the host's own verdict (qemu, qmp,
  timeout, interrupted) and wins over the exit code, as for the probe;
* an ``ok`` document whose command then outlived its deadline or ended
  badly is a ``cleanup`` failure that keeps its data: QEMU may still run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..collect.probe_reply import interpret as interpret_probe_run
from ..errors import ProbeDocumentError
from ..fleet.remote_run import RemoteRun
from ..probe.document_decoder import document_from_json
from ..probe.enforce_document import VerifyDocument, verify_from_json
from ..vocabulary import Stage

__all__ = ["Answer", "interpret"]


@dataclass(frozen=True)
class Answer:
    """One host's answer: a document, a failure stage, or both (a cleanup failure keeps its data)."""

    document: VerifyDocument | None
    stage: str | None = None
    error: str | None = None
    code: str | None = None
    stderr_tail: str = ""


def _probe_problem(stdout: bytes) -> str:
    """What collect's ``probe_reply`` said is wrong with ``stdout`` as a probe document."""
    try:
        document_from_json(stdout.decode("utf-8", errors="replace"), "probe output")
    except ProbeDocumentError as exc:
        return exc.message
    return "\0"  # it is a probe document: nothing to replace


def _how_it_ended(run: RemoteRun) -> str:
    if run.exit_signal is not None:
        return f"killed by signal {run.exit_signal}"
    return f"exit status {run.exit_status}" if run.exit_status is not None else "no exit status"


def interpret(run: RemoteRun, python: str) -> Answer:  # noqa: PLR0911 - a decision table
    """The answer for one run; ``python`` is the interpreter the command asked for (for messages)."""
    stderr = run.stderr_tail.decode("utf-8", errors="replace")
    document: VerifyDocument | None = None
    problem = ""
    if run.stdout.strip() and not run.stdout_overflow:
        try:
            document = verify_from_json(run.stdout.decode("utf-8", errors="replace"), "verify output")
        except ProbeDocumentError as exc:
            problem = exc.message
    if document is None:
        told = interpret_probe_run(run, python)
        if told.stage is None:  # a probe document where a verify document belongs
            return Answer(
                None,
                Stage.OUTPUT,
                "the host answered with a probe document, not a verify "
                "document: is its bundle another fleetcpu version?",
                "bad-output",
                stderr,
            )
        error = told.error or ""
        if problem:  # say what is wrong with it as a verify document, not as a probe document
            error = error.replace(_probe_problem(run.stdout), problem)
        error = error.replace("probe document", "verify document")
        return Answer(None, told.stage, error, told.code, told.stderr_tail)
    if run.timed_out and not document.ok:
        how = "did not stop after SIGTERM and was closed hard" if run.killed else "was stopped with SIGTERM"
        return Answer(
            document, Stage.TIMEOUT, f"no answer within the command timeout; verify {how}", "timeout", stderr
        )
    if not document.ok:
        return Answer(document, document.stage, document.error, document.error_code, stderr)
    if run.timed_out:
        how = "was closed hard" if run.killed else "was stopped with SIGTERM"
        return Answer(
            document,
            Stage.CLEANUP,
            f"verify printed its document but did not exit before the command timeout; it {how}",
            "cleanup",
            stderr,
        )
    if run.exit_signal is not None or run.exit_status not in (0, None):
        return Answer(
            document,
            Stage.CLEANUP,
            f"verify printed its document, then ended with {_how_it_ended(run)}",
            "cleanup",
            stderr,
        )
    return Answer(document, stderr_tail=stderr)
