"""``transport=ssh`` with asyncssh: one connection and one session per host.

What it honours, and in which order a setting is taken:

* user: the inventory's (``ansible_user``/``user@``), else ``--user``, else
  ``ssh_config``'s ``User``, else the local user (``ssh -l`` semantics);
* port: the inventory's, else ``ssh_config``'s ``Port``, else 22;
* ``ssh_config`` (``~/.ssh/config``, or ``--ssh-config PATH``): HostName,
  IdentityFile, ProxyJump, ... as asyncssh supports them, except host-key
  settings (see ``hostkeys``);
* keys: ``-i KEY`` files (loaded once per run, a bad one is a usage error
  before any host is contacted) and the agent (``SSH_AUTH_SOCK``);
* timeouts: ``connect_timeout`` bounds TCP, key exchange and authentication
  of one attempt (asyncssh's connect_timeout); the login timeout is set to
  the same value, so no phase can wait longer; the command gets its own
  ``timeout`` in ``drive``;
* ciphers: AES-GCM is offered before chacha20-poly1305 (asyncssh's first
  choice), unless an ssh_config names ``Ciphers`` (or has an ``Include``, whose
  files we do not read), which then decides. Both are AEAD ciphers every OpenSSH since
  6.5 accepts; asyncssh runs chacha20-poly1305 as three Python-level
  cryptography calls per packet, AES-GCM as one, and the ~190 KB each host
  sends and receives made that ~1 ms of orchestrator CPU per host, a quarter
  of a bare SSH session's cost (``benchmarks/collect_bench.py``).

Errors from asyncssh and the socket layer are translated here, at the edge,
into ``HostFailure`` with a stage (connect, hostkey, auth) and whether a
retry can help. Nothing asyncssh-specific leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..vocabulary import Stage
from .asyncssh_import import asyncssh
from .hostkeys import HostKeyCheck, HostKeyPolicy, default_known_hosts, known_hosts_name
from .inventory import HostSpec
from .remote_run import HostFailure, RemoteRun
from .transport import drive

__all__ = ["SshSettings", "SshTransport", "preferred_ciphers"]

_GCM_FIRST = (b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com")


def preferred_ciphers() -> tuple[str, ...]:
    """asyncssh's default ciphers (those this build supports), AES-GCM moved to the front."""
    from asyncssh.encryption import get_default_encryption_algs

    defaults = list(get_default_encryption_algs())
    first = [alg for alg in _GCM_FIRST if alg in defaults]
    return tuple(alg.decode() for alg in first + [a for a in defaults if a not in first])


_TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.ECONNABORTED, errno.EPIPE}
)


@dataclass(frozen=True)
class SshSettings:
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    #: None: asyncssh's default (``~/.ssh/config`` when it exists).
    ssh_config: tuple[str, ...] | None = None
    #: Empty: OpenSSH's defaults (``~/.ssh/known_hosts``, ``/etc/ssh/ssh_known_hosts``).
    known_hosts: tuple[str, ...] = ()
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    #: Seconds a stopped probe gets to clean up and answer before the channel is closed.
    grace: float = 5.0


class _SshChannel:
    """asyncssh's client process behind ``transport.Channel``; asyncssh errors become ConnectionError."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self.process = process

    def write(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)
        except asyncssh.Error as exc:
            raise ConnectionError(str(exc)) from exc

    async def drain(self) -> None:
        try:
            await self.process.stdin.drain()
        except asyncssh.Error as exc:
            raise ConnectionError(str(exc)) from exc

    def close_stdin(self) -> None:
        self.process.stdin.write_eof()

    async def read_stdout(self) -> bytes:
        try:
            return await self.process.stdout.read(65536)
        except asyncssh.Error as exc:
            raise ConnectionError(
                exc.reason if isinstance(exc, asyncssh.DisconnectError) else str(exc)
            ) from exc

    async def read_stderr(self) -> bytes:
        try:
            return await self.process.stderr.read(65536)
        except asyncssh.Error as exc:
            raise ConnectionError(str(exc)) from exc

    async def wait(self) -> None:
        try:
            await self.process.wait_closed()
        except asyncssh.Error as exc:
            raise ConnectionError(str(exc)) from exc

    def exit(self) -> tuple[int | None, str | None]:
        signal = self.process.exit_signal
        if signal is not None:
            return None, signal[0]
        return self.process.exit_status, None

    def terminate(self) -> None:
        self.process.send_signal("TERM")

    def kill(self) -> None:
        # Closing the channel makes sshd close the command's pipes: the
        # bootstrap sees EOF and stops the probe even if the signal was lost.
        self.process.close()


def _load_keys(paths: Sequence[str]) -> list[asyncssh.SSHKeyPair]:
    keys: list[asyncssh.SSHKeyPair] = []
    for path in paths:
        try:
            keys += asyncssh.load_keypairs([str(Path(path).expanduser())])
        except (OSError, asyncssh.KeyImportError, ValueError) as exc:
            raise UsageError(f"-i {path}: cannot load this SSH key: {exc}") from exc
    return keys


def _config_chooses_ciphers(paths: Sequence[str] | None) -> bool:
    """Whether an ssh_config asyncssh will read may set ``Ciphers``: then it decides, not us.

    ``None`` is asyncssh's default, ``~/.ssh/config`` when it exists. An
    unreadable file or an ``Include`` counts as yes: when in doubt, the
    user's configuration wins over a speed preference.
    """
    files = [Path(p).expanduser() for p in paths] if paths is not None else [Path.home() / ".ssh" / "config"]
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace").lower()
        except FileNotFoundError:
            continue
        except OSError:
            return True
        for line in text.splitlines():
            word = line.strip().replace("=", " ").split(maxsplit=1)
            if word and word[0] in ("ciphers", "include"):
                return True
    return False


class SshTransport:
    name = "ssh"

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        files = [Path(p).expanduser() for p in settings.known_hosts] or default_known_hosts()
        self.hostkeys = HostKeyPolicy(files, accept_new=settings.accept_new_host_keys)
        self.client_keys = _load_keys(settings.identity_files) if settings.identity_files else None
        for path in settings.ssh_config or ():
            if not Path(path).expanduser().is_file():
                raise UsageError(f"--ssh-config {path}: no such file")
        #: known_hosts names whose key this run accepted (for the summary).
        self.accepted_keys: list[str] = []
        self.ciphers = None if _config_chooses_ciphers(settings.ssh_config) else preferred_ciphers()

    def _connect_kwargs(self, host: HostSpec, check: HostKeyCheck) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {
            "known_hosts": check.lookup,
            "client_factory": lambda: check,
            "connect_timeout": s.connect_timeout,
            "login_timeout": s.connect_timeout,
        }
        if host.port is not None:
            kwargs["port"] = host.port
        user = host.user or s.user
        if user is not None:
            kwargs["username"] = user
        if s.ssh_config is not None:
            kwargs["config"] = [str(Path(p).expanduser()) for p in s.ssh_config]
        if self.client_keys is not None:
            kwargs["client_keys"] = self.client_keys
        if self.ciphers is not None:
            kwargs["encryption_algs"] = self.ciphers
        return kwargs

    def _where(self, host: HostSpec) -> str:
        return known_hosts_name(host.address, host.port)

    async def _connect(self, host: HostSpec, check: HostKeyCheck) -> asyncssh.SSHClientConnection:
        where = self._where(host)
        timeout = self.settings.connect_timeout
        try:
            return await asyncssh.connect(host.address, **self._connect_kwargs(host, check))
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostFailure(
                Stage.HOSTKEY, check.refusal(exc.reason), code=f"hostkey-{check.verdict or 'refused'}"
            ) from exc
        except asyncssh.PermissionDenied as exc:
            user = host.user or self.settings.user or "(default user)"
            raise HostFailure(
                Stage.AUTH, f"authentication refused for {user} at {where}: {exc.reason}", code="auth"
            ) from exc
        except asyncssh.KeyExchangeFailed as exc:
            stage = Stage.HOSTKEY if "host key" in exc.reason.lower() else Stage.CONNECT
            raise HostFailure(stage, f"key exchange with {where} failed: {exc.reason}", code="kex") from exc
        except asyncssh.ConnectionLost as exc:
            raise HostFailure(
                Stage.CONNECT,
                f"{where} closed the connection during the SSH handshake "
                f"({exc.reason}; sshd's MaxStartups drops bursts like this)",
                transient=True,
                code="connection-lost",
            ) from exc
        except asyncssh.DisconnectError as exc:
            transient = exc.code in (asyncssh.DISC_TOO_MANY_CONNECTIONS, asyncssh.DISC_CONNECTION_LOST)
            raise HostFailure(
                Stage.CONNECT,
                f"{where} disconnected during the SSH handshake: {exc.reason}",
                transient=transient,
                code="disconnected",
            ) from exc
        except TimeoutError as exc:
            raise HostFailure(
                Stage.CONNECT,
                f"no SSH session with {where} within {timeout:g}s (--connect-timeout)",
                transient=True,
                code="connect-timeout",
            ) from exc
        except socket.gaierror as exc:
            raise HostFailure(
                Stage.CONNECT, f"cannot resolve {host.address}: {exc.strerror}", code="resolve"
            ) from exc
        except OSError as exc:
            transient = exc.errno in _TRANSIENT_ERRNOS
            # asyncio words a refused connect as "Connect call failed (addr, port)": say why.
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise HostFailure(
                Stage.CONNECT, f"cannot connect to {where}: {why}", transient=transient, code="connect"
            ) from exc
        except (asyncssh.Error, ValueError) as exc:
            # ValueError: asyncssh's verdict on a bad ssh_config or option for this host.
            raise HostFailure(
                Stage.CONNECT, f"cannot open an SSH session with {where}: {exc}", code="ssh"
            ) from exc

    async def run(self, host: HostSpec, command: str, stdin: bytes, timeout: float) -> RemoteRun:
        check = self.hostkeys.for_connection()
        conn = await self._connect(host, check)
        try:
            if check.verdict == "new" and check.offered is not None and check.looked_up:
                name, port = check.looked_up
                await self.hostkeys.remember(name, port, check.offered)
                self.accepted_keys.append(known_hosts_name(name, port))
            try:
                process = await conn.create_process(command, encoding=None)
            except (asyncssh.Error, OSError) as exc:
                raise HostFailure(
                    Stage.CONNECT,
                    f"{self._where(host)} refused a session: {exc}",
                    transient=True,
                    code="session",
                ) from exc
            return await drive(_SshChannel(process), stdin, timeout, self.settings.grace)
        finally:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2.0)

    async def aclose(self) -> None:
        return None
