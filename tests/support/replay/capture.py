"""One capture of a real host, read where it lies (``../shared/realdata/libvirt``).

Two kinds exist, and they hold different things:

* ``cputest``: ``cputestdata/x86_64-cpuid-<CPU>.json`` (+ ``.xml``,
  ``-enabled.xml``, ``-disabled.xml``). libvirt's ``cpu-data.py`` made it: a
  static expansion of ``host`` under KVM (not kept), a *full* expansion of
  that static model (so its name is ``base``; ``hv-passthrough`` added on
  QEMU >= 6.1), and on about half the hosts ``query-cpu-definitions``. The
  ``-enabled`` / ``-disabled`` masks are libvirt's recomputation through
  ``x86_features.xml``: features the expansion turned on, and features the
  raw CPUID (``.xml``) had that the expansion did not turn on.
* ``replies``: ``qemucapabilitiesdata/caps_<ver>*.replies``, a whole QMP
  conversation of libvirt probing QEMU: a KVM pass, then (after a second
  ``qmp_capabilities``) a TCG pass.

This module only splits files into replies; deciding what to answer is
``replay_qemu``'s job. It is stdlib-only and deliberately does not reuse
``tests/support/realdata.py`` (which imports pytest through conftest): the fake
starts for every probe launch and must stay cheap, and the tests read the
same files through ``tests/support/realdata.py``, so the two readers check each other.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPUID_PREFIX = "x86_64-cpuid-"
REGISTERS = ("eax", "ebx", "ecx", "edx")

#: (leaf, subleaf, {"eax": .., "ebx": .., "ecx": .., "edx": ..})
CpuidRow = tuple[int, int, dict[str, int]]


@dataclass(frozen=True)
class Exchange:
    """One command of a recorded conversation and the reply QEMU gave."""

    index: int
    execute: str
    arguments: dict[str, Any]
    reply: dict[str, Any]


@dataclass
class Pass:
    """What one QEMU process (one accelerator) was asked, in order."""

    accel: str
    exchanges: list[Exchange] = field(default_factory=list)

    def first(self, execute: str) -> Exchange | None:
        return next((e for e in self.exchanges if e.execute == execute), None)

    def all(self, execute: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.execute == execute]


@dataclass
class Capture:
    """A capture file and what it says, per accelerator pass."""

    path: Path
    kind: str  # "cputest" | "replies"
    passes: dict[str, Pass]
    #: cputest only: ``id: model-expansion`` (libvirt's full-of-static expansion).
    model_expansion: dict[str, Any] | None = None
    #: cputest only, on about half the hosts: ``id: definitions``.
    definitions: list[Any] | None = None
    enabled: list[CpuidRow] | None = None
    disabled: list[CpuidRow] | None = None
    raw_cpuid: list[CpuidRow] | None = None

    @property
    def label(self) -> str:
        """What synthetic values and facts carry so nobody mistakes them for measurements."""
        return "replay:" + self.path.name

    @property
    def libvirt_dir(self) -> Path:
        return self.path.parent.parent


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name.removesuffix(".json") + suffix)


def cpuid_rows(path: Path) -> list[CpuidRow] | None:
    """``<cpuid eax_in ecx_in eax ebx ecx edx/>`` rows of a libvirt cpudata file."""
    if not path.exists():
        return None
    rows = []
    for el in ET.parse(path).getroot().iter("cpuid"):
        regs = {r: int(el.get(r, "0"), 16) for r in REGISTERS}
        rows.append((int(el.get("eax_in", "0"), 16), int(el.get("ecx_in", "0"), 16), regs))
    return rows


def _json_stream(text: str) -> list[Any]:
    dec = json.JSONDecoder()
    out: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)


def _load_cputest(path: Path) -> Capture:
    expansion = None
    definitions = None
    for obj in _json_stream(path.read_text()):
        if obj.get("id") == "model-expansion" and "return" in obj:
            expansion = obj["return"]
        elif obj.get("id") == "definitions" and "return" in obj:
            definitions = obj["return"]
    return Capture(
        path=path,
        kind="cputest",
        passes={"kvm": Pass("kvm")},
        model_expansion=expansion,
        definitions=definitions,
        enabled=cpuid_rows(_sibling(path, "-enabled.xml")),
        disabled=cpuid_rows(_sibling(path, "-disabled.xml")),
        raw_cpuid=cpuid_rows(_sibling(path, ".xml")),
    )


def _load_replies(path: Path) -> Capture:
    """Command, blank line, reply, blank line...; a second qmp_capabilities starts the TCG pass."""
    messages = [json.loads(c) for c in path.read_text().split("\n\n") if c.strip()]
    passes: list[Pass] = []
    i = 0
    index = 0
    while i < len(messages):
        msg = messages[i]
        if "execute" not in msg:
            i += 1  # a greeting or an event
            continue
        if msg["execute"] == "qmp_capabilities":
            passes.append(Pass("kvm" if not passes else "tcg"))
        passes[-1].exchanges.append(
            Exchange(index, msg["execute"], msg.get("arguments") or {}, messages[i + 1])
        )
        index += 1
        i += 2
    return Capture(path=path, kind="replies", passes={p.accel: p for p in passes})


def load(path: Path) -> Capture:
    if path.name.endswith(".replies"):
        return _load_replies(path)
    if path.name.startswith(CPUID_PREFIX) and path.suffix == ".json":
        return _load_cputest(path)
    raise ValueError(f"not a capture this replay understands: {path}")


_VERSION_RE = re.compile(r'"qemu":\s*\{[^}]*\}', re.S)


def replies_version(path: Path) -> tuple[int, int, int]:
    """The ``query-version`` of a conversation without parsing the whole file (for ``-version``)."""
    with path.open() as f:
        head = f.read(4096)
    m = _VERSION_RE.search(head)
    if m is None:
        raise ValueError(f"{path.name}: no query-version reply near the top")
    q = json.loads("{" + m.group(0) + "}")["qemu"]
    return int(q["major"]), int(q["minor"]), int(q["micro"])


def host_expansion(cap: Capture, accel: str = "kvm") -> dict[str, Any] | None:
    """The captured expansion that describes the CPU a ``-cpu host`` (``max`` under TCG) gets.

    cputest: libvirt's full expansion. replies: the full expansion of
    ``host`` (KVM pass), which carries level/xlevel; the TCG pass has only
    static expansions of ``max``.
    """
    if cap.kind == "cputest":
        return cap.model_expansion if accel == "kvm" else None
    p = cap.passes.get(accel)
    if p is None:
        return None
    model = "host" if accel == "kvm" else "max"
    asks = [
        e
        for e in p.all("query-cpu-model-expansion")
        if (e.arguments.get("model") or {}).get("name") == model and "return" in e.reply
    ]
    asks.sort(key=lambda e: (e.arguments.get("type") != "full", bool(e.arguments["model"].get("props"))))
    return asks[0].reply["return"] if asks else None


def _brand(rows: list[CpuidRow]) -> str | None:
    by_leaf = {(leaf, sub): regs for leaf, sub, regs in rows}
    raw = b""
    for leaf in (0x80000002, 0x80000003, 0x80000004):
        regs = by_leaf.get((leaf, 0))
        if regs is None:
            return None
        raw += b"".join(regs[r].to_bytes(4, "little") for r in REGISTERS)
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip() or None


@dataclass(frozen=True)
class Identity:
    """The CPU as ``/proc/cpuinfo`` would name it."""

    vendor: str
    family: int
    model: int
    stepping: int
    model_name: str


def identity(cap: Capture) -> Identity:
    """From raw CPUID leaves 0, 1 and the brand string when the capture has them
    (cputest), else from the host expansion's vendor/family/model/stepping/model-id.

    Two routes on purpose: tests compare the probe's facts with the
    expansion, so for cputest hosts this is an independent decoding of CPUID.
    """
    rows = cap.raw_cpuid or []
    by_leaf = {(leaf, sub): regs for leaf, sub, regs in rows}
    if (0, 0) in by_leaf and (1, 0) in by_leaf:
        r0 = by_leaf[(0, 0)]
        vendor = b"".join(r0[r].to_bytes(4, "little") for r in ("ebx", "edx", "ecx")).decode()
        eax = by_leaf[(1, 0)]["eax"]
        base_family = (eax >> 8) & 0xF
        family = base_family + ((eax >> 20) & 0xFF if base_family == 0xF else 0)
        model = (eax >> 4) & 0xF
        if base_family in (0x6, 0xF):
            model |= ((eax >> 16) & 0xF) << 4
        name = _brand(rows)
        if name is not None:
            return Identity(vendor, family, model, eax & 0xF, name)
    exp = host_expansion(cap)
    if exp is None:
        raise ValueError(f"{cap.path.name}: neither raw CPUID nor a host expansion")
    props = exp["model"]["props"]
    return Identity(
        vendor=props["vendor"],
        family=props["family"],
        model=props["model"],
        stepping=props["stepping"],
        model_name=str(props["model-id"]).strip(),
    )
