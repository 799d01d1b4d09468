"""Output formats: a computed record in, text out. Pure: the CLI writes the text.

One module per format, each a function ``(Baseline, RenderOptions) -> Rendered``;
``FORMATS`` is the one table the CLI's ``--format`` choices come from, so a new
format is one module and one line here. ``RenderOptions`` carries what a format
needs besides the baseline, already loaded by the caller (the libvirt cpu_map
for ``libvirt``, ``nova`` and ``kubevirt``): renderers never read files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..baseline.types import Baseline
from .rendered import Rendered

if TYPE_CHECKING:
    from ..libvirt.cpumap import CpuMap


@dataclass(frozen=True)
class RenderOptions:
    """Inputs some formats need beyond the baseline (``--libvirt-cpu-map``)."""

    cpu_map: CpuMap | None = None


def _qemu(baseline: Baseline, _options: RenderOptions) -> Rendered:
    from .qemu_args import render_qemu

    return render_qemu(baseline)


def _json(baseline: Baseline, _options: RenderOptions) -> Rendered:
    from .json_doc import render_json

    return render_json(baseline)


def _readconfig(baseline: Baseline, _options: RenderOptions) -> Rendered:
    from .readconfig import render_readconfig

    return render_readconfig(baseline)


def _libvirt(baseline: Baseline, options: RenderOptions) -> Rendered:
    from .libvirt_xml import render_libvirt

    return render_libvirt(baseline, _need_cpu_map(options, "libvirt"))


def _nova(baseline: Baseline, options: RenderOptions) -> Rendered:
    from .nova_conf import render_nova

    return render_nova(baseline, _need_cpu_map(options, "nova"))


def _kubevirt(baseline: Baseline, options: RenderOptions) -> Rendered:
    from .kubevirt_cpu import render_kubevirt

    return render_kubevirt(baseline, _need_cpu_map(options, "kubevirt"))


def _proxmox(baseline: Baseline, _options: RenderOptions) -> Rendered:
    from .proxmox_conf import render_proxmox

    return render_proxmox(baseline)


def _need_cpu_map(options: RenderOptions, fmt: str) -> CpuMap:
    if options.cpu_map is None:
        raise ValueError(f"format {fmt} spells the CPU for libvirt and needs a cpu_map")
    return options.cpu_map


#: --format name -> renderer; the first is the default.
FORMATS: dict[str, Callable[[Baseline, RenderOptions], Rendered]] = {
    "qemu": _qemu,
    "json": _json,
    "readconfig": _readconfig,
    "libvirt": _libvirt,
    "nova": _nova,
    "kubevirt": _kubevirt,
    "proxmox": _proxmox,
}
#: Formats spelt through a libvirt cpu_map (the CLI loads one for them).
NEEDS_CPU_MAP = frozenset({"libvirt", "nova", "kubevirt"})


def render(baseline: Baseline, fmt: str, options: RenderOptions | None = None) -> Rendered:
    try:
        renderer = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}") from None
    from ..baseline.quotable import refuse_unquotable

    refuse_unquotable(baseline, f"--format {fmt}")  # before any format writes a host's name
    return renderer(baseline, options or RenderOptions())


__all__ = ["FORMATS", "NEEDS_CPU_MAP", "RenderOptions", "Rendered", "render"]
