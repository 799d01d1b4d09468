"""What came back from a host -> the probe's document, or a failure with its stage and evidence.

Pure (no I/O), so every verdict is tested from bytes. The order of the
checks is the order of the story on the host: did Python start (shell exit
127/126, the bootstrap's old-Python marker), did the bundle arrive (the
bootstrap's upload marker, a refused stdin), did the deadline pass, and only
then: is stdout a probe document? A document, even a failed one, is the
probe's own verdict (stage qemu, qmp, timeout...) and wins over the exit code.

Evidence is kept small and always: the first bytes of stdout (what the
garbage looked like) and the stderr tail (a traceback, the shell's
complaint).

A login banner or motd some shells print on stdout before the command's
output must not turn a valid host into a failure. So, as Ansible does, when
stdout does not start with ``{`` the document is looked for from the first
line that does; if it decodes, the lines before it are skipped, and the
verdict says so (``banner``, and a note first in the stderr tail the row
keeps). If it does not, the verdict is the one for the whole stdout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ProbeDocumentError
from ..fleet.bootstrap import EXIT_BAD_BUNDLE, EXIT_OLD_PYTHON, MARKER
from ..fleet.remote_run import STDOUT_BUDGET, STDOUT_CAP, STDOUT_FREE, RemoteRun
from ..probe.document import ProbeDocument
from ..probe.document_decoder import DocumentDecoder
from ..vocabulary import Stage

__all__ = ["BANNER_EVIDENCE", "STDOUT_EVIDENCE", "Verdict", "interpret"]

#: The stages whose message quotes the start of stdout (what came instead of a document).
_SHOW_STDOUT = (Stage.OUTPUT, Stage.TIMEOUT, Stage.UPLOAD)
#: How much of an unusable stdout is kept as evidence.
STDOUT_EVIDENCE = 512
#: How much of a skipped banner the row keeps.
BANNER_EVIDENCE = 200


@dataclass(frozen=True)
class Verdict:
    document: ProbeDocument | None
    stage: str | None = None
    error: str | None = None
    code: str | None = None
    stderr_tail: str = ""
    #: Lines of a banner skipped before the document (0: none).
    banner: int = 0


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _marker(stderr: str, what: str) -> str | None:
    prefix = f"{MARKER} {what} "
    for line in stderr.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def _last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no stderr"


def _how_it_ended(run: RemoteRun) -> str:
    if run.exit_signal is not None:
        return f"killed by signal {run.exit_signal}"
    if run.exit_status is not None:
        return f"exit status {run.exit_status}"
    return "no exit status"


def _with_document(run: RemoteRun, document: ProbeDocument, stderr: str) -> Verdict:
    """A document arrived; an ok one whose command then did not end cleanly is a ``cleanup`` failure.

    The data is kept (it is valid), but the host may still run what the probe
    could not stop, so the row says so instead of claiming success.
    """
    if document.ok and run.timed_out:
        how = "was closed hard" if run.killed else "was stopped with SIGTERM"
        return Verdict(
            document,
            Stage.CLEANUP,
            f"the probe printed its document but did not exit before the command timeout; it {how}",
            "cleanup",
            stderr,
        )
    if document.ok and (run.exit_signal is not None or run.exit_status not in (0, None)):
        return Verdict(
            document,
            Stage.CLEANUP,
            f"the probe printed its document, then ended with {_how_it_ended(run)}: {_last_line(stderr)}",
            "cleanup",
            stderr,
        )
    return Verdict(document, stderr_tail=stderr)


def _after_banner(stdout: bytes) -> tuple[bytes, bytes] | None:
    """(banner, the rest from the first line starting with ``{``), or None when there is no banner."""
    if stdout.lstrip().startswith(b"{"):
        return None
    at = stdout.find(b"\n{")
    return None if at < 0 else (stdout[: at + 1], stdout[at + 1 :])


def _read_past_banner(stdout: bytes, decoder: DocumentDecoder) -> tuple[ProbeDocument | None, bytes]:
    """The document after a banner, and the banner; (None, b"") when that is not what stdout is."""
    split = _after_banner(stdout)
    if split is None:
        return None, b""
    try:
        return decoder.probe(_text(split[1]), "probe output"), split[0]
    except ProbeDocumentError:
        return None, b""


def _banner_lines(banner: bytes) -> int:
    return banner.count(b"\n") or 1


def _banner_note(banner: bytes) -> str:
    shown = _text(banner[:BANNER_EVIDENCE])
    return (
        f"fleetcpu: skipped a {_banner_lines(banner)}-line banner before the probe "
        f"document ({len(banner)} bytes): {shown!r}\n"
    )


def interpret(  # noqa: PLR0911, PLR0912 - a decision table
    run: RemoteRun, python: str, decoder: DocumentDecoder | None = None
) -> Verdict:
    """The verdict for one run; ``python`` is the interpreter the command asked for (for messages).

    ``decoder`` reads the document: collect passes its run's, whose cache
    skips re-decoding a CPU seen this run; without one, nothing is remembered.
    """
    decoder = DocumentDecoder(0) if decoder is None else decoder
    stderr = _text(run.stderr_tail)

    def fail(stage: str, error: str, code: str) -> Verdict:
        if run.stdout and stage in _SHOW_STDOUT:
            shown = run.stdout[:STDOUT_EVIDENCE]
            error += f"; stdout began with {shown!r} ({len(run.stdout)} bytes)"
        return Verdict(None, stage, error, code, stderr)

    status = run.exit_status
    if status == 127 and not run.stdout:
        return fail(
            Stage.PYTHON, f"{python} not found on the host (exit 127): {_last_line(stderr)}", "python-missing"
        )
    if status == 126 and not run.stdout:
        return fail(
            Stage.PYTHON,
            f"{python} cannot be executed (exit 126): {_last_line(stderr)}",
            "python-not-executable",
        )
    too_old = _marker(stderr, "python-too-old")
    if status == EXIT_OLD_PYTHON and too_old is not None:
        return fail(Stage.PYTHON, too_old, "python-too-old")
    bad_bundle = _marker(stderr, "upload")
    if status == EXIT_BAD_BUNDLE and bad_bundle is not None:
        return fail(Stage.UPLOAD, f"the host did not receive the probe bundle intact: {bad_bundle}", "upload")
    if run.upload_error is not None and not run.stdout:
        return fail(
            Stage.UPLOAD,
            f"sending the probe bundle failed ({run.upload_error}); "
            f"the command ended with {_how_it_ended(run)}",
            "upload",
        )
    if run.over_budget:
        return fail(
            Stage.OUTPUT,
            f"more than {STDOUT_FREE} bytes on stdout while other hosts' output "
            f"held the collector's shared budget ({STDOUT_BUDGET} bytes): not a probe "
            "document",
            "output-too-large",
        )
    if run.stdout_overflow:
        return fail(
            Stage.OUTPUT, f"more than {STDOUT_CAP} bytes on stdout: not a probe document", "output-too-large"
        )
    document: ProbeDocument | None = None
    problem = ""
    banner = b""
    if run.stdout.strip():
        document, banner = _read_past_banner(run.stdout, decoder)
        if document is None:
            try:
                document = decoder.probe(_text(run.stdout), "probe output")
            except ProbeDocumentError as exc:
                problem = exc.message
    if run.timed_out and (document is None or not document.ok):
        how = "did not stop after SIGTERM and was closed hard" if run.killed else "was stopped with SIGTERM"
        return fail(
            Stage.TIMEOUT, f"no probe document within the command timeout; the probe {how}", "timeout"
        )
    if document is not None:
        if banner:
            verdict = _with_document(run, document, _banner_note(banner) + stderr)
            return dataclasses.replace(verdict, banner=_banner_lines(banner))
        return _with_document(run, document, stderr)
    if run.lost is not None:
        return fail(
            Stage.OUTPUT, f"connection lost before the probe finished ({run.lost})", "connection-lost"
        )
    if not run.stdout.strip():
        return fail(
            Stage.OUTPUT,
            f"the probe printed nothing and ended with {_how_it_ended(run)}: {_last_line(stderr)}",
            "no-output",
        )
    if run.exit_signal is not None:
        return fail(
            Stage.OUTPUT,
            f"the probe was killed by signal {run.exit_signal} after "
            f"{len(run.stdout)} bytes of output ({problem})",
            "killed",
        )
    if run.stdout.lstrip().startswith(b"{") and not run.stdout.rstrip().endswith(b"}"):
        return fail(
            Stage.OUTPUT,
            f"truncated probe document: {len(run.stdout)} bytes ending "
            f"mid-document ({problem}); it ended with {_how_it_ended(run)}",
            "truncated",
        )
    return fail(
        Stage.OUTPUT,
        f"the probe's output is not a probe document ({problem}); it ended with {_how_it_ended(run)}",
        "bad-output",
    )
