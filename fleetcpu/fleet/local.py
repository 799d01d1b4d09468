"""``transport=local``: the same remote command, run on this machine by ``/bin/sh -c``.

Why a shell and not a plain exec: the command is exactly the line sshd would
hand to the login shell (``exec python3 -E -s -c ... ``), so the local path
exercises the real quoting, the real ``exec``, the shell's exit 127 for a
missing interpreter, the bundle on stdin and the EOF watchdog. A test that
passes locally has run the remote path minus the network.

The child gets its own session (``start_new_session``): a Ctrl-C on the
operator's terminal reaches the orchestrator, which then stops the probe the
same way as over ssh (EOF, SIGTERM, grace), instead of the probe dying
half-way with its QEMU.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

from ..vocabulary import Stage
from .inventory import HostSpec
from .remote_run import HostFailure, RemoteRun
from .transport import drive

__all__ = ["SHELL", "WINDOW", "LocalTransport"]

SHELL = "/bin/sh"
#: What an SSH sender may write before the other side reads: the channel window (2 MiB in
#: OpenSSH and asyncssh). The pipe here buffers as much, so a command that never reads its
#: stdin sees the same upload over both transports; the bundle (~230 KB with its precompiled
#: code) is more than a pipe (64 KiB) and asyncio's default write buffer (64 KiB) hold.
WINDOW = 2 * 1024 * 1024


class _LocalChannel:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.stdin = proc.stdin
        self.stdin.transport.set_write_buffer_limits(high=WINDOW)
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def write(self, data: bytes) -> None:
        self.stdin.write(data)

    async def drain(self) -> None:
        await self.stdin.drain()

    def close_stdin(self) -> None:
        self.stdin.close()

    async def read_stdout(self) -> bytes:
        return await self.stdout.read(65536)

    async def read_stderr(self) -> bytes:
        return await self.stderr.read(65536)

    async def wait(self) -> None:
        await self.proc.wait()

    def exit(self) -> tuple[int | None, str | None]:
        code = self.proc.returncode
        if code is not None and code < 0:
            return None, signal.Signals(-code).name.removeprefix("SIG")
        return code, None

    def terminate(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


class LocalTransport:
    name = "local"

    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace

    async def run(
        self,
        host: HostSpec,  # noqa: ARG002
        command: str,
        stdin: bytes,
        timeout: float,
    ) -> RemoteRun:
        try:
            proc = await asyncio.create_subprocess_exec(
                SHELL,
                "-c",
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=dict(os.environ),
            )
        except OSError as exc:
            raise HostFailure(Stage.PYTHON, f"cannot start {SHELL}: {exc}") from exc
        channel = _LocalChannel(proc)
        try:
            return await drive(channel, stdin, timeout, self.grace)
        finally:
            if proc.returncode is None:  # drive gave up on it: never leave a zombie
                proc.kill()
                await proc.wait()

    async def aclose(self) -> None:
        return None
