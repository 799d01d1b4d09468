"""The README's Debian package lists are scripts/setup.sh's, and the first command covers every format.

A newcomer reads the lists to know what the two commands will install (and
an operator to know what to mirror); they went stale once already, so they
are held against the script. The first command (no ``--dev``) must install
what ``fleetcpu baseline --format libvirt|nova|kubevirt`` reads at run time:
the system cpu_map, which Debian ships in a package of its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetcpu.libvirt.cpumap import SYSTEM_CPU_MAP

REPO = Path(__file__).resolve().parent.parent


def setup_lists() -> tuple[list[str], list[str]]:
    """(what ``setup.sh`` installs, what ``setup.sh --dev`` adds), read from its arrays."""
    text = (REPO / "scripts/setup.sh").read_text()
    base = re.findall(r"^pkgs=\(([^)]*)\)", text, re.M)
    dev = re.findall(r"^\s+pkgs\+=\(([^)]*)\)", text, re.M)
    assert len(base) == 1 and len(dev) == 1, "setup.sh's package arrays changed shape"
    return base[0].split(), dev[0].split()


def readme_lists() -> tuple[list[str], list[str]]:
    """The backticked packages the README names for the first command, and what the test command adds."""
    text = (REPO / "README.md").read_text()
    para = next(p for p in text.split("\n\n") if p.startswith("Both commands are idempotent"))
    first, sep, rest = para.partition("the test command adds")
    assert sep, "README no longer says what the test command adds"
    rest = rest.split("Everything else")[0]
    names = re.compile(r"`([a-z0-9][a-z0-9.+-]+)`")
    return (names.findall(first.split("The first installs", 1)[1].split("(")[0]), names.findall(rest))


def test_readme_lists_are_setup_sh_lists() -> None:
    base, dev = setup_lists()
    r_base, r_dev = readme_lists()
    assert sorted(r_base) == sorted(base)
    assert sorted(r_dev) == sorted(dev)


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian machine")
def test_the_first_command_installs_the_system_cpu_map() -> None:
    """The package owning /usr/share/libvirt/cpu_map is installed without --dev."""
    done = subprocess.run(["dpkg", "-S", str(SYSTEM_CPU_MAP)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"no installed package owns {SYSTEM_CPU_MAP}: {done.stderr}"
    owners = {line.split(":")[0] for line in done.stdout.splitlines()}
    base, _ = setup_lists()
    assert owners & set(base), f"{SYSTEM_CPU_MAP} comes from {owners}, not in setup.sh's {base}"
