"""Where one host's CPU goes in a fleetcpu session, measured part by part in one run.

    python benchmarks/host_bench.py [--runs 15] [--quick] [--against REV]

``peer_bench.py`` gives the total a run costs its hosts; this says what it is
made of, on this machine, each part a fresh process tree whose CPU (user +
system of everything reaped) is read with ``getrusage``, the parts
interleaved run by run so that drift hits them alike:

- *login shell*: the user's shell running ``-c true`` as sshd starts it
  (``SSH_CLIENT`` set, ``SHLVL`` unset): what the host's rc files cost every
  SSH session, whoever opens it;
- *python*: ``python3 -E -s -c pass``, the interpreter's own start;
- *QEMU*: each launch a warm-up probe made (from its ``attempts``), started
  paused with QMP on a socketpair, greeted and quit; a launch that dies at
  start is timed to its death. The launch that answered is measured again
  asked ``query-cpu-definitions``, the one query that costs QEMU real work;
- *session*: ``/bin/sh -c BOOTSTRAP`` with the real payload on stdin, kept
  open until the document is out: everything fleetcpu runs on a host, less
  sshd and the login shell;
- ``--against REV``: the same session with the bundle of another git
  revision (a temporary ``git worktree``), to measure a change.

The ratio printed last is the session against what no probe can avoid here:
the QEMU work plus one interpreter start. What is above it is fleetcpu's
Python (bootstrap, imports, QMP client, decoding, output).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
PROBE_ARGS = ["--accel", "kvm", "--timeout", "50"]
QUICK_RUNS = 5

_PAYLOAD = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from fleetcpu.fleet.bootstrap import payload, remote_command
from fleetcpu.fleet.bundle import load_bundle
bundle = load_bundle(Path(sys.argv[2]))
command = remote_command(sys.argv[3], sys.argv[4:])
sys.stdout.buffer.write(command.encode() + b"\\0" + payload(bundle))
"""


def cpu_of(run: Callable[[], None]) -> float:
    """CPU milliseconds of the children ``run`` starts and reaps."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return 1000 * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def session_of(tree: Path, cache: Path) -> tuple[str, bytes]:
    """The remote command and stdin payload of the bundle built from ``tree``'s sources."""
    out = subprocess.run(
        [sys.executable, "-c", _PAYLOAD, str(tree), str(cache), PYTHON, *PROBE_ARGS],
        capture_output=True,
        check=True,
    ).stdout
    command, payload = out.split(b"\0", 1)
    return command.decode(), payload


def run_session(command: str, payload: bytes, env: dict[str, str]) -> bytes:
    """One host session without sshd: stdin stays open until the probe's document is out."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    err: list[bytes] = []
    writer = threading.Thread(target=lambda: (proc.stdin.write(payload), proc.stdin.flush()))
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))
    writer.start()
    reader.start()
    out = proc.stdout.read()
    writer.join()
    proc.stdin.close()
    reader.join()
    if proc.wait() != 0:
        raise SystemExit(f"session failed ({proc.returncode}): {err[0][-2000:].decode(errors='replace')}")
    return out


def qemu_launch(binary: str, machine: str, accel: str, cpu: str, queries: list[str]) -> None:
    """One paused QEMU as the probe starts it, greeted, asked ``queries``, quit (or dead at start)."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [
            binary,
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-S",
            "-m",
            "64",
            "-smp",
            "1",
            "-machine",
            machine,
            "-accel",
            accel,
            "-cpu",
            cpu,
            "-chardev",
            f"socket,id=qmp,fd={theirs.fileno()}",
            "-mon",
            "chardev=qmp,mode=control",
        ],
        pass_fds=(theirs.fileno(),),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    theirs.close()
    stream = ours.makefile("rwb", buffering=65536)
    try:
        if stream.readline():
            for name in ["qmp_capabilities", *queries, "quit"]:
                stream.write(json.dumps({"execute": name}).encode() + b"\n")
                stream.flush()
                while (line := stream.readline()) and b'"return"' not in line and b'"error"' not in line:
                    pass
    except OSError:
        pass
    finally:
        proc.wait()
        stream.close()
        ours.close()


def login_shell() -> str | None:
    shell = pwd.getpwuid(os.getuid()).pw_shell
    return shell if shell and Path(shell).exists() else None


DEFINITIONS = "  + query-cpu-definitions"
PYTHON_START = "python start (-E -s -c pass)"
NOW = "session (this checkout)"


def build_parts(
    doc: dict, sessions: dict[str, tuple[str, bytes]], env: dict[str, str]
) -> tuple[dict[str, Callable[[], object]], list[str], str | None]:
    """Every part to time, the names of the unavoidable ones, and the answering launch's name."""
    binary = doc["qemu"]["binary"]
    parts: dict[str, Callable[[], object]] = {}
    shell = login_shell()
    if shell:
        shell_env = {k: v for k, v in os.environ.items() if k != "SHLVL"}
        shell_env["SSH_CLIENT"] = "127.0.0.1 50000 22"
        parts[f"login shell ({shell} -c true, as sshd)"] = lambda: subprocess.run(
            [shell, "-c", "true"], env=shell_env, cwd=Path.home(), check=False
        )
    parts[PYTHON_START] = lambda: subprocess.run([PYTHON, "-E", "-s", "-c", "pass"], check=True)
    floor = [PYTHON_START]
    answered = None
    for a in (a for a in doc["attempts"] if a["machine_type"]):
        name = f"QEMU -cpu {a['cpu']} ({a['outcome']})"
        parts[name] = lambda a=a: qemu_launch(binary, a["machine_type"], a["accel"], a["cpu"], [])
        floor.append(name)
        if a["outcome"] == "ok":
            answered = name
            parts[DEFINITIONS] = lambda a=a: qemu_launch(
                binary, a["machine_type"], a["accel"], a["cpu"], ["query-cpu-definitions"]
            )
    if answered:
        floor.append(DEFINITIONS)
    for label, (command, payload) in sessions.items():
        parts[label] = lambda c=command, p=payload: run_session(c, p, env)
    return parts, floor, answered


def report(
    doc: dict,
    samples: dict[str, list[float]],
    floor_parts: list[str],
    answered: str | None,
    against: str | None,
) -> None:
    samples = dict(samples)
    if answered:  # the definitions' own cost: the difference to the bare launch, run by run
        samples[DEFINITIONS] = [x - y for x, y in zip(samples[DEFINITIONS], samples[answered], strict=True)]
    medians = {k: statistics.median(v) for k, v in samples.items()}
    runs = len(samples[NOW])
    print(
        f"one host's CPU, median of {runs} interleaved runs ({os.uname().nodename}, "
        f"{os.cpu_count()} CPUs; QEMU {doc['qemu']['version']}, accel {doc['accel']})"
    )
    for label, value in medians.items():
        print(f"  {label:46s} {value:7.1f} ms   (min {min(samples[label]):.1f})")
    floor = sum(medians[k] for k in floor_parts)
    now = medians[NOW]
    print(f"  {'QEMU work + one interpreter (no probe avoids)':46s} {floor:7.1f} ms")
    print(f"  {'fleetcpu Python above that (session - floor)':46s} {now - floor:7.1f} ms")
    line = f"ratio session / unavoidable floor: {now / floor:.2f}x"
    if against:
        line += f"; session now / {against}: {now / medians[f'session ({against})']:.2f}x"
    print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs (under a minute)")
    ap.add_argument("--against", metavar="REV", help="also time the session of this git revision")
    args = ap.parse_args()
    runs = QUICK_RUNS if args.quick else args.runs
    work = Path(tempfile.mkdtemp(prefix="fleetcpu-host-bench-"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TMPDIR"] = str(work)
    worktree = None
    try:
        sessions = {NOW: session_of(REPO, work / "cache-now")}
        if args.against:
            worktree = work / "against"
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(worktree), args.against],
                check=True,
            )
            sessions[f"session ({args.against})"] = session_of(worktree, work / "cache-then")
        doc = json.loads(run_session(*sessions[NOW], env))
        if doc["status"] != "ok":
            raise SystemExit(f"the warm-up probe failed: {doc['error']}")
        parts, floor, answered = build_parts(doc, sessions, env)
        samples: dict[str, list[float]] = {k: [] for k in parts}
        for _ in range(runs):
            for label, part in parts.items():
                samples[label].append(cpu_of(part))
        report(doc, samples, floor, answered, args.against)
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=False
            )
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
