"""The probe's three parsers (click's ``fleetcpu probe``, the shipped entry's argparse and its
fast path) read every flag of the one table the same way."""

from __future__ import annotations

from typing import Any

import click
import pytest

from fleetcpu.cli import probe
from fleetcpu.probe.flags import FLAGS, Flag, build_parser, options, parse_plain
from fleetcpu.probe.launch_plan import ProbeOptions

#: Two accepted values of each flag, as text on a command line.
SAMPLES = {
    "--machine-type": ("pc-q35-7.2", "q35"),
    "--qemu-binary": ("/usr/bin/qemu-system-x86_64", "qemu"),
    "--accel": ("kvm", "tcg"),
    "--timeout": ("2.5", "90"),
    "--host-root": ("/host", "relative/dir"),
    "--indent": ("2", "0"),
}
#: A value each flag must refuse (the fast path hands it on to argparse).
REFUSED = {"--accel": "hvf", "--timeout": "soon", "--indent": "two"}


def _by_click(argv: list[str]) -> tuple[ProbeOptions, int | None]:
    ctx = probe.make_context("probe", list(argv))
    return options(ctx.params)


def _by_argparse(argv: list[str]) -> tuple[ProbeOptions, int | None]:
    return options(vars(build_parser().parse_args(argv)))


def _by_fast_path(argv: list[str]) -> tuple[ProbeOptions, int | None]:
    values = parse_plain(argv)
    assert values is not None, argv
    return options(values)


def test_the_table_names_every_flag_each_parser_knows() -> None:
    assert {f.name for f in FLAGS} == set(SAMPLES)
    clicked = {opt for p in probe.params for opt in p.opts} - {"-h", "--help"}
    argparsed = {opt for a in build_parser()._actions for opt in a.option_strings} - {"-h", "--help"}
    assert clicked == argparsed == set(SAMPLES)


def test_defaults_agree() -> None:
    expected = (ProbeOptions(), None)
    assert _by_click([]) == _by_argparse([]) == _by_fast_path([]) == expected


@pytest.mark.parametrize("flag", FLAGS, ids=lambda f: f.name)
def test_each_flag_reads_the_same_in_all_three(flag: Flag) -> None:
    first, second = SAMPLES[flag.name]
    argv = [flag.name, first, flag.name, second] if flag.repeat else [flag.name, first]
    got = {_by_click(argv), _by_argparse(argv), _by_fast_path(argv)}
    assert len(got) == 1, got
    opts, indent = got.pop()
    value: Any = indent if flag.dest == "indent" else getattr(opts, flag.dest)
    expected: Any = tuple(map(flag.kind, (first, second))) if flag.repeat else flag.kind(first)
    assert value == expected
    # The other spellings argparse accepts and the fast path leaves to it.
    assert parse_plain([f"{flag.name}={first}"]) is None
    assert _by_argparse([f"{flag.name}={first}"]) == _by_click([f"{flag.name}={first}"])


@pytest.mark.parametrize(("name", "bad"), sorted(REFUSED.items()))
def test_a_bad_value_is_refused_by_all_three(name: str, bad: str) -> None:
    assert parse_plain([name, bad]) is None
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([name, bad])
    assert exited.value.code == 2
    with pytest.raises(click.BadParameter):
        probe.make_context("probe", [name, bad])


def test_the_positive_timeout_is_refused_by_click_and_by_the_entry() -> None:
    """argparse and the fast path read ``--timeout 0``; the entry then refuses it (exit 2)."""
    from fleetcpu.probe.__main__ import run

    with pytest.raises(click.BadParameter):
        probe.make_context("probe", ["--timeout", "0"])
    assert run(_fast(["--timeout", "0"])) == 2
    assert run(vars(build_parser().parse_args(["--timeout=-1"]))) == 2


def _fast(argv: list[str]) -> dict[str, Any]:
    values = parse_plain(argv)
    assert values is not None
    return values
