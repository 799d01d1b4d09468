"""One real host pair: libvirt's expected baseline against fleetcpu's, feature by feature.

libvirt's ``x86_64-cpuid-baseline-<A>+<B>.xml`` is its answer for two real
hosts whose inputs are the two CPUs' ``-json.xml`` (libvirt's reading of the
same QEMU captures the replay hosts answer from). fleetcpu's answer is
``compute_baseline`` over two ``Member``s built in process from those
captures (``tests/support/replay/members.py``), KVM, default policy. Both are sets of
features in fleetcpu's spelling; every difference gets exactly one verdict:

* ``known``       a row of the caller's table of known correct differences,
                  whose own check against the data holds for this feature
* ``policy``      libvirt keeps it, both hosts offer it, and our ``Baseline.blocked``
                  gives a policy reason (nested virtualisation off, ...); our own
                  reason is looked at before the table
* ``host-lacks``  libvirt keeps it, and a host does not offer it (by our reading
                  *and* libvirt's): we are right to drop it
* ``larger``      we keep it, both hosts offer it, libvirt drops it
* ``fail``        we enable a feature a host lacks; we drop one both hosts
                  offer without a policy reason; the two readings of a host
                  disagree; or a known row's check does not hold

"A host offers" is judged by both readings of its capture: fleetcpu's
(``Member.offered``) and libvirt's (its ``-json.xml`` expanded), the latter
only for features libvirt can name. A safe baseline satisfies both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from fleetcpu.baseline import Baseline, FeatureBlock, Member, Policy, compute_baseline

from ..support.realdata import CPU_MAP, CPUTESTDATA
from ..support.replay import members as replay
from .cpu_map import CpuMap, GuestCpu, load

Side = Literal["libvirt-only", "ours-only"]
NOT_OFFERED = "not-offered"


@dataclass(frozen=True)
class Pair:
    """A pair file and the two CPUs libvirt's ``cputest.c`` feeds it (``x86_64-cpuid-<CPU>``)."""

    name: str
    a: str
    b: str

    @property
    def hosts(self) -> tuple[str, str]:
        return (self.a, self.b)


#: libvirt's test program pairs them so; the files themselves do not say.
PAIRS: tuple[Pair, ...] = (
    Pair("Broadwell-IBRS+Cascadelake", "Xeon-E5-2623-v4", "Xeon-Platinum-8268"),
    Pair("Cascadelake+Skylake-IBRS", "Xeon-Platinum-8268", "Xeon-Gold-6130"),
    Pair("Cascadelake+Skylake", "Xeon-Platinum-9242", "Xeon-Gold-6148"),
    Pair("Haswell-noTSX-IBRS+Broadwell", "Xeon-E5-2609-v3", "Xeon-E5-2650-v4"),
    Pair("Haswell-noTSX-IBRS+Skylake-IBRS", "Xeon-E5-2609-v3", "Xeon-Gold-6130"),
    Pair("Haswell-noTSX-IBRS+Skylake", "Xeon-E5-2609-v3", "Xeon-Gold-6148"),
    Pair("Ryzen+Rome", "Ryzen-7-1800X-Eight-Core", "Ryzen-9-3900X-12-Core"),
    Pair("Skylake-Client+Server", "Core-i5-6600", "Xeon-Gold-6148"),
)


def baseline_file(pair: Pair) -> str:
    return f"x86_64-cpuid-baseline-{pair.name}.xml"


def host_file(cpu: str) -> str:
    return f"x86_64-cpuid-{cpu}-json.xml"


@dataclass(frozen=True)
class View:
    """Everything known about one pair, for judging (not serialised)."""

    pair: Pair
    members: tuple[Member, Member]
    baseline: Baseline
    libvirt: GuestCpu
    cpu_map: CpuMap
    #: libvirt's reading of each host: its ``-json.xml`` expanded, fleetcpu spelling.
    readings: tuple[frozenset[str], frozenset[str]]

    @cached_property
    def ours(self) -> frozenset[str]:
        return frozenset(self.baseline.features)

    @cached_property
    def theirs(self) -> frozenset[str]:
        return self.cpu_map.to_qemu(self.libvirt.features)

    @property
    def nameable(self) -> frozenset[str]:
        """What libvirt (this cpu_map) can name at all."""
        return self.cpu_map.vocabulary

    def lacking(self, feature: str) -> list[str]:
        """Hosts that do not offer ``feature`` by fleetcpu's reading."""
        return [m.host for m in self.members if feature not in m.offered]

    def lacking_for_libvirt(self, feature: str) -> list[str]:
        """Hosts libvirt's reading says lack ``feature`` (only for names libvirt knows)."""
        if feature not in self.nameable:
            return []
        return [m.host for m, r in zip(self.members, self.readings, strict=True) if feature not in r]

    def policy_block(self, feature: str) -> FeatureBlock | None:
        return next(
            (b for b in self.baseline.blocked if b.feature == feature and b.reason != NOT_OFFERED), None
        )


@dataclass(frozen=True)
class Known:
    """A known correct difference: the side, the features it covers, why, and a check on the data.

    ``check(feature, view)`` returns None when the reason holds for that
    feature in that pair, else what contradicts it: a row is never taken on
    trust, and a row no pair needs is stale.
    """

    label: str
    side: Side
    covers: Callable[[str], bool]
    reason: str
    check: Callable[[str, View], str | None]


@dataclass(frozen=True)
class Difference:
    feature: str
    side: Side
    verdict: Literal["known", "policy", "host-lacks", "larger", "fail"]
    why: str
    known: str | None = None


@dataclass(frozen=True)
class PairResult:
    """A pair judged: JSON-ready (``dataclasses.asdict``), rendered by ``gen``."""

    pair: str
    hosts: tuple[str, str]
    libvirt_model: str
    our_model: str
    our_model_note: str
    vendor: str | None
    equal: int
    ours_total: int
    libvirt_total: int
    differences: tuple[Difference, ...]
    failures: tuple[str, ...]
    known_used: tuple[str, ...]
    virsh: dict[str, Any] | None = field(default=None)

    @property
    def status(self) -> str:
        """``equal`` modulo known rows, else ``larger`` / ``smaller`` / both."""
        verdicts = {d.verdict for d in self.differences}
        if "fail" in verdicts or self.failures:
            return "FAILS"
        parts = []
        if "larger" in verdicts:
            parts.append("larger")
        if verdicts & {"policy", "host-lacks"}:
            parts.append("smaller")
        return " and ".join(parts) or "equal"


def view(pair: Pair, policy: Policy | None = None, *, nested: bool = False) -> View:
    """The pair's members (KVM, real captures), our baseline under ``policy``, libvirt's answer."""
    cmap = load(CPU_MAP)
    members = (replay.member(pair.a, nested=nested), replay.member(pair.b, nested=nested))
    baseline = compute_baseline(pair.name, "pc-q35-replay", "kvm", members, policy)
    readings = tuple(cmap.to_qemu(cmap.expand(CPUTESTDATA / host_file(c)).features) for c in pair.hosts)
    assert len(readings) == 2
    return View(
        pair,
        members,
        baseline,
        cmap.expand(CPUTESTDATA / baseline_file(pair)),
        cmap,
        (readings[0], readings[1]),
    )


def _our_model_note(v: View) -> str:
    """Why our string starts from ``base``, from the data: a member without recorded models."""
    if v.baseline.model != "base":
        return ""
    blind = [m.host for m in v.members if not any(c.features for c in m.models)]
    if blind:
        return "no query-cpu-definitions captured on " + ", ".join(blind)
    return next(
        (n.message for n in v.baseline.warnings if n.code == "no-common-model"),
        "no named model is a candidate on both hosts",
    )


def _classify(f: str, side: Side, v: View, table: Sequence[Known]) -> Difference:
    """One difference's verdict; our own policy reason comes before any row of the table."""
    block = v.policy_block(f)
    if side == "libvirt-only" and block is not None and not v.lacking(f):
        return Difference(f, side, "policy", f"{block.reason}: {block.message}")
    row = next((k for k in table if k.side == side and k.covers(f)), None)
    if row is not None:
        contradiction = row.check(f, v)
        if contradiction is not None:
            return Difference(
                f, side, "fail", f"known row {row.label!r} does not hold: {contradiction}", row.label
            )
        return Difference(f, side, "known", row.reason, row.label)
    lacking = v.lacking(f)
    if side == "ours-only":
        if lacking:
            return Difference(f, side, "fail", f"we enable it; {', '.join(lacking)} does not offer it")
        if v.lacking_for_libvirt(f):
            return Difference(
                f,
                side,
                "fail",
                f"we enable it; libvirt reads {', '.join(v.lacking_for_libvirt(f))} without it",
            )
        return Difference(f, side, "larger", "offered by both hosts; libvirt's baseline drops it")
    if not lacking:
        return Difference(f, side, "fail", "both hosts offer it and we drop it without a policy reason")
    read_with = [h for h in lacking if h not in v.lacking_for_libvirt(f)]
    if read_with and f in v.nameable:
        return Difference(
            f,
            side,
            "fail",
            f"the readings disagree: libvirt reads {', '.join(read_with)} with it, fleetcpu without",
        )
    return Difference(f, side, "host-lacks", f"not offered by {', '.join(lacking)}")


def judge(v: View, table: Sequence[Known]) -> PairResult:
    """Classify every difference and run the two safety checks on the whole result."""
    failures = []
    unsafe = set()
    for f in sorted(v.ours):
        if v.lacking(f):
            failures.append(f"we enable {f}, which {', '.join(v.lacking(f))} does not offer")
        elif v.lacking_for_libvirt(f):
            failures.append(f"we enable {f}; libvirt reads {', '.join(v.lacking_for_libvirt(f))} without it")
        else:
            continue
        unsafe.add(f)
    vendor = v.cpu_map.vendor_string(v.libvirt.vendor)
    if vendor != v.baseline.vendor:
        failures.append(f"vendor: libvirt says {vendor}, we say {v.baseline.vendor}")
    diffs = [_classify(f, "ours-only", v, table) for f in sorted(v.ours - v.theirs)]
    diffs += [_classify(f, "libvirt-only", v, table) for f in sorted(v.theirs - v.ours)]
    failures += [
        f"{d.side} {d.feature}: {d.why}" for d in diffs if d.verdict == "fail" and d.feature not in unsafe
    ]
    return PairResult(
        pair=v.pair.name,
        hosts=v.pair.hosts,
        libvirt_model=v.libvirt.model,
        our_model=v.baseline.model,
        our_model_note=_our_model_note(v),
        vendor=v.baseline.vendor,
        equal=len(v.ours & v.theirs),
        ours_total=len(v.ours),
        libvirt_total=len(v.theirs),
        differences=tuple(diffs),
        failures=tuple(failures),
        known_used=tuple(sorted({d.known for d in diffs if d.known and d.verdict == "known"})),
    )
