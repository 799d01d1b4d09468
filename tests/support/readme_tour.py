"""The README's tour as data: its ``console`` blocks, run for real, compared modulo times and run ids.

A block is a series of ``$ command`` lines, each followed by the stdout it
prints (stderr, where notes and warnings go, is not shown). A command may end
in ``# exit N`` when N is the status it must exit with (default 0). Commands
run through ``bash`` from a directory holding the checkout's ``examples/``
and ``inventories/``, with ``fleetcpu`` on PATH and ``FLEETCPU_STORE`` set to
a fresh store, so they are the reader's commands exactly.

    python -m tests.support.readme_tour        # rewrite the tour's sample output from a real run

rewrites the README in place (then review the diff): the sample output is
a product of the code, never typed by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SECTION = "## The tour"
#: Blocks whose output depends on the machine the commands run on (its QEMU, its CPU).
LOCAL_MARK = "inventories/local.txt"

RUN_ID = re.compile(r"\b\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\b")
TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
SECONDS = re.compile(r"\bin \d+(\.\d+)?s\b")
EXIT = re.compile(r"\s+# exit (\d+)\s*$")


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        m = EXIT.search(self.command)
        return int(m.group(1)) if m else 0


@dataclass
class Block:
    steps: list[Step]
    start: int  # line index of the opening fence in the README
    end: int  # line index of the closing fence

    @property
    def local(self) -> bool:
        """Does it talk to this machine (collect, verify), so its output is the machine's?"""
        return any(LOCAL_MARK in s.command for s in self.steps)


def section_lines(text: str) -> tuple[list[str], int, int]:
    lines = text.split("\n")
    start = lines.index(SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines, start, end


def blocks(text: str | None = None) -> list[Block]:
    """The tour's ``console`` blocks, in order."""
    lines, start, end = section_lines(README.read_text() if text is None else text)
    found: list[Block] = []
    i = start
    while i < end:
        if lines[i].strip() == "```console":
            j = i + 1
            steps: list[Step] = []
            while lines[j].strip() != "```":
                if lines[j].startswith("$ "):
                    steps.append(Step(lines[j][2:]))
                elif steps:
                    steps[-1].expected.append(lines[j])
                j += 1
            found.append(Block(steps, i, j))
            i = j
        i += 1
    return found


def normalize(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        stable = TIME.sub("<time>", RUN_ID.sub("<run>", line))
        out.append(SECONDS.sub("in <s>s", stable).rstrip())
    return out


@dataclass(frozen=True)
class Ran:
    command: str
    status: int
    stdout: list[str]
    stderr: str


def run(step: Step, cwd: Path, store: Path, timeout: float = 300) -> Ran:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FLEETCPU_STORE"] = str(store)
    done = subprocess.run(
        ["bash", "-c", step.command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out = done.stdout.split("\n")
    if out and out[-1] == "":
        out.pop()
    return Ran(step.command, done.returncode, out, done.stderr)


def rewrite(cwd: Path, store: Path) -> str:
    """The README with every tour block's output replaced by what its commands print now."""
    text = README.read_text()
    lines = text.split("\n")
    bodies = []
    for block in blocks(text):  # in order: each block works on the store the last one left
        body = []
        for step in block.steps:
            ran = run(step, cwd, store)
            if ran.status != step.status:
                raise SystemExit(f"{step.command!r} exited {ran.status}: {ran.stderr.strip()}")
            body += ["$ " + step.command, *ran.stdout]
        bodies.append((block, body))
    for block, body in reversed(bodies):  # splice from the end: earlier indices stay valid
        lines[block.start + 1 : block.end] = body
    return "\n".join(lines)


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fleetcpu-tour-") as tmp:
        README.write_text(rewrite(REPO, Path(tmp) / "store"))
    for leftover in ("report.html",):
        (REPO / leftover).unlink(missing_ok=True)
    print(f"rewrote the tour's sample output in {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
