"""asyncssh's library probes answered from one ldconfig listing (``fleetcpu.speed.quick_find_library``)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetcpu.speed import cached_finder

from .conftest import tricks_only

LISTING = b"""3 libs found in cache `/etc/ld.so.cache'
\tlibnettle.so.8 (libc6) => /lib/i386-linux-gnu/libnettle.so.8
\tlibnettle.so.8 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnettle.so.8
\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6
"""


def _never(name: str) -> str | None:
    raise AssertionError(f"the standard search ran for {name}")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the listing above is x86-64's")
def test_answers_from_one_listing_in_this_abi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    reads: list[int] = []

    def listing() -> bytes:
        reads.append(1)
        return LISTING

    find = cached_finder(_never, listing)
    assert find("nettle") == "libnettle.so.8"
    assert find("c") == "libc.so.6"
    assert find("oqs") is None and find("liboqs") is None
    assert reads == [1], "ldconfig is read once"


def test_ld_library_path_falls_back_to_the_standard_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/oqs/lib")
    find = cached_finder(lambda name: f"std:{name}", lambda: LISTING)
    assert find("oqs") == "std:oqs"


def test_same_answers_as_the_standard_library_here() -> None:
    """On this machine's real ldconfig cache, for libraries the cache holds."""
    find = cached_finder(_never)
    for name in ("c", "m", "z", "crypto", "ssl", "nettle"):
        assert find(name) == ctypes.util.find_library(name), name


@tricks_only
def test_importing_asyncssh_through_fleetcpu_starts_one_process(tmp_path: Path) -> None:
    """One ldconfig, not the ~eleven processes of ctypes' gcc and ld fallbacks."""
    trace = tmp_path / "trace"
    res = subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=execve",
            "-o",
            str(trace),
            sys.executable,
            "-c",
            "import fleetcpu.fleet.ssh",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    execs = [ln for ln in trace.read_text().splitlines() if "execve(" in ln and "= 0" in ln]
    assert len(execs) == 2, execs  # the interpreter itself, and one ldconfig
