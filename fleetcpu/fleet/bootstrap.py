"""The command line a host runs, and the bytes it reads on stdin.

The remote command is ``exec PYTHON -E -s -c BOOTSTRAP PROBE-ARGS...`` where
every element is ``shlex.quote``\\ d: sshd hands the line to the user's login
shell, and nothing from the inventory (a ``qemu=`` path, a machine type, a
``python=``) may ever be interpreted by it. ``exec`` makes the Python process
the session's process, so a signal request or a closed channel reaches the
probe and no shell lingers. ``-E -s`` keep the host's ``PYTHONPATH`` and user
site-packages out of the probe.

The stdin payload is ``bootstrap_host``'s protocol: one header line naming the
length and sha256 of the bundle, then the bundle.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

from ..probe.speed import PLAIN_ENV, plain
from . import bootstrap_host
from .inventory import HostSpec

if TYPE_CHECKING:  # only a type here: the markers above are read by pure code
    from .bundle import Bundle

__all__ = [
    "DEFAULT_PYTHON",
    "EXIT_BAD_BUNDLE",
    "EXIT_OLD_PYTHON",
    "MARKER",
    "host_script",
    "payload",
    "probe_args",
    "probe_timeout",
    "remote_command",
]

DEFAULT_PYTHON = "python3"
EXIT_OLD_PYTHON = bootstrap_host.EXIT_OLD_PYTHON
EXIT_BAD_BUNDLE = bootstrap_host.EXIT_BAD_BUNDLE
MARKER = bootstrap_host.MARKER


@functools.cache
def host_script() -> str:
    """The source of ``bootstrap_host``, sent verbatim as ``-c`` (what runs is what vermin checked)."""
    return resources.files(__package__).joinpath("bootstrap_host.py").read_text(encoding="utf-8")


def remote_command(python: str | None, args: Sequence[str]) -> str:
    """One shell-safe line: every element quoted, whatever the inventory put in it.

    Under ``FLEETCPU_PLAIN=1`` (``fleetcpu.probe.speed``) the host gets the switch
    too, through ``env``: sshd passes no environment of the client's.
    """
    argv = [python or DEFAULT_PYTHON, "-E", "-s", "-c", host_script(), *args]
    if plain():
        argv = ["env", f"{PLAIN_ENV}=1", *argv]
    return "exec " + shlex.join(argv)


def payload(bundle: Bundle) -> bytes:
    header = b"%s %d %s\n" % (bootstrap_host.MAGIC, len(bundle.data), bundle.sha256.encode())
    return header + bundle.data


def probe_timeout(command_timeout: float) -> float:
    """The probe's own deadline, safely inside the orchestrator's.

    The probe then reports its timeout itself (a document naming the QEMU that
    hung, with its stderr), which is better evidence than "no answer". The
    margin pays for interpreter start, import from memory and document output.
    """
    margin = min(10.0, max(1.0, 0.2 * command_timeout))
    return max(0.5, command_timeout - margin)


def probe_args(host: HostSpec, command_timeout: float) -> list[str]:
    """The probe's flags for this host, from its inventory settings."""
    args = ["--accel", host.accel, "--timeout", f"{probe_timeout(command_timeout):g}"]
    for machine_type in host.machine_types:
        args += ["--machine-type", machine_type]
    if host.qemu:
        args += ["--qemu-binary", host.qemu]
    if host.host_root:
        args += ["--host-root", host.host_root]
    return args
