"""Which QEMUs this test session started: identified positively, so no other QEMU is ever signalled.

Why positively: the old guard took any new QEMU whose parent was PID 1 for
one of ours, and on a machine where libvirtd ran guests (whose parent is PID
1) it SIGKILLed two of them. On a real KVM host that is a production guest.

A QEMU is the session's when any of these holds, and only then:
- it descends from this pytest process (the probe's and the tests' own launches);
- its environment carries ``FLEETCPU_TEST_SUITE=<this session's token>``: set in
  ``os.environ`` at start-up, so every child inherits it, and passed by the test
  sshd's ``SetEnv`` to its sessions (an orphan re-parented to init keeps it);
- its command line names a guest ``guest=fleetcpu-test-<token>-...`` (or
  ``-name fleetcpu-test-<token>-...``): QEMUs that a test's libvirtd starts lose
  the environment and get a session of their own, but keep the name the test gave.

The token is per session, so a second suite running on the same machine
(another checkout, CI beside a developer) never claims this one's QEMUs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ENV = "FLEETCPU_TEST_SUITE"
#: This session's token: inherited from a parent session's environment only if the
#: parent is this same suite (a test that runs the suite's own helpers in a child).
TOKEN = os.environ.get(ENV) or secrets.token_hex(6)
os.environ[ENV] = TOKEN
#: Name prefix for guests a test starts through a consumer (libvirtd) that drops the environment.
GUEST_PREFIX = f"fleetcpu-test-{TOKEN}-"


def qemu_pids() -> set[int]:
    """Every live process whose command line says qemu-system (real QEMUs and our fakes)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"qemu-system" in cmd and ") Z " not in stat:
            out.add(int(entry.name))
    return out


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _descends_from(pid: int, ancestor: int) -> bool:
    cur = pid
    for _ in range(64):
        cur = _ppid(cur)
        if cur == ancestor:
            return True
        if cur <= 1:
            return False
    return False


def _carries_token(pid: int) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # another user's process, or gone: not ours
        return False
    return f"{ENV}={TOKEN}".encode() in env.split(b"\0")


def _named_ours(pid: int) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    prefix = GUEST_PREFIX.encode()
    for i, arg in enumerate(args):
        if arg.startswith(b"guest=" + prefix) or (b",guest=" + prefix) in arg:
            return True
        if i and args[i - 1] == b"-name" and arg.startswith(prefix):
            return True
    return False


def ours(pids: set[int]) -> set[int]:
    """The subset of ``pids`` this session started (see the module's docstring)."""
    me = os.getpid()
    return {p for p in pids if _descends_from(p, me) or _carries_token(p) or _named_ours(p)}


def describe(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"pid {pid} (gone)"
