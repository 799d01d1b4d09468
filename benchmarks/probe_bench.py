"""Probe cost against a stdlib-only reference doing the same QEMU work, measured in one run.

    python benchmarks/probe_bench.py [--runs 7] [--accel kvm|tcg|both]

Both sides are timed from exec to exit as fresh processes:
- probe: ``python -m fleetcpu.probe --accel A``;
- reference: this file's ``--reference`` mode, a minimal stdlib program that
  makes the same launches (failed fallback attempts included, learnt from a
  warm-up probe's ``attempts``) and asks the same QMP queries over a buffered
  socket, then quits. It has no typing, decoding, error handling or output.

Both run as on a host: the base interpreter (not this venv, whose editable
install adds an import finder) with only ``fleetcpu`` and ``qemu`` on
``PYTHONPATH``, the layout of the shipped bundle. Peak RSS is the Python
process's own VmHWM (sampled from /proc until exit), not QEMU's. Prints
medians and the probe/reference ratios (target <= 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

QUERIES_FIRST = ["query-version", "query-machines"]
VCPU_PROPS = ["feature-words", "filtered-features", "vendor", "family", "model", "stepping",
              "model-id", "level", "xlevel", "phys-bits"]


def reference(plan: list[list[str]]) -> None:
    """The reference program: same launches, same queries, nothing else."""
    subprocess.run([plan[0][0], "-version"], capture_output=True, check=False)
    first = True
    for binary, machine, accel, cpu in plan[1:]:
        ours, theirs = socket.socketpair()
        proc = subprocess.Popen(
            [binary, "-nodefaults", "-no-user-config", "-display", "none", "-S", "-m", "64",
             "-smp", "1", "-machine", machine, "-accel", accel, "-cpu", cpu,
             "-chardev", f"socket,id=qmp,fd={theirs.fileno()}", "-mon", "chardev=qmp,mode=control"],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        theirs.close()
        f = ours.makefile("rwb", buffering=65536)

        def cmd(name: str, args: dict[str, object] | None = None, f=f) -> object:
            msg: dict[str, object] = {"execute": name}
            if args:
                msg["arguments"] = args
            f.write(json.dumps(msg).encode() + b"\n")
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
            for q in (QUERIES_FIRST if first else []) + ["query-kvm"]:
                cmd(q)
            definitions = cmd("query-cpu-definitions")
            name, *props = cpu.split(",")
            model: dict[str, object] = {"name": name}
            if props:
                model["props"] = {p.split("=")[0]: p.split("=")[1] not in ("off", "false")
                                  for p in props}
            cmd("query-cpu-model-expansion", {"type": "static", "model": model})
            cmd("query-cpu-model-expansion", {"type": "full", "model": model})
            for d in definitions:  # type: ignore[attr-defined]
                # Like the probe: each usable, non-alias pool candidate's own features.
                if (not d.get("unavailable-features") and "alias-of" not in d
                        and d["name"] not in ("host", "max", "base")):
                    cmd("query-cpu-model-expansion",
                        {"type": "static", "model": {"name": d["name"]}})
            path = cmd("query-cpus-fast")[0]["qom-path"]  # type: ignore[index]
            for prop in VCPU_PROPS:
                cmd("qom-get", {"path": path, "property": prop})
            cmd("quit")
            first = False
        except (EOFError, OSError, ValueError):
            pass  # a failed variant, as in the probe's plan
        proc.wait()
        proc.stderr.read()  # type: ignore[union-attr]
        ours.close()


def measure(argv: list[str]) -> tuple[float, int, str]:
    """Wall seconds and peak RSS (KiB, VmHWM of the process itself) of one fresh process."""
    # Not a pipe: a 100 KB document would block the writer until we read it.
    with tempfile.TemporaryFile() as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL, cwd=REPO)
        hwm = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.002)
        wall = time.perf_counter() - started
        sink.seek(0)
        return wall, hwm, sink.read().decode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--accel", choices=["kvm", "tcg", "both"], default="both")
    ap.add_argument("--reference", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference:
        reference(json.loads(args.reference))
        return 0
    import qemu.qmp

    site = Path(tempfile.mkdtemp(prefix="fleetcpu-bench-"))
    (site / "fleetcpu").symlink_to(REPO / "fleetcpu")
    (site / "qemu").symlink_to(Path(qemu.qmp.__file__).parent.parent)
    os.environ["PYTHONPATH"] = str(site)
    python = getattr(sys, "_base_executable", sys.executable)
    accels = ["kvm", "tcg"] if args.accel == "both" else [args.accel]
    print(f"probe vs stdlib reference, median of {args.runs} runs, fresh processes, {os.uname().nodename}")
    worst = 0.0
    for accel in accels:
        probe_cmd = [python, "-m", "fleetcpu.probe", "--accel", accel]
        _, _, warm = measure(probe_cmd)
        doc = json.loads(warm)
        if doc["status"] != "ok":
            print(f"{accel}: probe failed ({doc['error']}); skipped")
            continue
        binary = doc["qemu"]["binary"]
        plan = [[binary]] + [[binary, a["machine_type"], a["accel"], a["cpu"]]
                             for a in doc["attempts"] if a["machine_type"]]
        ref_cmd = [python, __file__, "--reference", json.dumps(plan)]
        p_wall, p_rss, r_wall, r_rss = [], [], [], []
        for _ in range(args.runs):  # interleaved so drift hits both sides alike
            w, r, _ = measure(probe_cmd)
            p_wall.append(w)
            p_rss.append(r)
            w, r, _ = measure(ref_cmd)
            r_wall.append(w)
            r_rss.append(r)
        pw, rw = statistics.median(p_wall), statistics.median(r_wall)
        pr, rr = statistics.median(p_rss), statistics.median(r_rss)
        worst = max(worst, pw / rw)
        launches = len(plan) - 1
        print(f"{accel}: {launches} launch(es) + -version | wall probe {pw * 1000:.0f} ms, "
              f"reference {rw * 1000:.0f} ms, ratio {pw / rw:.2f}x | peak RSS probe "
              f"{pr / 1024:.1f} MiB, reference {rr / 1024:.1f} MiB, ratio {pr / rr:.2f}x")
    print(f"worst wall ratio {worst:.2f}x (target <= 1.5x)")
    for link in site.iterdir():
        link.unlink()
    site.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
