"""Shared by the benchmarks that run the CLI: measure fleetcpu as an installed package runs."""

from __future__ import annotations

import compileall
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def compile_package() -> None:
    """Byte-compile fleetcpu first, as ``pip install`` does, so the CLI is measured as installed.

    Without it a machine with ``PYTHONDONTWRITEBYTECODE=1`` (this one) or a
    read-only checkout compiles ~30 modules at every command: 40-90 ms that
    no installed fleetcpu pays (``baseline`` on 10,000 hosts: ~1.05 s
    instead of ~0.8 s).
    """
    compileall.compile_dir(str(REPO / "fleetcpu"), quiet=1)
