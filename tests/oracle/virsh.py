"""The second opinion: Debian's ``virsh cpu-baseline`` (test driver, no daemon) on the same hosts.

``virsh cpu-baseline`` takes *host* CPU definitions: a model, a vendor and
features, no policies. The pair's inputs are guest CPUs (``-json.xml``,
with ``require``/``disable``), written against libvirt 11.3's tables, while
virsh reads its own release's ``/usr/share/libvirt/cpu_map`` (9.0 on Debian
12). So each host is rewritten for *that* cpu_map:

* the host's features (11.3's reading, expanded) are renamed through the
  QEMU spelling both tables share; names the older table lacks are dropped
  and recorded (virsh would refuse the whole file: "Unknown CPU feature");
* a host definition cannot say "model M without f", so the model is the
  ``-json.xml``'s if every feature it implies is on the host, else the
  richest model of the vendor that implies nothing the host lacks; the
  rest is listed feature by feature;
* virsh is asked to read each definition back (``--features`` on it
  alone): a definition is *faithful* when virsh sees exactly the host.

Where virsh errors, or its answer differs from libvirt 11.3's expected one
on the features virsh can name, the row says "oracles disagree": Debian's
libvirt is older than the test data, and that is not fleetcpu's failure.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .cpu_map import CpuMap, GuestCpu

SYSTEM_CPU_MAP = Path("/usr/share/libvirt/cpu_map")
URI = "test:///default"
TIMEOUT = 30.0


def available() -> bool:
    return shutil.which("virsh") is not None and (SYSTEM_CPU_MAP / "x86_features.xml").exists()


@cache
def version() -> str:
    res = subprocess.run(["virsh", "--version"], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    return res.stdout.strip() or res.stderr.strip()


@dataclass(frozen=True)
class Answer:
    """What one ``virsh cpu-baseline`` run said: its model and policies, or its error."""

    model: str | None
    required: tuple[str, ...]
    disabled: tuple[str, ...]
    error: str | None

    @property
    def features(self) -> frozenset[str]:
        return frozenset(self.required) - frozenset(self.disabled)

    def compact(self) -> str:
        """``Model +a +b -c``: the answer as an operator would read it."""
        if self.error is not None:
            return "error: " + self.error
        return " ".join(
            [self.model or "?", *(f"+{f}" for f in self.required), *(f"-{f}" for f in self.disabled)]
        )


def baseline(xml_text: str, *, features: bool) -> Answer:
    """Run virsh on a file of ``<cpu>`` definitions; ``features`` expands the model."""
    with tempfile.TemporaryDirectory(prefix="fleetcpu-virsh-") as tmp:
        path = Path(tmp) / "cpus.xml"
        path.write_text(xml_text)
        argv = ["virsh", "-c", URI, "cpu-baseline", str(path)] + (["--features"] if features else [])
        res = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if res.returncode != 0:
        error = res.stderr.strip().removeprefix("error: ") or f"exit {res.returncode}"
        return Answer(None, (), (), error)
    root = ET.fromstring(res.stdout)
    model = root.find("model")
    required = tuple(
        f.get("name", "") for f in root.findall("feature") if f.get("policy", "require") == "require"
    )
    disabled = tuple(f.get("name", "") for f in root.findall("feature") if f.get("policy") == "disable")
    return Answer(model.text if model is not None else None, required, disabled, None)


@dataclass(frozen=True)
class HostDefinition:
    """One host rewritten for virsh's cpu_map, and how faithfully virsh reads it back."""

    cpu: str
    model: str
    xml: str
    #: libvirt 11.3 names of the host's features that virsh's cpu_map cannot name.
    dropped: tuple[str, ...]
    #: virsh's reading of the definition alone equals the host (minus ``dropped``).
    faithful: bool
    #: what virsh read differently: ``+f`` it adds, ``-f`` it misses.
    readback_diff: tuple[str, ...]


def host_definition(cpu: str, guest: GuestCpu, new: CpuMap, old: CpuMap) -> HostDefinition:
    """The host CPU ``guest`` describes, as a host definition virsh's cpu_map can read."""
    names: set[str] = set()
    dropped = []
    for name in sorted(guest.features):
        spelt = old.libvirt_names.get(new.spell(name))
        if spelt is None:
            dropped.append(name)
        else:
            names.add(spelt)
    model = _model_for(guest, names, old)
    implied = old.flatten(model).features
    lines = ["<cpu>", "  <arch>x86_64</arch>", f"  <model>{model}</model>"]
    if guest.vendor:
        lines.append(f"  <vendor>{guest.vendor}</vendor>")
    lines += [f"  <feature name='{f}'/>" for f in sorted(names - implied)]
    xml = "\n".join([*lines, "</cpu>", ""])
    seen = baseline(xml, features=True)
    if seen.error is not None:
        return HostDefinition(cpu, model, xml, tuple(dropped), False, ("error: " + seen.error,))
    diff = tuple(
        [f"+{f}" for f in sorted(seen.features - names)] + [f"-{f}" for f in sorted(names - seen.features)]
    )
    return HostDefinition(cpu, model, xml, tuple(dropped), not diff, diff)


def _model_for(guest: GuestCpu, names: set[str], old: CpuMap) -> str:
    """The ``-json.xml``'s model if it implies nothing the host lacks, else the vendor's richest such."""

    def fits(model: str) -> bool:
        try:
            return old.flatten(model).features <= names
        except KeyError:
            return False

    if fits(guest.model):
        return guest.model
    same_vendor = [m for m in old.models if old.flatten(m).vendor == guest.vendor and fits(m)]
    if not same_vendor:
        raise ValueError(f"virsh's cpu_map has no {guest.vendor} model within this host's features")
    return min(same_vendor, key=lambda m: (-len(old.flatten(m).features), m))


@dataclass(frozen=True)
class Opinion:
    """virsh's baseline of one pair, and how it compares with libvirt 11.3's expected answer."""

    version: str
    hosts: tuple[HostDefinition, HostDefinition]
    answer: str
    model: str | None
    #: the answer expanded through virsh's own cpu_map, in fleetcpu's spelling.
    features: tuple[str, ...]
    verdict: str  # "agrees" | "oracles disagree"
    detail: str


def opinion(
    hosts: tuple[HostDefinition, HostDefinition], expected: frozenset[str], expected_model: str, old: CpuMap
) -> Opinion:
    """Ask virsh for the pair's baseline; compare on the features virsh's cpu_map can name.

    ``expected`` is libvirt 11.3's answer in fleetcpu's spelling.
    """
    text = "".join(h.xml for h in hosts)
    compact = baseline(text, features=False)
    expanded = baseline(text, features=True)
    if expanded.error is not None or compact.error is not None:
        error = expanded.error or compact.error
        return Opinion(
            version(), hosts, compact.compact(), None, (), "oracles disagree", f"virsh errs: {error}"
        )
    ours = old.to_qemu(set(expanded.features))
    want = expected & old.vocabulary
    extra, missing = sorted(ours - want), sorted(want - ours)
    unfaithful = [h.cpu for h in hosts if not h.faithful]
    notes = []
    if compact.model != expected_model:
        notes.append(f"names the model {compact.model}, libvirt 11.3 {expected_model}")
    if unfaithful:
        notes.append("virsh misreads " + ", ".join(unfaithful))
    if extra or missing:
        delta = " ".join([*(f"+{f}" for f in extra), *(f"-{f}" for f in missing)])
        detail = "; ".join([f"features differ from libvirt 11.3's: {delta}", *notes])
        return Opinion(
            version(),
            hosts,
            compact.compact(),
            compact.model,
            tuple(sorted(ours)),
            "oracles disagree",
            detail,
        )
    same = f"same {len(ours)} features as libvirt 11.3 (of those virsh can name)"
    return Opinion(
        version(),
        hosts,
        compact.compact(),
        compact.model,
        tuple(sorted(ours)),
        "agrees",
        "; ".join([same, *notes]),
    )
