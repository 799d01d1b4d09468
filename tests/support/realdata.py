"""Readers for ../shared/realdata (libvirt's and libcpuid's captures of real hosts).

The data is read where it lies at test time and never copied into the repo.
These helpers only split files into JSON messages; interpreting them is the
product's decode layer's job.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..conftest import REALDATA

LIBVIRT = REALDATA / "libvirt"
CPUTESTDATA = LIBVIRT / "cputestdata"
CAPS = LIBVIRT / "qemucapabilitiesdata"
CPU_MAP = LIBVIRT / "cpu_map"


def replies_files() -> list[Path]:
    return sorted(CAPS.glob("caps_*.replies"))


def cputest_json_files() -> list[Path]:
    return sorted(CPUTESTDATA.glob("x86_64-cpuid-*.json"))


def cpu_name(path: Path) -> str:
    """``x86_64-cpuid-Xeon-Gold-6148.json`` -> ``Xeon-Gold-6148``."""
    stem = path.name.removeprefix("x86_64-cpuid-")
    return re.sub(r"(-(enabled|disabled|host|guest|json))?\.(xml|json)$", "", stem)


@dataclass(frozen=True)
class Exchange:
    """One command of a libvirt QMP conversation and QEMU's reply to it."""

    execute: str
    arguments: dict[str, Any]
    reply: dict[str, Any]
    index: int

    @property
    def ok(self) -> bool:
        return "return" in self.reply


def conversation(path: Path) -> list[Exchange]:
    """A ``.replies`` file: command, blank line, reply, blank line, ... (KVM pass first, then TCG)."""
    chunks = [c for c in path.read_text().split("\n\n") if c.strip()]
    messages = [json.loads(c) for c in chunks]
    out: list[Exchange] = []
    i = 0
    while i < len(messages):
        msg = messages[i]
        if "execute" in msg:
            reply = messages[i + 1]
            out.append(Exchange(msg["execute"], msg.get("arguments") or {}, reply, len(out)))
            i += 2
        else:
            i += 1  # a greeting or an event
    return out


def json_stream(path: Path) -> Iterator[dict[str, Any]]:
    """cputestdata ``.json``: concatenated JSON objects (pretty-printed, no separators)."""
    text = path.read_text()
    dec = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        obj, pos = dec.raw_decode(text, pos)
        yield obj


def cputest_replies(path: Path) -> dict[str, Any]:
    """id -> return value (``model-expansion``, and ``definitions`` for about half the CPUs)."""
    return {obj["id"]: obj["return"] for obj in json_stream(path) if "id" in obj and "return" in obj}


def cpuid_rows(path: Path) -> list[tuple[int, int, dict[str, int]]]:
    """``-enabled.xml`` / ``-disabled.xml`` / ``.xml``: (leaf, subleaf, {eax..edx}) rows."""
    if not path.exists():
        return []
    root = ET.parse(path).getroot()
    rows = []
    for el in root.iter("cpuid"):
        regs = {r: int(el.get(r, "0"), 16) for r in ("eax", "ebx", "ecx", "edx")}
        rows.append((int(el.get("eax_in", "0"), 16), int(el.get("ecx_in", "0"), 16), regs))
    return rows
