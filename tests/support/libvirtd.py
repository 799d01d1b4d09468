"""A private libvirtd for tests: Debian's daemon and QEMU driver, started and stopped by its PID.

Why private: started as root, libvirtd's QEMU driver keeps its state in
``/run/libvirt``, ``/var/lib/libvirt``, ``/var/cache/libvirt`` and
``/var/log/libvirt``, shared with any system libvirtd. So it runs in a
mount namespace of its own (``unshare -m``, private propagation): a tmpfs
over ``/run``, the test's own ``var/`` over ``/var``, its own
``/etc/libvirt`` (``libvirtd.conf``, ``qemu.conf``) and its own
``/etc/passwd``/``/etc/group``. Nothing outside the namespace sees any of it;
the socket is in the test's directory, so ``virsh -c`` reaches it from outside.

Why the passwd copy: libvirt 9.0 resolves its built-in QEMU user
(``libvirt-qemu``, made by ``libvirt-daemon-system``, which the suite does not
install because it starts a service) before it reads ``qemu.conf``'s ``user``.
The copy adds that user inside the namespace only; guests run as root
(``user = "root"``), with no security driver, cgroups or per-guest namespace,
and their stdio go to files, so neither virtlogd nor virtlockd is needed.

Guests are transient (``virsh create``) and paused, named with the suite's
``qemuguard.GUEST_PREFIX`` so the QEMU leak guard recognises them (their
QEMUs descend from libvirtd, not pytest); ``stop`` destroys every guest of
this private daemon first (a QEMU outlives its libvirtd), then sends
SIGTERM to the daemon's own PID (``unshare`` and ``sh`` ``exec`` into it),
then SIGKILL if it has not gone within 10 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LIBVIRTD = "/usr/sbin/libvirtd"
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
stdio_handler = "file"
"""
#: Mounts, then exec: the PID Popen returns becomes libvirtd's own.
SCRIPT = """\
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/libvirt /run/lock
mount --bind "$D/var" /var
mount --bind "$D/etc" /etc/libvirt
mount --bind "$D/passwd" /etc/passwd
mount --bind "$D/group" /etc/group
exec "$@"
"""


def available() -> str | None:
    """Why a private libvirtd cannot run here, or None when it can."""
    if shutil.which("unshare") is None or not os.path.exists(LIBVIRTD):
        return f"{LIBVIRTD} or unshare missing: scripts/setup.sh --dev installs them"
    if os.geteuid() != 0:
        return "the private libvirtd needs root (mount namespace, /dev/kvm, QEMU as root)"
    return None


@dataclass
class Libvirtd:
    """A running private libvirtd: its PID, URI and log."""

    proc: subprocess.Popen[bytes]
    uri: str
    log: Path

    def virsh(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["virsh", "-q", "-c", self.uri, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def guests(self) -> list[str]:
        res = self.virsh("list", "--all", "--name")
        return [n for n in res.stdout.split() if n]

    def stop(self) -> None:
        if self.proc.poll() is None:
            for name in self.guests():  # the daemon is private: every guest is ours
                self.virsh("destroy", name)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _prepare(root: Path) -> Path:
    etc = root / "etc"
    for sub in ("etc", "sock", "var/lib/libvirt", "var/cache/libvirt", "var/log/libvirt"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "var/run").symlink_to("/run")
    (root / "var/lock").symlink_to("/run/lock")
    conf = etc / "libvirtd.conf"
    conf.write_text(
        f'unix_sock_dir = "{root / "sock"}"\nunix_sock_rw_perms = "0700"\n'
        'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
    )
    (etc / "qemu.conf").write_text(QEMU_CONF)
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    if "\nlibvirt-qemu:" not in "\n" + passwd:
        passwd += "libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n"
    if "\nlibvirt-qemu:" not in "\n" + group:
        group += "libvirt-qemu:x:64055:\n"
    (root / "passwd").write_text(passwd)
    (root / "group").write_text(group)
    return conf


@contextmanager
def running(root: Path) -> Iterator[Libvirtd]:
    """Start a private libvirtd under ``root`` (a short path: the socket lives there)."""
    conf = _prepare(root)
    log = root / "libvirtd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                SCRIPT,
                "sh",
                LIBVIRTD,
                "--config",
                str(conf),
            ],
            env={**os.environ, "D": str(root)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    daemon = Libvirtd(proc, f"qemu:///system?socket={root / 'sock' / 'libvirt-sock'}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"libvirtd exited {proc.returncode}: {log.read_text()}")
            if (root / "sock" / "libvirt-sock").exists() and daemon.virsh("version").returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"libvirtd did not answer in 30 s: {log.read_text()}")
            time.sleep(0.1)
        yield daemon
    finally:
        daemon.stop()
