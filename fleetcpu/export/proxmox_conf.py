"""``--format proxmox``: a ``cpu-models.conf`` entry (``/etc/pve/virtual-guest/``). Pure.

Proxmox VE builds ``-cpu`` itself from a custom model (qemu-server 9.2.6,
``PVE::QemuServer::CPUConfig::get_cpu_options``; tests/test_export_proxmox.py
restates each rule with its source line): the reported model, ``level=``,
then, sorted by name, the flags resolved in the order its own (``+lahf_lm``
for kvm64, ``+sep`` for kvm64/kvm32, ``-rdtscp`` for Opteron,
``+kvm_pv_unhalt,+kvm_pv_eoi`` under KVM on machine types >= 2.3), the
model's ``flags`` (later wins per name, and a different op prints
``warning: CPU flag/setting '+x' overwrites '-x'`` at every start),
``enforce`` (KVM only) and ``vendor=`` *forced from the reported model*
(GenuineIntel for ``pentium3``, none for the generic
``kvm64``/``qemu64``/``kvm32``/``qemu32``, which then get the host's vendor
under KVM); ``phys-bits=`` last. So:

* ``reported-model`` must be a name Proxmox accepts (``PVE_MODELS``), whose
  forced vendor is the pool's; among such names standing for a model the
  pool's probes judged usable on every member (the name itself, or the
  unversioned alias that stands for it on the pool's machine type) the one
  whose Proxmox flags the result contradicts least (each is an override
  warning at every start: ``-rdtscp`` for Opteron on a pool with rdtscp), then
  needing the fewest flags is taken, and its ``flags`` are exactly that
  model's ``enable``/``disable`` (so the guest gets exactly the pool's
  features, as with the named ``-cpu`` string);
* with no such model (this project's own host: only Intel-generic models are
  usable under its KVM, on an AMD pool), the generic ``kvm64`` is reported
  (under TCG, where a model keeps its own vendor, ``kvm64`` for Intel pools
  and ``qemu64``, QEMU's AMD generic model, otherwise) and ``flags`` names
  every feature: ``+`` for the result, ``-`` for every feature some member
  offers that the result lacks and for every feature of that model some
  member lacks (its ``unavailable-features``), so whatever the model holds
  is either in the result or switched off. With Proxmox's forced
  ``enforce`` that is exact or a refusal to start, never a silently
  different CPU;
* a flag Proxmox sets itself the way the result wants is not repeated; one
  it sets otherwise is overridden, under Proxmox's own spelling
  (``kvm_pv_unhalt``, ``lahf_lm``) so its override rule applies, and a
  comment says Proxmox will warn.

``level`` is the pool's (qemu-server 9.1.14 and later; xlevel has no
setting), ``phys-bits`` the smallest member's, ``hidden 0`` keeps the KVM
signature (the pool's KVM paravirtual features need it). Section format:
``cpu-model: <name>`` then tab-indented ``key value`` lines and no blank line
inside (a blank line ends the section); ``#`` lines are comments.
"""

from __future__ import annotations

import re

from ..baseline.choose import split_version
from ..baseline.types import Baseline, ModelVerdict
from ..libvirt.spell import qemu_view
from ..vocabulary import Accel
from .provenance import commentary, origin
from .rendered import Rendered

__all__ = [
    "PVE_MODELS",
    "PVE_SPELLING",
    "choose",
    "flags",
    "forced",
    "machine_version",
    "overridden",
    "render_proxmox",
    "section_name",
    "unavailable",
]

#: Reported models Proxmox VE accepts, with the vendor it forces ("" = none: the host's):
#: qemu-server 9.2.6's built-in list (CPUConfig.pm), without ``max``, ``host`` (not one CPU)
#: and the Icelake-Client names it reports as Icelake-Server.
PVE_MODELS: dict[str, str] = {
    **dict.fromkeys(
        (
            "486",
            "pentium",
            "pentium2",
            "pentium3",
            "coreduo",
            "core2duo",
            "Conroe",
            "Penryn",
            "Nehalem",
            "Nehalem-IBRS",
            "Westmere",
            "Westmere-IBRS",
            "SandyBridge",
            "SandyBridge-IBRS",
            "IvyBridge",
            "IvyBridge-IBRS",
            "Haswell",
            "Haswell-IBRS",
            "Haswell-noTSX",
            "Haswell-noTSX-IBRS",
            "Broadwell",
            "Broadwell-IBRS",
            "Broadwell-noTSX",
            "Broadwell-noTSX-IBRS",
            "Skylake-Client",
            "Skylake-Client-IBRS",
            "Skylake-Client-noTSX-IBRS",
            "Skylake-Client-v4",
            "Skylake-Server",
            "Skylake-Server-IBRS",
            "Skylake-Server-noTSX-IBRS",
            "Skylake-Server-v4",
            "Skylake-Server-v5",
            "Cascadelake-Server",
            "Cascadelake-Server-v2",
            "Cascadelake-Server-noTSX",
            "Cascadelake-Server-v4",
            "Cascadelake-Server-v5",
            "Cooperlake",
            "Cooperlake-v2",
            "KnightsMill",
            "Icelake-Server",
            "Icelake-Server-noTSX",
            "Icelake-Server-v3",
            "Icelake-Server-v4",
            "Icelake-Server-v5",
            "Icelake-Server-v6",
            "Icelake-Server-v7",
            "SapphireRapids",
            "SapphireRapids-v2",
            "SapphireRapids-v3",
            "SapphireRapids-v4",
            "GraniteRapids",
            "GraniteRapids-v2",
            "GraniteRapids-v3",
            "SierraForest",
            "SierraForest-v2",
            "SierraForest-v3",
            "ClearwaterForest",
        ),
        "GenuineIntel",
    ),
    **dict.fromkeys(
        (
            "athlon",
            "phenom",
            "Opteron_G1",
            "Opteron_G2",
            "Opteron_G3",
            "Opteron_G4",
            "Opteron_G5",
            "EPYC",
            "EPYC-IBPB",
            "EPYC-v3",
            "EPYC-v4",
            "EPYC-v5",
            "EPYC-Rome",
            "EPYC-Rome-v2",
            "EPYC-Rome-v3",
            "EPYC-Rome-v4",
            "EPYC-Rome-v5",
            "EPYC-Milan",
            "EPYC-Milan-v2",
            "EPYC-Milan-v3",
            "EPYC-Genoa",
            "EPYC-Genoa-v2",
            "EPYC-Turin",
        ),
        "AuthenticAMD",
    ),
    **dict.fromkeys(("kvm32", "kvm64", "qemu32", "qemu64"), ""),
}
#: How ``fleetcpu.baseline.choose`` words an ``unusable`` block's detail (a test holds it).
_UNAVAILABLE = "unavailable features: "
#: QEMU feature -> the spelling Proxmox itself uses when it forces the flag.
PVE_SPELLING = {"kvm-pv-unhalt": "kvm_pv_unhalt", "kvm-pv-eoi": "kvm_pv_eoi", "lahf-lm": "lahf_lm"}


def machine_version(machine_type: str) -> tuple[int, int]:
    """``pc-q35-7.2`` -> (7, 2); an unversioned name is the newest (Proxmox's version guard)."""
    m = re.search(r"-(\d+)\.(\d+)$", machine_type)
    return (int(m.group(1)), int(m.group(2))) if m else (10**6, 0)


def forced(model: str, accel: str, machine_type: str) -> dict[str, bool]:
    """Features Proxmox turns on (True) or off (False) itself for this reported model, QEMU
    spelling (qemu-server ``get_pve_cpu_flags``, a Linux guest)."""
    out: dict[str, bool] = {}
    if model == "kvm64":
        out["lahf-lm"] = True
    if model in ("kvm64", "kvm32"):
        out["sep"] = True
    if model.startswith("Opteron"):
        out["rdtscp"] = False
    if accel == Accel.KVM and machine_version(machine_type) >= (2, 3):
        out["kvm-pv-unhalt"] = out["kvm-pv-eoi"] = True
    return out


def overridden(b: Baseline, model: str) -> list[str]:
    """Proxmox's own flags the pool's result contradicts: the entry must override them, and
    Proxmox then warns at every start."""
    result = set(b.features)
    return sorted(f for f, on in forced(model, b.accel, b.machine_type).items() if on != (f in result))


def _compatible(name: str, b: Baseline) -> bool:
    vendor = PVE_MODELS.get(name)
    if vendor is None:
        return False
    return vendor == b.vendor if vendor else b.accel == Accel.KVM


def _fallback(b: Baseline) -> str:
    if b.accel == Accel.KVM:
        return "kvm64"  # no vendor forced: KVM gives the guest the host's, the pool's
    # Under TCG the model's own vendor applies: QEMU's kvm64 is Intel, qemu64 AMD.
    return "kvm64" if b.vendor == "GenuineIntel" else "qemu64"


def choose(b: Baseline) -> tuple[str, ModelVerdict | None]:
    """(reported model, the pool's verdict it stands for, or None for the fallback).

    Fewest of Proxmox's own flags to override first (each prints a warning at
    every start), then fewest explicit flags; the fallback with every feature
    explicit only when no model fits, or when it overrides fewer.
    """
    fallback = _fallback(b)
    options: list[tuple[tuple[int, int, int, int, str], str, ModelVerdict | None]] = [
        ((len(overridden(b, fallback)), 1, 0, 0, fallback), fallback, None)
    ]
    for v in b.models:
        if not v.candidate:
            continue
        names = [v.model, split_version(v.model)[0]]
        for name in dict.fromkeys(names):
            if _compatible(name, b) and qemu_view(b, name) == v:
                key = (len(overridden(b, name)), 0, v.cost, -v.own_features, name)
                options.append((key, name, v))
    _, name, verdict = min(options, key=lambda o: o[0])
    return name, verdict


def unavailable(b: Baseline, model: str) -> set[str]:
    """The model's features some member lacks (its ``unusable`` blocks), alias followed.

    With these and every feature some member offers, a ``-`` list covers
    everything the model could add on any member.
    """
    verdicts = {v.model: v for v in b.models}
    out: set[str] = set()
    names = [model]
    v = verdicts.get(model)
    if v is not None:
        names += [
            blk.detail[len("alias of ") :].split(":", 1)[0]
            for blk in v.blocks
            if blk.reason == "alias" and blk.detail.startswith("alias of ")
        ]
    for name in names:
        for blk in verdicts[name].blocks if name in verdicts else ():
            if blk.reason == "unusable" and blk.detail.startswith(_UNAVAILABLE):
                out.update(blk.detail[len(_UNAVAILABLE) :].split())
    return out


def flags(b: Baseline, model: str, verdict: ModelVerdict | None) -> list[str]:
    """``+f``/``-f`` flags, sorted (``+`` first): none Proxmox sets itself the same way, and
    those it sets otherwise overridden, in its own spelling so its override rule applies."""
    result = set(b.features)
    if verdict is not None:
        plus, minus = set(verdict.enable), set(verdict.disable)
    else:
        plus = set(result)
        minus = ({blk.feature for blk in b.blocked} | unavailable(b, model)) - result
    for name, on in forced(model, b.accel, b.machine_type).items():
        plus.discard(name)
        minus.discard(name)
        if on != (name in result):
            (plus if name in result else minus).add(name)
    return [f"+{PVE_SPELLING.get(f, f)}" for f in sorted(plus)] + [
        f"-{PVE_SPELLING.get(f, f)}" for f in sorted(minus)
    ]


def section_name(pool: str) -> str:
    return "fleetcpu-" + (re.sub(r"[^A-Za-z0-9_.-]", "-", pool) or "pool")


def render_proxmox(b: Baseline) -> Rendered:
    model, verdict = choose(b)
    notes = [*origin(b)]
    if verdict is not None:
        notes.append(
            f"reported-model {model} is {verdict.model} on {b.machine_type} as the "
            "pool's probes recorded it; flags are its exact differences to the pool"
        )
    else:
        exact = (
            "exact, or a refusal to start under Proxmox's enforce"
            if b.accel == Accel.KVM
            else "Proxmox adds enforce under KVM only: under TCG a feature TCG cannot "
            "emulate is dropped, never added"
        )
        notes.append(
            f"no model Proxmox accepts stands for a model usable on every member with "
            f"the pool's vendor ({b.vendor or 'unknown'}): {model} with every feature "
            f"explicit ({exact})"
        )
    notes += [f"use: qm set <vmid> --cpu custom-{section_name(b.pool)} (machine type {b.machine_type})"]
    own = forced(model, b.accel, b.machine_type)
    if own:
        notes.append(
            "Proxmox itself sets "
            + ", ".join(f"{'+' if on else '-'}{PVE_SPELLING.get(f, f)}" for f, on in sorted(own.items()))
            + f" for {model}"
            + (" under KVM" if b.accel == Accel.KVM else "")
            + ": not repeated here"
        )
    clash = overridden(b, model)
    if clash:
        notes.append(
            "overridden here, as the pool's result differs (every start then prints "
            "Proxmox's 'warning: CPU flag/setting ... overwrites ...'; no other model "
            "Proxmox accepts fits with fewer): " + ", ".join(PVE_SPELLING.get(f, f) for f in clash)
        )
    if b.scalars.level is not None:
        notes.append(
            f"level {b.scalars.level} is the pool's (qemu-server 9.1.14 or later; an "
            "older one refuses the entry: without the line the guest gets "
            f"{model}'s level); Proxmox cannot set xlevel: the guest gets {model}'s, "
            "raised by QEMU to what the features need"
        )
    lines = [f"# {n}" for n in notes]
    lines.append(f"cpu-model: {section_name(b.pool)}")
    flag_list = flags(b, model, verdict)
    if flag_list:
        lines.append("\tflags " + ";".join(flag_list))
    if b.scalars.level is not None:
        lines.append(f"\tlevel {b.scalars.level}")
    if b.scalars.phys_bits is not None:
        lines.append(f"\tphys-bits {b.scalars.phys_bits}")
    lines += ["\thidden 0", f"\treported-model {model}"]
    return Rendered("\n".join(lines) + "\n", commentary(b))
