"""``--format readconfig``: the custom CPU as QEMU ``-readconfig`` ``[global]`` sections. Pure.

The 2015 ``-cpu custom`` thread's ``x86-cpu-model-dump`` wrote a CPU as
``[global]`` sections (``driver = "cpu"``, one property each) for a model that
loads nothing. Today's QEMU has that model: ``base`` (QOM type
``base-x86_64-cpu``), whose features are all off. So the file sets, for
driver ``base-x86_64-cpu``, exactly what the custom string sets (vendor,
family/model/stepping, level, xlevel, phys-bits, model-id, then every
feature ``on``), and is used as::

    qemu-system-x86_64 -machine <machine type> -cpu base,enforce -readconfig pool.cfg

Why globals are equivalent to the custom string: QEMU turns every
``-cpu base,key=value,+feat`` item into exactly such a global property of the
CPU type before the CPU is created. A test starts QEMU 7.2 both ways and
compares ``feature-words`` and the scalars.

Values are always quoted (QEMU's config parser requires it) and contain no
quote or backslash: feature names and our fixed ``model-id`` never do. No
line reaches 1,024 bytes: QEMU reads the file with a 1,024-byte ``fgets``
buffer, so a longer comment would be split and its tail parsed as a setting
(the custom string itself is therefore not quoted in a comment).
"""

from __future__ import annotations

from ..baseline.cpuarg import MODEL_ID
from ..baseline.types import Baseline
from ..errors import BadInputError
from .provenance import commentary, origin
from .rendered import Rendered

__all__ = ["DRIVER", "properties", "render_readconfig"]

#: QOM type of ``-cpu base`` on x86_64.
DRIVER = "base-x86_64-cpu"


def properties(b: Baseline) -> list[tuple[str, str]]:
    """(property, value) in the custom string's order; unknown scalars left out, like there."""
    s = b.scalars
    props: list[tuple[str, str]] = []
    if b.vendor:
        props.append(("vendor", b.vendor))
    for key, value in (
        ("family", s.family),
        ("model", s.model),
        ("stepping", s.stepping),
        ("level", s.level),
    ):
        if value is not None:
            props.append((key, str(value)))
    if s.xlevel is not None:
        props.append(("xlevel", f"{s.xlevel:#x}"))
    if s.phys_bits is not None:
        props.append(("phys-bits", str(s.phys_bits)))
    props.append(("model-id", MODEL_ID))
    props += [(name, "on") for name in sorted(b.features)]
    for key, text in props:
        if '"' in key + text or "\\" in key + text or "\n" in key + text:
            raise BadInputError(
                f"baseline of pool {b.pool}: cannot quote {key}={text!r} for "
                "-readconfig; --format readconfig refuses to write it"
            )
    return props


def render_readconfig(b: Baseline) -> Rendered:
    lines = [f"# {line}" for line in origin(b)]
    lines += [
        f"# use: qemu-system-x86_64 -machine {b.machine_type} -cpu base,enforce -readconfig FILE",
        "# the same CPU as the custom string of --format qemu (its second line)",
        "",
    ]
    for key, value in properties(b):
        lines += ["[global]", f'  driver = "{DRIVER}"', f'  property = "{key}"', f'  value = "{value}"', ""]
    return Rendered("\n".join(lines), commentary(b))
