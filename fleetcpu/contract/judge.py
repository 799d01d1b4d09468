"""The one rule: can host H start CPU string S on machine type M, with every feature? Pure.

docs/contract.md states the rule in words; this is the rule. ``adopt``,
compliance on every ``collect``/``import`` and ``status`` call it, and the
guests work (can guest G move to host H?) is meant to call it too.

Every answer is one of three, and ``undecided`` is never rounded up:

* ``compliant``: the stored data proves H's QEMU starts S on M under the
  accelerator with ``enforce``, and (when the adopted feature set is known)
  the guest gets exactly that set;
* ``non-compliant``, with a reason: ``machine-type-missing`` (H's QEMU does
  not list M), ``model-unusable`` (H's QEMU does not know the model, or
  cannot run it at all), ``features-lacking`` (features S needs that H
  does not offer, named), ``model-differs`` (H's QEMU defines the model
  so that S gives another feature set), ``vendor-differs``;
* ``undecided``, with why: the data cannot say (M not probed, no model list,
  the model's features not recorded, a property fleetcpu does not judge).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..baseline.member import offered_from
from ..baseline.member import vocabulary as vocabulary_of
from ..probe.document import CpuModel, MachineInfo, MachineProbe
from ..vocabulary import State
from .cpu_string import BOOLEAN, CpuString

__all__ = [
    "COMPLIANT",
    "FREE_PROPS",
    "NON_COMPLIANT",
    "REASONS",
    "RULE_REVISION",
    "UNDECIDED",
    "HostCpu",
    "Judge",
    "Verdict",
    "judge",
]

#: The judging rule's revision, stored with every verdict (``compliance.rule``). Raise it
#: whenever what the rule answers for the same stored data changes (its checks, or the
#: probes collect hands it): ``status`` then judges again rather than take older
#: verdicts. 1: issue 22's rule (its memo could answer for a freed probe's reused id);
#: 2: the memo holds the probe it judged, collect judges the probes the store keeps.
RULE_REVISION = 2

#: The rule's three answers (``vocabulary.State`` holds them with the states it cannot give).
COMPLIANT = State.COMPLIANT
NON_COMPLIANT = State.NON_COMPLIANT
UNDECIDED = State.UNDECIDED

#: Why a host is non-compliant (closed set, shared by table, JSON and Prometheus).
REASONS = ("machine-type-missing", "model-unusable", "features-lacking", "model-differs", "vendor-differs")

#: Properties QEMU sets whatever the host offers: values, not capabilities.
FREE_PROPS = frozenset(
    (
        "family",
        "model",
        "stepping",
        "level",
        "xlevel",
        "xlevel2",
        "min-level",
        "min-xlevel",
        "model-id",
        "enforce",
        "check",
        "l3-cache",
        "full-cpuid-auto-level",
        "migratable",
    )
)


@dataclass(frozen=True)
class Verdict:
    """One host's answer for one CPU string and machine type."""

    state: str
    reason: str | None = None
    lacking: tuple[str, ...] = ()
    detail: str = ""
    #: model-differs: features the host's definition would add beyond the adopted set.
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostCpu:
    """What the store (or a probe document) holds about one host, for one accelerator."""

    host: str
    accel: str
    #: Per probed machine type (versioned names), the probe's records.
    machines: Mapping[str, MachineProbe]
    #: The host's QEMU machine list (``query-machines``); None when not recorded.
    machine_list: tuple[MachineInfo, ...] | None = None
    #: /proc/cpuinfo's vendor, used when the vCPU and expansions do not say.
    cpu_vendor: str | None = None


def _vendor(probe: MachineProbe, fallback: str | None) -> str | None:
    if probe.vcpu.vendor:
        return probe.vcpu.vendor
    for exp in (probe.full_expansion, probe.static_expansion):
        value = exp.props.get("vendor") if exp is not None else None
        if isinstance(value, str) and value:
            return value
    return fallback


def _phys_bits(probe: MachineProbe) -> int | None:
    return probe.vcpu.phys_bits


def _listed(machine_list: tuple[MachineInfo, ...], machine_type: str) -> bool:
    return any(machine_type in (m.name, m.alias) for m in machine_list)


def _no(reason: str, detail: str, lacking: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> Verdict:
    return Verdict(NON_COMPLIANT, reason, lacking, detail, extra)


def _undecided(detail: str) -> Verdict:
    return Verdict(UNDECIDED, None, (), detail)


@dataclass
class Judge:
    """The rule for one CPU string, adopted feature set and machine type, memoised per probe.

    Hosts of one CPU generation share one frozen ``MachineProbe`` (the store
    and collect's decode cache hand them the same object), so a 10,000-host
    pool of five CPU types costs five judgements. The memo is keyed by ``id``
    and keeps a weak reference to the probe it judged: collect drops each
    document once stored, and a probe decoded later often lands at a freed
    one's address, so a hit counts only when it is that very probe (a strong
    reference would keep up to 4,096 probes' records alive through a run).
    """

    cpu: CpuString
    machine_type: str
    accel: str
    #: The feature set the guest must get; None judges only "does it start".
    expected: frozenset[str] | None = None
    _memo: dict[tuple[int, str | None], tuple[weakref.ref[MachineProbe], Verdict]] = field(
        default_factory=dict, repr=False
    )

    def __call__(self, host: HostCpu) -> Verdict:
        probe = host.machines.get(self.machine_type)
        if probe is None:
            if host.machine_list is not None and not _listed(host.machine_list, self.machine_type):
                return _no("machine-type-missing", f"its QEMU does not list machine type {self.machine_type}")
            return _undecided(
                f"machine type {self.machine_type} was not probed on this host"
                + ("" if host.machine_list is not None else " (and its QEMU's machine list is not recorded)")
            )
        vendor = _vendor(probe, host.cpu_vendor)
        key = (id(probe), vendor)
        hit = self._memo.get(key)
        if hit is not None and hit[0]() is probe:
            return hit[1]
        if len(self._memo) > 4096:
            self._memo.clear()
        found = self._judge(probe, vendor)
        self._memo[key] = (weakref.ref(probe), found)
        return found

    def _judge(self, probe: MachineProbe, vendor: str | None) -> Verdict:  # noqa: PLR0911
        """The rule, step by step; each early return is one documented outcome."""
        cpu = self.cpu
        if probe.accel != self.accel:
            return _undecided(f"{self.machine_type} was probed under {probe.accel}, not {self.accel}")
        if probe.static_expansion is None and probe.full_expansion is None:
            return _undecided(f"its probe of {self.machine_type} recorded no host CPU expansion")
        offered = offered_from(probe.static_expansion, probe.full_expansion)
        # The full expansion names every feature property this QEMU has, on or off; the
        # static one adds nothing QEMU lacks. The baseline's chooser uses the same union.
        vocabulary = vocabulary_of(probe) if probe.full_expansion is not None else None
        by_name = {m.name: m for m in probe.models}
        if not by_name:
            return _undecided("its QEMU's model list (query-cpu-definitions) is not recorded")
        entry = by_name.get(cpu.model)
        if entry is None:
            return _no("model-unusable", f"its QEMU does not know CPU model {cpu.model}")
        # Properties first: a wrong vendor or an unjudged property decides before features.
        verdict = self._props(probe, vendor)
        if verdict is not None:
            return verdict
        unknown = sorted(
            n for n in cpu.enabled | cpu.disabled if vocabulary is not None and n not in vocabulary
        )
        if unknown:
            return _no(
                "model-unusable",
                f"its QEMU knows no feature named {', '.join(unknown)} (it would refuse the string)",
                tuple(unknown),
            )
        lacking = set(entry.unavailable_features) - cpu.disabled
        lacking |= cpu.enabled - offered
        if "type" in lacking:  # QEMU's marker for "this accelerator cannot run the model at all"
            return _no(
                "model-unusable", f"{cpu.model} cannot run under {self.accel} on it", tuple(sorted(lacking))
            )
        if lacking:
            return _no("features-lacking", "lacks " + ", ".join(sorted(lacking)), tuple(sorted(lacking)))
        if self.expected is None:
            return Verdict(COMPLIANT, detail="starts it")
        own = _model_features(entry, by_name) if not cpu.custom else frozenset()
        if own is None:
            return _undecided(
                f"its QEMU's definition of {cpu.model} on {self.machine_type} is "
                "not recorded, so the features a guest gets cannot be checked"
            )
        got = (own - cpu.disabled) | cpu.enabled
        if got != self.expected:
            short = tuple(sorted(self.expected - got))
            extra = tuple(sorted(got - self.expected))
            return _no(
                "model-differs",
                f"its QEMU's {cpu.model} gives other features: "
                + "; ".join(
                    x
                    for x in (
                        f"without {', '.join(short)}" if short else "",
                        f"with {', '.join(extra)}" if extra else "",
                    )
                    if x
                ),
                short,
                extra,
            )
        return Verdict(COMPLIANT, detail="starts it with every adopted feature")

    def _props(self, probe: MachineProbe, vendor: str | None) -> Verdict | None:
        for key, value in self.cpu.props:
            if key in FREE_PROPS:
                continue
            if key == "vendor":
                if vendor is None:
                    return _undecided("its CPU vendor is not recorded")
                if vendor != value:
                    return _no("vendor-differs", f"its CPU is {vendor}, the contract {value}")
            elif key == "phys-bits":
                host_bits = _phys_bits(probe)
                if host_bits is None or not value.isdigit():
                    return _undecided("its physical address width is not recorded")
                if int(value) > host_bits:
                    return _no(
                        "features-lacking", f"phys-bits {value} exceeds its {host_bits}", ("phys-bits",)
                    )
            elif BOOLEAN.get(value.lower()) is False:
                continue  # switching a property off asks nothing of the host
            else:
                return _undecided(f"fleetcpu does not record what {key}={value} needs of a host")
        return None


def _model_features(entry: CpuModel, by_name: Mapping[str, CpuModel]) -> frozenset[str] | None:
    """What the model (or the version an alias resolves to here) enables, if recorded."""
    if entry.features is not None:
        return frozenset(entry.features)
    if entry.alias_of is not None:
        target = by_name.get(entry.alias_of)
        if target is not None and target.features is not None:
            return frozenset(target.features)
    return None


def judge(
    cpu: CpuString, machine_type: str, accel: str, host: HostCpu, expected: frozenset[str] | None = None
) -> Verdict:
    """One host, once: ``Judge(cpu, machine_type, accel, expected)(host)``."""
    return Judge(cpu, machine_type, accel, expected)(host)
