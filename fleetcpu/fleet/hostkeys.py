"""Host-key policy for a run: known_hosts read once, unknown keys refused unless TOFU, changed keys never.

Why read once: a 10,000-host run must not parse known_hosts 10,000 times,
and every connection of one run must judge keys against the same file
contents. ``asyncssh.read_known_hosts`` parses the files at start; each
connection gets a ``HostKeyCheck`` whose ``lookup`` is asyncssh's
``known_hosts`` callable and whose ``validate_host_public_key`` is called by
asyncssh only for a key that known_hosts does not trust.

Why ``ssh_config``'s ``StrictHostKeyChecking`` and ``UserKnownHostsFile`` are
not honoured: loosening host-key checks must be an explicit, visible flag on
the fleetcpu command line (``--accept-new-host-keys``), never a side effect of
a config file written for interactive use.

Trust on first use, done as asyncssh's contract requires: the validation
callback only says the key *may* be trusted; asyncssh then checks that the
server holds the private key (the key exchange signature). So a new key is
accepted for the connection in the callback, but written to known_hosts
only after the connection is fully established (``remember``), never for a
peer that merely presented someone's public key. A *changed* key (the host
has known keys, none matches) is refused whatever the flags, and the
fingerprint seen goes into the failure row.

A *revoked* key (``@revoked`` in known_hosts) is refused whatever the flags,
as OpenSSH does. asyncssh looks a host up with its port, then, finding no
trusted key, again without it, and keeps only the second answer's revoked
keys: ``@revoked [host]:port`` was dropped and the key then trusted on first
use. So each lookup also asks for the ``[host]:port`` entries alone, the
revoked keys of every lookup of a connection are kept and given back each
time, and the check refuses such a key itself too.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .asyncssh_import import asyncssh

__all__ = ["HostKeyCheck", "HostKeyPolicy", "default_known_hosts", "known_hosts_name"]


def default_known_hosts() -> list[Path]:
    """OpenSSH's defaults: the user's file (written by TOFU) and the system-wide one."""
    return [Path.home() / ".ssh" / "known_hosts", Path("/etc/ssh/ssh_known_hosts")]


def known_hosts_name(host: str, port: int | None) -> str:
    """The host field OpenSSH writes: ``host`` on port 22, else ``[host]:port``."""
    if port in (None, 22):
        return host
    return f"[{host}]:{port}"


def _fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


class HostKeyPolicy:
    """Everything the run knows about host keys; shared by all connections of the run."""

    def __init__(self, files: Sequence[Path], *, accept_new: bool, write_to: Path | None = None) -> None:
        self.files = [Path(f) for f in files]
        self.accept_new = accept_new
        #: TOFU appends here: the first file given, else the user's known_hosts.
        self.write_to = write_to or (self.files[0] if self.files else default_known_hosts()[0])
        self.known = asyncssh.SSHKnownHosts()
        self.read_files: list[Path] = []
        for path in self.files:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            self.known.load(text)
            self.read_files.append(path)
        #: Keys accepted during this run, by known_hosts name (so retries see them).
        self.accepted: dict[str, list[asyncssh.SSHKey]] = {}
        self._lock = asyncio.Lock()

    def for_connection(self) -> HostKeyCheck:
        return HostKeyCheck(self)

    def describe_files(self) -> str:
        return ", ".join(str(p) for p in self.files) or "(none)"

    async def remember(self, host: str, port: int | None, key: asyncssh.SSHKey) -> None:
        """Append a key proven during this run's key exchange; under a lock, with fcntl for other writers."""
        name = known_hosts_name(host, port)
        async with self._lock:
            if any(k == key for k in self.accepted.get(name, ())):
                return
            self.accepted.setdefault(name, []).append(key)
            algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
            line = f"{name} {algorithm} {blob}\n"
            await asyncio.to_thread(_append_locked, self.write_to, line)


def _append_locked(path: Path, line: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        prefix = b""
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    prefix = b"\n"
        os.write(fd, prefix + line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class HostKeyCheck(asyncssh.SSHClient):
    """One connection's view: what known_hosts said for this host, and what the server offered."""

    def __init__(self, policy: HostKeyPolicy) -> None:
        self.policy = policy
        self.known_keys: list[asyncssh.SSHKey] = []
        self.had_entries = False
        self.offered: asyncssh.SSHKey | None = None
        #: None (trusted), "new" (accepted by TOFU, to be remembered), "unknown", "changed",
        #: "revoked".
        self.verdict: str | None = None
        #: The first lookup's (host, port): what known_hosts names the host (with its port).
        self.looked_up: tuple[str, int | None] | None = None
        #: Revoked keys of every lookup of this connection (see the module docstring).
        self.revoked: list[asyncssh.SSHKey] = []

    def lookup(self, host: str, addr: str, port: int | None) -> tuple[Any, ...]:
        """asyncssh's known_hosts callable: the run's parsed files plus keys accepted this run."""
        if self.looked_up is None:
            self.looked_up = (host, port)
        result: list[Any] = list(self.policy.known.match(host, addr, port))
        revoked = list(result[2])
        if port:  # what match's portless retry dropped: the [host]:port entries themselves
            for name in dict.fromkeys(n for n in (host, addr) if n):
                revoked += self.policy.known.match(known_hosts_name(name, port), "", None)[2]
        self.revoked = list(dict.fromkeys([*self.revoked, *revoked]))
        result[2] = self.revoked
        extra = self.policy.accepted.get(known_hosts_name(host, port), [])
        # A key listed under both the host name and its address comes back twice: once is enough.
        self.known_keys = list(dict.fromkeys([*result[0], *extra]))
        result[0] = self.known_keys
        # CA keys and X.509 entries count as "this host is known" too.
        self.had_entries = any(bool(part) for i, part in enumerate(result) if i != 2)
        return tuple(result)

    def validate_host_public_key(
        self,
        host: str,  # noqa: ARG002
        addr: str,  # noqa: ARG002
        port: int,  # noqa: ARG002
        key: asyncssh.SSHKey,
    ) -> bool:
        """Called by asyncssh only for a key known_hosts does not trust (see the module docstring)."""
        self.offered = key
        if key in self.revoked:
            self.verdict = "revoked"
            return False
        if self.had_entries:
            self.verdict = "changed"
            return False
        if self.policy.accept_new:
            self.verdict = "new"
            return True
        self.verdict = "unknown"
        return False

    def refusal(self, fallback: str) -> str:
        """The failure message for a refused key, with the fingerprint the server showed."""
        host, port = self.looked_up or ("?", None)
        where = known_hosts_name(host, port)
        seen = _fingerprint(self.offered) if self.offered is not None else "no key seen"
        files = self.policy.describe_files()
        if self.verdict is None and "revoked" in fallback.lower():
            self.verdict = "revoked"  # asyncssh refused it before asking us
        if self.verdict == "revoked":
            if self.offered is None:  # refused by asyncssh: the key is one of these
                seen = "one of " + ", ".join(_fingerprint(k) for k in self.revoked)
            return (
                f"HOST KEY REVOKED for {where}: the server offered {seen}, which known_hosts "
                f"({files}) marks @revoked; refused whatever the flags"
            )
        if self.verdict == "changed":
            known = ", ".join(_fingerprint(k) for k in self.known_keys) or "a CA or certificate entry"
            return (
                f"HOST KEY CHANGED for {where}: the server offered {seen}, known_hosts "
                f"({files}) has {known}; refused (possible man-in-the-middle, or a "
                "reinstalled host: check it, then fix known_hosts)"
            )
        if self.verdict == "unknown":
            return (
                f"unknown host key for {where}: the server offered {seen}, not in known_hosts "
                f"({files}); refused (verify it, or rerun with --accept-new-host-keys)"
            )
        return f"host key for {where} not accepted ({fallback}); the server offered {seen}"
