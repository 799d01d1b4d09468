"""Probe cost against a stdlib-only reference doing the same QEMU work, measured in one run.

    python benchmarks/probe_bench.py [--runs 9] [--accel kvm|tcg|both] [--quick] [--no-bytecode]

Both sides are timed from exec to exit as fresh processes, interleaved:
- probe: ``python -m fleetcpu.probe --accel A``;
- reference: ``python -m probe_reference PLAN``, a minimal stdlib program
  (``REFERENCE`` below: json, socket, subprocess, sys) that makes the same
  launches (failed fallback attempts included, learnt from a warm-up probe's
  ``attempts``) and asks the same QMP queries over a buffered socket, one at
  a time, then quits. It has no typing, decoding, error handling or output.

Both run as on a host: the base interpreter (not this venv, whose editable
install adds an import finder) with only a private directory on
``PYTHONPATH`` holding what the probe bundle holds (``fleetcpu/__init__.py``,
``errors.py``, ``vocabulary.py``, ``probe/*.py``, ``qemu/qmp/*.py``) and the reference module.
That directory is byte-compiled once, as ``pip install`` does, so neither
side's time depends on whether this checkout happens to hold ``.pyc`` files
or ``PYTHONDONTWRITEBYTECODE`` is set. ``--no-bytecode`` compiles both from
source at every run instead, which is what a host importing the bundle from
memory does.

Peak RSS is the Python process's own VmHWM (sampled from /proc until exit),
not QEMU's. CPU is user+system time of the process and the QEMUs it reaped:
on a busy machine, with no core free for QEMU to boot on while the probe
imports, the wall ratio tends to the CPU ratio. Prints medians per
accelerator, then the probe/reference wall ratios last (target <= 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUICK_RUNS = 5

REFERENCE = '''\
"""The reference: the probe's launches and queries, nothing else (see benchmarks/probe_bench.py)."""
import json
import socket
import subprocess
import sys

VCPU_PROPS = ["feature-words", "filtered-features", "vendor", "family", "model", "stepping",
              "model-id", "level", "xlevel", "phys-bits"]


def main(plan):
    first = True
    for binary, machine, accel, cpu in plan:
        ours, theirs = socket.socketpair()
        proc = subprocess.Popen(
            [binary, "-nodefaults", "-no-user-config", "-display", "none", "-S", "-m", "64",
             "-smp", "1", "-machine", machine, "-accel", accel, "-cpu", cpu,
             "-chardev", "socket,id=qmp,fd=%d" % theirs.fileno(),
             "-mon", "chardev=qmp,mode=control"],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        theirs.close()
        f = ours.makefile("rwb", buffering=65536)

        def cmd(name, args=None, f=f):
            msg = {"execute": name}
            if args:
                msg["arguments"] = args
            f.write(json.dumps(msg).encode() + b"\\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise EOFError
                reply = json.loads(line)
                if "return" in reply or "error" in reply:
                    return reply.get("return")

        try:
            f.readline()  # the greeting; EOF shows up as a JSON error below
            cmd("qmp_capabilities")
            for q in (["query-version", "query-machines"] if first else []) + ["query-kvm"]:
                cmd(q)
            definitions = cmd("query-cpu-definitions")
            name, *props = cpu.split(",")
            model = {"name": name}
            if props:
                model["props"] = {p.split("=")[0]: p.split("=")[1] not in ("off", "false")
                                  for p in props}
            cmd("query-cpu-model-expansion", {"type": "static", "model": model})
            cmd("query-cpu-model-expansion", {"type": "full", "model": model})
            for d in definitions:
                # Like the probe: each usable, non-alias pool candidate's own features.
                if (not d.get("unavailable-features") and "alias-of" not in d
                        and d["name"] not in ("host", "max", "base")):
                    cmd("query-cpu-model-expansion",
                        {"type": "static", "model": {"name": d["name"]}})
            path = cmd("query-cpus-fast")[0]["qom-path"]
            for prop in VCPU_PROPS:
                cmd("qom-get", {"path": path, "property": prop})
            cmd("quit")
            first = False
        except (EOFError, OSError, ValueError):
            pass  # a failed variant, as in the probe's plan
        proc.wait()
        proc.stderr.read()
        ours.close()


main(json.loads(sys.argv[1]))
'''


def make_site(python: str, bytecode: bool) -> Path:
    """A private import directory with the probe bundle's files and the reference module."""
    import qemu.qmp

    site = Path(tempfile.mkdtemp(prefix="fleetcpu-bench-"))
    (site / "fleetcpu" / "probe").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "vocabulary.py"):
        shutil.copy(REPO / "fleetcpu" / name, site / "fleetcpu" / name)
    for src in (REPO / "fleetcpu" / "probe").glob("*.py"):
        shutil.copy(src, site / "fleetcpu" / "probe" / src.name)
    qmp = site / "qemu" / "qmp"
    qmp.mkdir(parents=True)
    for src in Path(qemu.qmp.__file__).parent.glob("*.py"):
        shutil.copy(src, qmp / src.name)
    (site / "probe_reference.py").write_text(REFERENCE)
    if bytecode:
        subprocess.run([python, "-m", "compileall", "-q", str(site)], check=True)
    return site


def measure(argv: list[str], cwd: Path) -> tuple[float, int, float, str]:
    """Wall seconds, peak RSS (KiB, VmHWM of the process itself), CPU seconds
    (the process and the children it reaped) and stdout of one fresh process.

    ``cwd``: the private site. ``python -m`` puts the working directory first
    on ``sys.path``: run from the checkout, the probe imported the checkout's
    ``fleetcpu`` (with whatever ``.pyc`` files it holds, stale ones compiled
    again at every run) instead of the site's.
    """
    # Not a pipe: a 100 KB document would block the writer until we read it.
    with tempfile.TemporaryFile() as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL, cwd=cwd)
        hwm = 0
        status = Path(f"/proc/{proc.pid}/status")
        while True:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass
            pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
        proc.returncode = 0  # reaped above; keeps Popen from waiting again
        sink.seek(0)
        return wall, hwm, usage.ru_utime + usage.ru_stime, sink.read().decode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--accel", choices=["kvm", "tcg", "both"], default="both")
    ap.add_argument(
        "--quick", action="store_true", help=f"{QUICK_RUNS} runs per side and accelerator (under a minute)"
    )
    ap.add_argument(
        "--no-bytecode",
        action="store_true",
        help="compile both sides from source at every run, as a host running the bundle from memory does",
    )
    args = ap.parse_args()
    runs = QUICK_RUNS if args.quick else args.runs
    python = getattr(sys, "_base_executable", sys.executable)
    site = make_site(python, bytecode=not args.no_bytecode)
    os.environ["PYTHONPATH"] = str(site)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # the site stays as built
    accels = ["kvm", "tcg"] if args.accel == "both" else [args.accel]
    mode = "compiled at every run" if args.no_bytecode else "bytecode cached"
    print(
        f"probe vs stdlib reference, median of {runs} interleaved runs, fresh processes "
        f"({mode}), {os.uname().nodename}, {os.cpu_count()} CPUs"
    )
    ratios: dict[str, float] = {}
    try:
        for accel in accels:
            probe_cmd = [python, "-m", "fleetcpu.probe", "--accel", accel]
            _, _, _, warm = measure(probe_cmd, site)
            doc = json.loads(warm)
            if doc["status"] != "ok":
                print(f"{accel}: probe failed ({doc['error']}); skipped")
                continue
            binary = doc["qemu"]["binary"]
            # The probe's launches: a working probe runs no -version (the greeting proves QEMU).
            plan = [
                [binary, a["machine_type"], a["accel"], a["cpu"]]
                for a in doc["attempts"]
                if a["machine_type"]
            ]
            ref_cmd = [python, "-m", "probe_reference", json.dumps(plan)]
            measure(ref_cmd, site)  # warm-up, like the probe's
            probe, ref = [], []
            for _ in range(runs):  # interleaved so drift hits both sides alike
                probe.append(measure(probe_cmd, site)[:3])
                ref.append(measure(ref_cmd, site)[:3])
            pw, pr, pc = (statistics.median(x[i] for x in probe) for i in range(3))
            rw, rr, rc = (statistics.median(x[i] for x in ref) for i in range(3))
            ratios[accel] = pw / rw
            print(
                f"{accel}: {len(plan)} launch(es) | wall probe {pw * 1000:.0f} ms, "
                f"reference {rw * 1000:.0f} ms | CPU probe {pc * 1000:.0f} ms, reference "
                f"{rc * 1000:.0f} ms, ratio {pc / rc:.2f}x | peak RSS probe {pr / 1024:.1f} MiB, "
                f"reference {rr / 1024:.1f} MiB, ratio {pr / rr:.2f}x"
            )
    finally:
        shutil.rmtree(site, ignore_errors=True)
    print(
        "wall ratio probe/reference: "
        + ", ".join(f"{accel} {r:.2f}x" for accel, r in ratios.items())
        + f" (target <= 1.5x){'' if all(r <= 1.5 for r in ratios.values()) else '  MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
