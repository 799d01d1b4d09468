"""Output formats: a computed record in, text out. Pure: the CLI writes the text.

One module per format, each a function ``Baseline -> Rendered``; ``FORMATS``
is the one table the CLI's ``--format`` choices come from, so a new format
(issue 6: readconfig, libvirt, nova, kubevirt, proxmox) is one module and
one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..baseline.records import Baseline


@dataclass(frozen=True)
class Rendered:
    """What a format prints: the answer on stdout, commentary (warnings) on stderr."""

    stdout: str
    stderr: str = ""


def _qemu(baseline: Baseline) -> Rendered:
    from .qemu import render_qemu

    return render_qemu(baseline)


def _json(baseline: Baseline) -> Rendered:
    from .jsondoc import render_json

    return render_json(baseline)


#: --format name -> renderer; the first is the default.
FORMATS: dict[str, Callable[[Baseline], Rendered]] = {"qemu": _qemu, "json": _json}


def render(baseline: Baseline, fmt: str) -> Rendered:
    try:
        renderer = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}") from None
    return renderer(baseline)


__all__ = ["FORMATS", "Rendered", "render"]
