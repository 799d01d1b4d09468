"""Replay hosts for tests: a real CPU's capture behind a wrapper, plus a synthetic host root.

``make_replay_host(tmp_path, "Xeon-Gold-6148", microcode="0x2000065")``
writes, under ``tmp_path/<hostname>/``:

* ``qemu-system-x86_64``: a shell wrapper that ``exec``\\ s ``replay_qemu.py``
  (with this interpreter, ``sys.executable``) on the chosen capture and log.
  Give it to the probe as ``--qemu-binary`` or to an inventory as ``qemu=``.
* ``root/``: a ``--host-root`` whose ``/proc/cpuinfo`` names the captured
  CPU with the microcode you chose, a hostname, a kernel release, the KVM
  vendor module with the nesting you chose, and the ``fleetcpu-synthetic``
  marker (``replay:<capture file>``) so no report mistakes these facts for a
  measured host. Microcode and nesting are facts only: the fake's answers
  come from the capture whatever you pass.
* ``qemu-system-x86_64.log``: what the fake was asked (JSON lines).

``catalogue()`` lists every capture usable as a host: each cputestdata CPU
with a ``.json`` (named by its file stem, ``Xeon-Gold-6148``) and each
``caps_*.replies`` conversation (``qemu-10.0-Ryzen-9-3900X``).
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

from fleetcpu.probe.qemu_process import launch_argv

from ...conftest import REALDATA
from . import capture as capmod

HERE = Path(__file__).resolve().parent
FAKE = HERE / "replay_qemu.py"
LIBVIRT = REALDATA / "libvirt"
CPUTESTDATA = LIBVIRT / "cputestdata"
CAPS = LIBVIRT / "qemucapabilitiesdata"
BINARY_NAME = "qemu-system-x86_64"
KVM_MODULES = {"GenuineIntel": "kvm_intel", "AuthenticAMD": "kvm_amd", "HygonGenuine": "kvm_amd"}


@dataclass(frozen=True)
class HostCapture:
    """One capture that can play a host: its catalogue name and its file."""

    name: str
    path: Path
    kind: str  # "cputest" | "replies"

    @property
    def label(self) -> str:
        return "replay:" + self.path.name

    def load(self) -> capmod.Capture:
        return _load(self.path)


@cache
def _load(path: Path) -> capmod.Capture:
    return capmod.load(path)


def _replies_name(path: Path) -> str:
    """``caps_10.0.0_x86_64.replies`` -> ``qemu-10.0-Ryzen-9-3900X`` (libvirt's file-naming rules)."""
    major, minor, _ = capmod.replies_version(path)
    ident = capmod.identity(capmod.load(path))
    name = re.sub(r"\(([Rr]|[Tt][Mm])\)", "", ident.model_name)
    name = re.sub(r".*(Intel|AMD) ", "", name)
    name = re.sub(r" (CPU|[Pp]rocessor)", "", name)
    name = re.sub(r" @.*", "", name)
    name = re.sub(r" \d+-Core", "", name)
    return f"qemu-{major}.{minor}-" + "-".join(name.split())


@cache
def catalogue() -> tuple[HostCapture, ...]:
    """Every capture usable as a replay host, cputestdata first, each name unique."""
    hosts = [
        HostCapture(p.name.removeprefix(capmod.CPUID_PREFIX).removesuffix(".json"), p, "cputest")
        for p in sorted(CPUTESTDATA.glob(capmod.CPUID_PREFIX + "*.json"))
    ]
    hosts += [HostCapture(_replies_name(p), p, "replies") for p in sorted(CAPS.glob("caps_*.replies"))]
    names = [h.name for h in hosts]
    assert len(set(names)) == len(names), f"catalogue names collide: {names}"
    return tuple(hosts)


def find_capture(name: str) -> HostCapture:
    for h in catalogue():
        if name in (h.name, h.path.name):
            return h
    raise KeyError(f"no replay capture named {name!r}; see catalogue()")


@dataclass(frozen=True)
class ReplayHost:
    """A replay host on disk: what the probe needs (binary, root) and what the fake logged."""

    capture: HostCapture
    directory: Path
    binary: Path
    root: Path
    log: Path
    hostname: str
    microcode: str
    nested: bool

    def probe_args(self) -> list[str]:
        return ["--qemu-binary", str(self.binary), "--host-root", str(self.root)]

    def log_entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def launches(self) -> list[list[str]]:
        """The argv of every process the wrapper started, ``-version`` runs included, in order."""
        return [e["argv"] for e in self.log_entries() if e["event"] == "start"]

    def qmp_log(self, pid: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.log_entries() if e["event"] == "qmp" and (pid is None or e["pid"] == pid)]

    def clear_log(self) -> None:
        self.log.unlink(missing_ok=True)


def _cpuinfo(ident: capmod.Identity, microcode: str) -> str:
    fields = [
        ("processor", "0"),
        ("vendor_id", ident.vendor),
        ("cpu family", str(ident.family)),
        ("model", str(ident.model)),
        ("model name", ident.model_name),
        ("stepping", str(ident.stepping)),
        ("microcode", microcode),
    ]
    return "".join(f"{k}\t: {v}\n" for k, v in fields) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_replay_host(
    tmp_dir: Path,
    capture_name: str,
    *,
    microcode: str = "0x1",
    nested: bool = False,
    hostname: str | None = None,
    kernel_release: str = "0.0.0-replay",
) -> ReplayHost:
    """Write a replay host for ``capture_name`` (a ``catalogue()`` name) under ``tmp_dir``.

    Two hosts of one capture need two hostnames (each gets its directory).
    """
    cap = find_capture(capture_name)
    int(microcode, 0)  # a microcode revision is a number; fail here, not in the probe
    hostname = hostname or "replay-" + re.sub(r"[^a-z0-9]+", "-", cap.name.lower()).strip("-")
    directory = Path(tmp_dir) / hostname
    if directory.exists():
        raise FileExistsError(f"{directory} exists: give the second host its own hostname")
    root = directory / "root"
    log = directory / (BINARY_NAME + ".log")
    ident = capmod.identity(cap.load())
    _write(root / "proc/cpuinfo", _cpuinfo(ident, microcode))
    _write(root / "proc/sys/kernel/hostname", hostname + "\n")
    _write(root / "proc/sys/kernel/osrelease", kernel_release + "\n")
    module = KVM_MODULES.get(ident.vendor, "kvm_intel")
    (root / "sys/module/kvm/parameters").mkdir(parents=True)
    _write(root / f"sys/module/{module}/parameters/nested", "Y\n" if nested else "N\n")
    _write(root / "fleetcpu-synthetic", cap.label + "\n")
    binary = directory / BINARY_NAME
    command = [
        sys.executable,
        "-E",
        "-s",
        "-S",
        str(FAKE),
        "--replay-capture",
        str(cap.path),
        "--replay-log",
        str(log),
    ]
    binary.write_text(
        "#!/bin/sh\n"
        f"# Replay host {hostname}: answers from {cap.path.name} (tests/support/replay/hosts.py).\n"
        f'exec {shlex.join(command)} --replay-as "$0" -- "$@"\n'
    )
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return ReplayHost(cap, directory, binary, root, log, hostname, microcode, nested)


# ---------------------------------------------------------------------------
# Driving the fake directly (what the probe does, minus the probe), for tests
# of QEMU-compatible behaviour the probe never exercises (enforce, errors).
# ---------------------------------------------------------------------------


class QmpConnection:
    """A tiny blocking QMP client: enough to read the greeting and send commands."""

    def __init__(self, sock: socket.socket, timeout: float = 10.0) -> None:
        sock.settimeout(timeout)
        self.sock = sock
        self.file: IO[bytes] = sock.makefile("rb")
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise EOFError("QMP connection closed")
        msg: dict[str, Any] = json.loads(line)
        return msg

    def command(self, execute: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command; return its raw reply (``return`` or ``error``), keeping events aside."""
        self._next += 1
        msg: dict[str, Any] = {"execute": execute, "id": f"t{self._next}"}
        if arguments is not None:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self.read()
            if "event" in reply:
                self.events.append(reply)
                continue
            return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class FakeRun:
    """One fake process started like the probe starts QEMU."""

    proc: subprocess.Popen[bytes]
    qmp: QmpConnection
    argv: list[str] = field(default_factory=list)

    def wait(self, timeout: float = 10.0) -> tuple[int, str]:
        """Exit status and stderr, once the process is gone."""
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode()

    def negotiate(self) -> dict[str, Any]:
        greeting = self.qmp.read()
        reply = self.qmp.command("qmp_capabilities")
        assert reply == {"return": {}, "id": "t1"}, reply
        return greeting


@contextmanager
def run_fake(
    host: ReplayHost,
    *,
    machine: str = "q35",
    accel: str = "kvm",
    cpu: str = "host",
    argv: list[str] | None = None,
) -> Iterator[FakeRun]:
    """Start the host's wrapper with the probe's exact argv (or ``argv`` after the binary).

    The process is killed and reaped on the way out, whatever happened.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        full = launch_argv(str(host.binary), machine, accel, cpu, theirs.fileno())
        if argv is not None:
            full = [str(host.binary), *argv]
        proc = subprocess.Popen(
            full,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        theirs.close()
    run = FakeRun(proc, QmpConnection(ours), full)
    try:
        yield run
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr is not None and not proc.stderr.closed:
            proc.communicate(timeout=10)
        proc.wait()
        run.qmp.close()
