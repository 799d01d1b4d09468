"""SSH on the test machine: real OpenSSH sshd hosts, and a fleet of asyncssh servers acting out hosts.

``SshdFleet``: one real ``sshd`` per fake host on 127.0.0.2, .3, ... (a free
port each), with throwaway host keys, a throwaway client key, an
``authorized_keys`` and a ``known_hosts`` file, all under a temporary
directory. Each sshd gives its sessions a private ``TMPDIR`` (``SetEnv``), so
whatever a probe leaves behind, and every process a session leaves running,
is attributable to the test (``leftovers``). This is the end-to-end path: the
real ``fleetcpu collect`` talks to the real sshd, which runs the real probe
under the user's real login shell.

``FakeFleet``: hundreds of ``asyncssh.listen`` servers on 127.0.x.y, served
by one event loop in a background thread (so the collector can run in the
test process or as a subprocess). Each server's ``process_factory`` acts out
the host side of the protocol: it checks the command line has the shape
``exec PYTHON -E -s -c BOOTSTRAP ARGS`` with our bootstrap, reads and
verifies the bundle from stdin, waits a little and prints the canned probe
document (``tests/golden/probe-kvm-q35.json``), or acts out a fault. It
records the peak number of simultaneous sessions, sessions still open
(leftovers), connections per host and the probe arguments each host got.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetcpu.fleet import bootstrap_host
from fleetcpu.fleet.bootstrap import host_script
from fleetcpu.speed import PLAIN_ENV

from ..conftest import REPO
from . import qemuguard

GOLDEN = REPO / "tests" / "golden" / "probe-kvm-q35.json"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"

# Fault names understood by FakeFleet.
FAULTS = (
    "ok",
    "garbage",
    "truncated",
    "hang",
    "hang-hard",
    "old-python",
    "exit127",
    "disconnect",
    "killed",
    "auth-fail",
    "bad-upload",
    "linger",
)


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def closed_port(address: str) -> int:
    """A port nothing listens on (bound and released): connecting is refused at once."""
    return free_port(address)


def keygen(path: Path, comment: str = "fleetcpu-test") -> str:
    """A throwaway ed25519 key pair; returns the public key line."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return (path.parent / (path.name + ".pub")).read_text().strip()


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    algorithm, blob = public_key.split()[:2]
    return f"[{address}]:{port} {algorithm} {blob}"


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"sshd on {address}:{port} exited at start: {err}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((address, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"sshd on {address}:{port} did not listen within {timeout}s")


def processes_with_env(marks: set[bytes]) -> list[str]:
    """Live processes whose environment holds one of ``marks`` (``TMPDIR=...``): a test's own."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = set((entry / "environ").read_bytes().split(b"\0"))
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:200]
        except OSError:
            continue
        if env & marks and ") Z " not in stat:
            found.append(f"{entry.name}: {cmd.decode(errors='replace')}")
    return found


def wait_no_processes(marks: set[bytes], timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_with_env(marks)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def latest_rows(store_dir: Path) -> dict[str, dict[str, object]]:
    """The ``hosts`` rows of the store's newest run, by host."""
    from fleetcpu.store import Store

    store = Store.open(store_dir)
    run = store.runs()[-1].run_id
    return {str(r["host"]): r for r in store.table("hosts", runs=[run]).to_pylist()}


def probe_killer_qemu(directory: Path) -> str:
    """Answers ``-version`` like QEMU, then SIGKILLs the probe that launched it: a probe killed midway."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "qemu-system-x86_64"
    path.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-version" ]; then echo "QEMU emulator version 7.2.22 (fake)"; exit 0; fi\n'
        "kill -9 $PPID\nexit 1\n"
    )
    path.chmod(0o755)
    return str(path)


def garbage_python(directory: Path) -> str:
    """A ``python=`` that prints garbage instead of running anything."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "python3"
    path.write_text("#!/bin/sh\nprintf '\\211PNG <html>Segmentation fault</html>\\n'\nexit 0\n")
    path.chmod(0o755)
    return str(path)


# ----------------------------------------------------------------- real sshd


@dataclass
class SshdHost:
    name: str
    address: str
    port: int
    directory: Path
    tmpdir: Path
    host_public_key: str
    proc: subprocess.Popen[bytes]

    def known_hosts_line(self) -> str:
        return known_hosts_line(self.address, self.port, self.host_public_key)


@dataclass
class SshdFleet:
    root: Path
    client_key: Path
    other_key: Path
    hosts: list[SshdHost] = field(default_factory=list)
    empty_config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.empty_config = self.root / "ssh_config"
        self.empty_config.write_text("")

    def host(self, name: str) -> SshdHost:
        return next(h for h in self.hosts if h.name == name)

    def write_known_hosts(self, path: Path, *, omit: Iterable[str] = (), wrong: Iterable[str] = ()) -> Path:
        """known_hosts for the fleet; ``omit``: hosts left out, ``wrong``: hosts given another key."""
        omit, wrong = set(omit), set(wrong)
        lines = []
        for h in self.hosts:
            if h.name in omit:
                continue
            key = h.host_public_key
            if h.name in wrong:
                impostor = self.root / f"impostor-{h.name}"
                key = (
                    keygen(impostor)
                    if not impostor.exists()
                    else (self.root / f"impostor-{h.name}.pub").read_text().strip()
                )
            lines.append(known_hosts_line(h.address, h.port, key))
        path.write_text("\n".join(lines) + "\n")
        return path

    def cli_args(self, known_hosts: Path) -> list[str]:
        return [
            "-i",
            str(self.client_key),
            "--ssh-config",
            str(self.empty_config),
            "--known-hosts",
            str(known_hosts),
        ]

    def leftover_files(self) -> list[str]:
        return sorted(str(p) for h in self.hosts for p in h.tmpdir.iterdir())

    def leftover_processes(self) -> list[str]:
        """Live processes started by a session of these sshds (they carry our TMPDIR)."""
        return processes_with_env({f"TMPDIR={h.tmpdir}".encode() for h in self.hosts})

    def wait_no_leftovers(self, timeout: float = 5.0) -> tuple[list[str], list[str]]:
        deadline = time.monotonic() + timeout
        while True:
            procs, files = self.leftover_processes(), self.leftover_files()
            if (not procs and not files) or time.monotonic() > deadline:
                return procs, files
            time.sleep(0.05)

    def stop(self) -> None:
        for h in self.hosts:
            if h.proc.poll() is None:
                h.proc.terminate()
        for h in self.hosts:
            try:
                h.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                h.proc.kill()
                h.proc.wait()
            if h.proc.stderr is not None:
                h.proc.stderr.close()


def start_sshd_fleet(
    root: Path,
    names: list[str],
    *,
    unauthorized: Iterable[str] = (),
    first: int = 2,
    setenv: str = "",
    extra_config: str = "",
) -> SshdFleet:
    """One sshd per name on 127.0.0.<first>, <first+1>, ...; ``unauthorized`` hosts refuse the client key.

    ``setenv``: more ``NAME=VALUE`` for every session (sshd reads one ``SetEnv`` line only);
    ``extra_config``: more sshd_config lines for every host (a benchmark's host variant).
    """
    if os.geteuid() != 0:
        raise RuntimeError("the sshd fixture needs root (sshd must switch to the session user)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # Debian's privilege-separation directory
    root.mkdir(parents=True, exist_ok=True)
    client_key = root / "client_ed25519"
    client_pub = keygen(client_key, "fleetcpu-test-client")
    other_key = root / "other_ed25519"
    other_pub = keygen(other_key, "fleetcpu-test-other")
    fleet = SshdFleet(root, client_key, other_key)
    unauthorized = set(unauthorized)
    try:
        for i, name in enumerate(names):
            address = f"127.0.0.{first + i}"
            port = free_port(address)
            d = root / name
            tmpdir = d / "tmp"
            tmpdir.mkdir(parents=True)
            host_pub = keygen(d / "ssh_host_ed25519_key", f"host-{name}")
            auth = d / "authorized_keys"
            auth.write_text((other_pub if name in unauthorized else client_pub) + "\n")
            config = d / "sshd_config"
            config.write_text(
                f"ListenAddress {address}:{port}\n"
                f"HostKey {d / 'ssh_host_ed25519_key'}\n"
                f"PidFile {d / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {auth}\n"
                "StrictModes no\n"
                "UsePAM no\n"
                "PermitRootLogin yes\n"
                "PasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\n"
                "PubkeyAuthentication yes\n"
                "UseDNS no\n"
                "PrintMotd no\n"
                "LogLevel ERROR\n"
                f"SetEnv TMPDIR={tmpdir} {qemuguard.ENV}={qemuguard.TOKEN} {setenv}\n" + extra_config
            )
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            fleet.hosts.append(SshdHost(name, address, port, d, tmpdir, host_pub, proc))
        for h in fleet.hosts:
            _wait_listening(h.address, h.port, h.proc, 10.0)
    except BaseException:
        fleet.stop()
        raise
    return fleet


# ----------------------------------------------------------------- asyncssh fleet


@dataclass
class FakeHost:
    name: str
    address: str
    port: int = 0
    key: asyncssh.SSHKey | None = None
    fault: str = "ok"
    #: Connections to abort at once (before the SSH banner), as sshd's MaxStartups does.
    resets: int = 0
    connections: int = 0
    aborted: int = 0


class _FakeServer(asyncssh.SSHServer):
    def __init__(self, fleet: FakeFleet, host: FakeHost) -> None:
        self.fleet = fleet
        self.host = host

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.host.connections += 1
        if self.host.aborted < self.host.resets:
            self.host.aborted += 1
            conn.abort()

    def begin_auth(self, username: str) -> bool:  # noqa: ARG002 - asyncssh's signature
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:  # noqa: ARG002
        return self.host.fault != "auth-fail" and key == self.fleet.client_public


class FakeFleet:
    """``count`` asyncssh servers acting out hosts; start() / stop() around the tests using it."""

    def __init__(self, root: Path, count: int, *, delay: float = 0.15, net: int = 1) -> None:
        self.root = root
        self.delay = delay
        #: Bytes of stderr each "noisy" host prints.
        self.noise = 64 * 1024
        self.hosts = [FakeHost(f"fake{i:03d}", f"127.0.{net + i // 250}.{1 + i % 250}") for i in range(count)]
        self.by_name = {h.name: h for h in self.hosts}
        self.document = GOLDEN.read_bytes()
        self.script = host_script()
        self.client_key_path = root / "client_ed25519"
        self.ssh_config = root / "ssh_config"
        self.known_hosts = root / "known_hosts"
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-fleet", daemon=True)
        self.servers: list[asyncssh.SSHAcceptor] = []
        self.reset_stats()

    # -- lifecycle

    def start(self) -> FakeFleet:
        self.root.mkdir(parents=True, exist_ok=True)
        client = asyncssh.generate_private_key("ssh-ed25519", comment="fleet-client")
        client.write_private_key(str(self.client_key_path))
        self.client_public = client.convert_to_public()
        self.ssh_config.write_text("")
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(60)
        self.write_known_hosts(self.known_hosts)
        return self

    async def _listen(self) -> None:
        for host in self.hosts:
            host.key = asyncssh.generate_private_key("ssh-ed25519")
            server = await asyncssh.listen(
                host.address,
                0,
                server_host_keys=[host.key],
                server_factory=lambda h=host: _FakeServer(self, h),
                process_factory=lambda process, h=host: self._session(h, process),
                encoding=None,
                reuse_address=True,
                backlog=512,
            )
            host.port = server.sockets[0].getsockname()[1]
            self.servers.append(server)

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
            for server in self.servers:
                await server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    # -- configuration and results

    def reset_stats(self) -> None:
        with self.lock:
            self.active = 0
            self.peak = 0
            self.sessions = 0
            self.bundles_ok = 0
            #: How each hanging host was told to stop: signal names, then "EOF".
            self.stops: dict[str, list[str]] = {}
            self.commands: dict[str, list[str]] = {}
        for host in self.hosts:
            host.fault, host.resets, host.connections, host.aborted = "ok", 0, 0, 0

    def write_known_hosts(self, path: Path, *, omit: Iterable[str] = (), wrong: Iterable[str] = ()) -> Path:
        omit, wrong = set(omit), set(wrong)
        lines = []
        for h in self.hosts:
            if h.name in omit:
                continue
            key = asyncssh.generate_private_key("ssh-ed25519") if h.name in wrong else h.key
            assert key is not None
            public = key.export_public_key("openssh").decode()
            lines.append(known_hosts_line(h.address, h.port, public))
        path.write_text("\n".join(lines) + "\n")
        return path

    def inventory(self, path: Path, names: Iterable[str] | None = None, extra: str = "") -> Path:
        chosen = [self.by_name[n] for n in names] if names is not None else self.hosts
        lines = [f"{h.name} ansible_host={h.address} ansible_port={h.port} {extra}".rstrip() for h in chosen]
        path.write_text("\n".join(lines) + "\n")
        return path

    def cli_args(self, known_hosts: Path | None = None) -> list[str]:
        return [
            "-i",
            str(self.client_key_path),
            "--ssh-config",
            str(self.ssh_config),
            "--known-hosts",
            str(known_hosts or self.known_hosts),
        ]

    def leftovers(self, timeout: float = 3.0) -> int:
        """Sessions still open on the host side once the run is over (after a short settle)."""
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.active

    # -- the host side

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        with self.lock:
            self.active += 1
            self.sessions += 1
            self.peak = max(self.peak, self.active)
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1

    async def _receive_bundle(self, process: asyncssh.SSHServerProcess[bytes]) -> bool:
        header = await process.stdin.readline()
        fields = header.split()
        if len(fields) != 3 or fields[0] != bootstrap_host.MAGIC:
            return False
        data = await process.stdin.readexactly(int(fields[1]))
        ok = hashlib.sha256(data).hexdigest().encode() == fields[2]
        if ok:
            with self.lock:
                self.bundles_ok += 1
        return ok

    async def _session(self, host: FakeHost, process: asyncssh.SSHServerProcess[bytes]) -> None:
        # The client may go away at any point: that is its right.
        with (
            self._tracked(),
            contextlib.suppress(asyncssh.Error, OSError, asyncio.IncompleteReadError, EOFError),
        ):
            await self._act(host, process)

    async def _act(self, host: FakeHost, process: asyncssh.SSHServerProcess[bytes]) -> None:
        argv = shlex.split(process.command or "")
        if argv[1:3] == ["env", f"{PLAIN_ENV}=1"]:  # FLEETCPU_PLAIN=1 passes the switch on
            argv = [argv[0], *argv[3:]]
        self.commands[host.name] = argv
        if argv[:5] != ["exec", argv[1], "-E", "-s", "-c"] or argv[5] != self.script:
            process.stderr.write(b"fake host: not the fleetcpu bootstrap\n")
            process.exit(99)
            return
        fault = host.fault
        if fault == "exit127":
            process.stderr.write(f"bash: line 1: {argv[1]}: command not found\n".encode())
            process.exit(127)
            return
        if fault == "old-python":
            process.stderr.write(
                b"fleetcpu-bootstrap: python-too-old /usr/bin/python3 is Python "
                b"3.6.8, fleetcpu's probe needs 3.9 or newer\n"
            )
            process.exit(bootstrap_host.EXIT_OLD_PYTHON)
            return
        if not await self._receive_bundle(process) or fault == "bad-upload":
            process.stderr.write(b"fleetcpu-bootstrap: upload bundle checksum mismatch\n")
            process.exit(bootstrap_host.EXIT_BAD_BUNDLE)
            return
        await asyncio.sleep(self.delay)
        doc = self.document
        if fault == "ok":
            process.stdout.write(doc)
            process.exit(0)
        elif fault == "garbage":
            process.stdout.write(b"\x89PNG\r\n<html>Segmentation fault</html>\n")
            process.exit(0)
        elif fault == "truncated":
            process.stdout.write(doc[: len(doc) // 2])
            process.exit(0)
        elif fault == "killed":
            process.stdout.write(doc[:1000])
            process.exit_with_signal("KILL")
        elif fault == "disconnect":
            process.stdout.write(doc[: len(doc) // 3])
            await process.stdout.drain()
            process.get_extra_info("connection").abort()
        elif fault in ("hang", "linger"):
            if fault == "linger":  # answers, then does not exit (stuck stopping its QEMU)
                process.stdout.write(doc)
            # Like the real bootstrap: a TERM signal request or EOF on stdin means "stop".
            told: list[str] = []
            while True:
                try:
                    if not await process.stdin.read(65536):
                        told.append("EOF")
                        break
                except asyncssh.SignalReceived as exc:
                    told.append(exc.signal)
            with self.lock:
                self.stops[host.name] = told
            process.stderr.write(b"probe stopped\n")
            process.exit(130)
        elif fault in ("noisy", "flood"):
            # A broken host that prints ``noise`` bytes of incompressible text to stderr
            # (noisy) or stdout (flood), then fails: what fills a store (stored tails) and
            # an orchestrator's memory (buffers).
            stream = process.stderr if fault == "noisy" else process.stdout
            chunk = base64.b64encode(os.urandom(48 * 1024))
            for _ in range(max(1, self.noise // len(chunk))):
                stream.write(chunk)
                await stream.drain()
            process.exit(1)
        elif fault == "hang-hard":
            # Ignores EOF and signals: only a closed channel ends it.
            await process.wait_closed()
        else:
            raise AssertionError(f"unknown fault {fault!r}")


def fake_fleet_fixtures(count: int, **options: Any) -> tuple[Any, Any]:
    """The ``fleet`` (one ``FakeFleet`` per test module) and ``fresh`` (its counters reset) fixtures.

    Three suites share them; a module takes both with
    ``fleet, fresh = fake_fleet_fixtures(32, delay=0.0)``.
    """

    @pytest.fixture(scope="module", name="fleet")
    def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeFleet]:
        f = FakeFleet(tmp_path_factory.mktemp("fleet"), count, **options).start()
        try:
            yield f
        finally:
            f.stop()

    @pytest.fixture(name="fresh")
    def fresh(fleet: FakeFleet) -> FakeFleet:
        fleet.reset_stats()
        return fleet

    return fleet, fresh
