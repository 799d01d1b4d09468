#!/usr/bin/env python3
"""Regenerate the demo fleet in examples/: fleetcpu's own probe, run against replays of real CPUs.

    .venv/bin/python scripts/gen_examples.py            # rewrites examples/intel/*.json, examples/amd/*.json
    .venv/bin/python scripts/gen_examples.py -o DIR     # writes DIR/intel, DIR/amd instead

Why replays: a newcomer has no Skylake, Cascade Lake, Broadwell and EPYC at
hand, but libvirt's test suite captured what QEMU answered on such hosts
(../shared/realdata, or $FLEETCPU_REALDATA). Each demo host is the real
``fleetcpu probe`` (this checkout's, run as ``python -m fleetcpu probe``)
talking QMP to the suite's stand-in QEMU, ``tests/support/replay/replay_qemu.py``,
which answers from one capture. The stand-in runs as a program, the way the
probe starts any QEMU; nothing here imports the test suite.

Every document is what the probe printed, with one change: the stand-in
lives in a fresh temporary directory, whose random name (in ``qemu.binary``
and each attempt's argv) is replaced by ``/tmp/fleetcpu-examples``, so that
regenerating changes only what really changes (times, durations). The host
facts are synthetic and say so: a host root whose ``fleetcpu-synthetic``
marker names the capture, a kernel release ``0.0.0-replay``, no microcode
(the captures have none), and the CPU identity (vendor, family, model,
stepping, name) read from a first probe's own expansion of ``host``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
FAKE = CHECKOUT / "tests" / "support" / "replay" / "replay_qemu.py"
BINARY = "qemu-system-x86_64"
STABLE_DIR = "/tmp/fleetcpu-examples"  # noqa: S108 (a label in the documents, never used)
KVM_MODULES = {"GenuineIntel": "kvm_intel", "AuthenticAMD": "kvm_amd"}


@dataclass(frozen=True)
class DemoHost:
    pool: str
    name: str
    capture: str  # a file in libvirt/cputestdata
    why: str


#: Two pools of real CPUs. In `intel`, one Broadwell holds back three
#: AVX-512 machines (Skylake-SP, Cascade Lake): the big gain `blockers` finds.
FLEET = (
    DemoHost("intel", "intel-01", "x86_64-cpuid-Xeon-Gold-6130.json", "Skylake-SP"),
    DemoHost("intel", "intel-02", "x86_64-cpuid-Xeon-Platinum-8268.json", "Cascade Lake"),
    DemoHost("intel", "intel-03", "x86_64-cpuid-Xeon-Platinum-9242.json", "Cascade Lake-AP"),
    DemoHost(
        "intel",
        "intel-04",
        "x86_64-cpuid-Xeon-E5-2650-v4.json",
        "Broadwell: no AVX-512, the host that blocks the big gain",
    ),
    DemoHost("amd", "amd-01", "x86_64-cpuid-EPYC-7601-32-Core-ibpb.json", "EPYC 7601 (Zen)"),
    DemoHost("amd", "amd-02", "x86_64-cpuid-EPYC-7601-32-Core-ibpb.json", "EPYC 7601 (Zen)"),
    DemoHost("amd", "amd-03", "x86_64-cpuid-Ryzen-9-3900X-12-Core.json", "Ryzen 9 3900X (Zen 2)"),
    # Not imported by the tour: the host `fleetcpu check` asks about.
    DemoHost(
        "candidates", "intel-05", "x86_64-cpuid-Xeon-E5-2609-v3.json", "Haswell: would lower pool intel"
    ),
)


def realdata() -> Path:
    """Where the captures are: $FLEETCPU_REALDATA, else ../shared/realdata beside the checkout."""
    env = os.environ.get("FLEETCPU_REALDATA")
    return Path(env) if env else CHECKOUT.parent / "shared" / "realdata"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_host(work: Path, host: DemoHost, capture: Path, cpu: dict[str, object] | None) -> None:
    """The stand-in's wrapper and a synthetic host root under ``work/replay/<name>``."""
    directory = work / "replay" / host.name
    root = directory / "root"
    write(root / "proc/sys/kernel/hostname", host.name + "\n")
    write(root / "proc/sys/kernel/osrelease", "0.0.0-replay\n")
    write(root / "fleetcpu-synthetic", f"replay:{capture.name}\n")
    if cpu is not None:
        fields = [
            ("processor", 0),
            ("vendor_id", cpu["vendor"]),
            ("cpu family", cpu["family"]),
            ("model", cpu["model"]),
            ("model name", str(cpu["model-id"]).strip()),
            ("stepping", cpu["stepping"]),
        ]
        write(root / "proc/cpuinfo", "".join(f"{k}\t: {v}\n" for k, v in fields) + "\n")
        module = KVM_MODULES.get(str(cpu["vendor"]), "kvm_intel")
        (root / "sys/module/kvm/parameters").mkdir(parents=True, exist_ok=True)
        write(root / f"sys/module/{module}/parameters/nested", "N\n")
    command = [sys.executable, "-E", "-s", "-S", str(FAKE), "--replay-capture", str(capture)]
    wrapper = directory / BINARY
    write(
        wrapper,
        "#!/bin/sh\n"
        f"# Demo host {host.name} ({host.why}): answers from {capture.name}.\n"
        f'exec {shlex.join(command)} --replay-as "$0" -- "$@"\n',
    )
    wrapper.chmod(0o755)


def probe(work: Path, host: DemoHost) -> str:
    """Run fleetcpu's probe on the demo host; its JSON document, temporary path replaced."""
    directory = work / "replay" / host.name
    argv = [
        sys.executable,
        "-m",
        "fleetcpu",
        "probe",
        "--qemu-binary",
        str(directory / BINARY),
        "--host-root",
        str(directory / "root"),
        "--indent",
        "1",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(
            f"gen_examples: the probe of {host.name} exited {done.returncode}: "
            f"{done.stderr.strip() or done.stdout[-400:]}"
        )
    return done.stdout.replace(str(work), STABLE_DIR)


def generate(out: Path) -> list[Path]:
    cputestdata = realdata() / "libvirt" / "cputestdata"
    if not cputestdata.is_dir():
        sys.exit(f"gen_examples: {cputestdata} is missing: set FLEETCPU_REALDATA (see README.md)")
    written = []
    with tempfile.TemporaryDirectory(prefix="fleetcpu-examples-") as tmp:
        for i, host in enumerate(FLEET):
            capture = cputestdata / host.capture
            first = Path(tmp) / f"identity-{i}"
            make_host(first, host, capture, None)
            doc = json.loads(probe(first, host))
            props = doc["machine_types"][0]["full_expansion"]["props"]
            work = Path(tmp) / f"host-{i}"
            make_host(work, host, capture, props)
            text = probe(work, host)
            target = out / host.pool / f"{host.name}.json"
            write(target, text)
            written.append(target)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=CHECKOUT / "examples",
        help="directory for intel/ and amd/ (default: examples/)",
    )
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
