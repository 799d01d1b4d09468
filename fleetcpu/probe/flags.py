"""The probe's flags, declared once: ``fleetcpu probe`` (click), ``python3 -m fleetcpu.probe``
(argparse) and the shipped entry's fast path are all built from ``FLAGS``.

Why three parsers at all: ``fleetcpu probe`` is a click command like every
other; the host has no click, so the shipped entry uses argparse; and
importing argparse and building its parser holds back ``QEMU -version`` on
every host by some 4 ms (commit 966bcb4; re-measured: 59.5 vs 65.8 ms of CPU
for a fresh interpreter that parses ``--accel kvm --timeout 80 --machine-type
q35``, medians of 25 interleaved runs), so plain ``--flag value`` pairs,
which is all collect and scripts ever pass, are read by ``parse_plain``
without it. Why one table: the three used to be written by hand and could
drift; ``tests/test_probe_flags.py`` holds them to it, flag by flag.

Python 3.9, stdlib only, nothing heavy: imported before QEMU is started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from .launch_plan import ACCELS, DEFAULT_TIMEOUT, ProbeOptions

if TYPE_CHECKING:
    import argparse

__all__ = ["FLAGS", "Flag", "build_parser", "options", "parse_plain"]


class Flag(NamedTuple):
    """One ``--flag VALUE`` of the probe, as every parser of it must read it."""

    name: str
    #: The keyword it arrives as (click's parameter name, argparse's dest).
    dest: str
    kind: type
    default: Any
    metavar: Optional[str]
    help: str
    #: Repeatable: the values are collected in order, as a tuple.
    repeat: bool = False
    choices: Tuple[str, ...] = ()
    #: Only a value > 0 is accepted.
    positive: bool = False


FLAGS: Tuple[Flag, ...] = (
    Flag(
        "--machine-type",
        "machine_types",
        str,
        (),
        "T",
        "Machine type or alias to probe (repeatable; default: the host's q35).",
        repeat=True,
    ),
    Flag("--qemu-binary", "qemu_binary", str, None, "PATH", "QEMU to run (default: qemu-system-x86_64)."),
    Flag(
        "--accel",
        "accel",
        str,
        "auto",
        None,
        "auto tries KVM, then falls back to TCG and records why.",
        choices=ACCELS,
    ),
    Flag(
        "--timeout",
        "timeout",
        float,
        DEFAULT_TIMEOUT,
        "S",
        "Deadline for the whole probe, seconds.",
        positive=True,
    ),
    Flag(
        "--host-root",
        "host_root",
        str,
        "/",
        "DIR",
        "Read host facts (/proc, /sys) under DIR, e.g. from a container.",
    ),
    Flag("--indent", "indent", int, None, None, "Pretty-print the JSON."),
)

_BY_NAME = {flag.name: flag for flag in FLAGS}


def options(values: Mapping[str, Any]) -> Tuple[ProbeOptions, Optional[int]]:
    """What the probe runs with, and the JSON indent, from the parsed flags (keyed by ``dest``)."""
    return (
        ProbeOptions(
            machine_types=tuple(values["machine_types"]),
            qemu_binary=values["qemu_binary"],
            accel=values["accel"],
            timeout=values["timeout"],
            host_root=values["host_root"],
        ),
        values["indent"],
    )


def parse_plain(argv: List[str]) -> Optional[Dict[str, Any]]:
    """``--flag value`` pairs, as collect and scripts pass them, without argparse.

    Anything else (help, a bad value, ``--flag=value``, abbreviations, a
    value starting with ``-``) returns None and goes to argparse, which
    accepts or rejects it as it always did.
    """
    if len(argv) % 2:
        return None
    values: Dict[str, Any] = {flag.dest: flag.default for flag in FLAGS}
    repeated: Dict[str, List[Any]] = {flag.dest: [] for flag in FLAGS if flag.repeat}
    for i in range(0, len(argv), 2):
        flag = _BY_NAME.get(argv[i])
        text = argv[i + 1]
        if flag is None or text.startswith("-"):
            return None
        if flag.choices and text not in flag.choices:
            return None
        try:
            value = flag.kind(text)
        except ValueError:
            return None
        if flag.repeat:
            repeated[flag.dest].append(value)
        else:
            values[flag.dest] = value
    for dest, got in repeated.items():
        values[dest] = tuple(got)
    return values


def build_parser() -> argparse.ArgumentParser:
    """The shipped entry's full parser (``--help``, ``--flag=value``, its error messages)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python3 -m fleetcpu.probe",
        description="Probe this host's QEMU/KVM CPU capabilities; print one JSON document.",
    )
    for flag in FLAGS:
        text = flag.help
        if flag.default not in (None, ()):
            text = "%s (default: %s)." % (text.rstrip("."), flag.default)
        kwargs: Dict[str, Any] = {"dest": flag.dest, "metavar": flag.metavar, "help": text}
        if flag.repeat:
            kwargs.update(action="append", default=[], type=flag.kind)
        else:
            kwargs.update(default=flag.default, type=flag.kind)
        if flag.choices:
            kwargs.update(choices=flag.choices, metavar=None)
        parser.add_argument(flag.name, **kwargs)
    return parser
