"""``--format qemu`` (the default): the two ``-cpu`` strings on stdout, commentary on stderr.

stdout holds exactly two lines, the named string then the custom string,
each as ``-cpu VALUE``, so ``fleetcpu baseline ... | head -1`` pastes into a
QEMU command line. Everything else (which pool, machine type and model,
every warning and missing host) goes to stderr as ``#`` comment lines: a
script capturing stdout never has to filter it, and a human sees it.
"""

from __future__ import annotations

from ..baseline.types import Baseline
from .rendered import Rendered

__all__ = ["header", "render_qemu"]


def header(b: Baseline) -> str:
    changes = f"+{len(b.enable)} -{len(b.disable)}"
    return (
        f"# pool {b.pool}: {len(b.hosts)} host(s), {b.machine_type}, {b.accel}, "
        f"{b.vendor or 'vendor unknown'}; model {b.model} ({changes}), "
        f"{len(b.features)} features, {b.abi_level or 'below x86-64-v1'}; "
        "append ,enforce to refuse to start rather than drop"
    )


def render_qemu(b: Baseline) -> Rendered:
    comments = [header(b)]
    comments += [f"# warning {w.code}: {w.message}" for w in b.warnings]
    comments += [f"# missing {m.host} ({m.code}): {m.message}" for m in b.missing]
    return Rendered(
        stdout=f"-cpu {b.cpu}\n-cpu {b.custom}\n",
        stderr="".join(line + "\n" for line in comments),
    )
