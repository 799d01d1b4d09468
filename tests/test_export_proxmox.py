"""``--format proxmox`` through Proxmox VE's own rules: the ``-cpu`` qemu-server would build.

Proxmox does not run here, so its rules are restated from its code, each
with its source line (``RULES``), from qemu-server 9.2.6 (``QEMU_SERVER``;
read from proxmox/qemu-server, not copied). ``pve_cpu`` applies them to an
entry: the ``-cpu`` string ``get_cpu_options`` would hand QEMU, and the
``warning: CPU flag/setting ... overwrites ...`` lines ``resolve_cpu_flags``
would print at every start. Then:

* every entry parses under the restated schema (flag pattern,
  ``reported-model`` enum, ``level``, ``phys-bits``), pins the pool's
  ``level``, and names no flag Proxmox sets itself: a redundant one says
  nothing, a contrary one prints an override warning at every start;
* this host's pool (a live probe, KVM and its TCG twin): that ``-cpu``
  starts on the real QEMU with ``enforce`` (which Proxmox adds under KVM
  only: the TCG twin adds it itself) and has the custom string's
  ``feature-words``, vendor, ``level`` and ``phys-bits``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetcpu.baseline import Baseline
from fleetcpu.export.proxmox_conf import PVE_MODELS

from .test_export import ALL_POOLS, export, pools, proxmox_entry
from .test_export_live import Live, live, nothing_filtered, vcpu  # noqa: F401 - live: fixture

#: Where the rules below were read.
QEMU_SERVER = "qemu-server 9.2.6 (github.com/proxmox/qemu-server e6352be, 2026-08-17)"
CPUCONFIG = "src/PVE/QemuServer/CPUConfig.pm"
CPUFLAGS = "src/PVE/QemuServer/CPUFlags.pm"


@dataclass(frozen=True)
class Rule:
    what: str
    source: str


#: CPUConfig.pm's rules for a custom model (``cpu-models.conf``), as ``pve_cpu`` applies them.
RULES: dict[str, Rule] = {
    "flags": Rule(
        "a custom model's flags are ';'-separated ([+-])([a-zA-Z0-9\\-_\\.]+): any "
        "flag QEMU knows; the whitelist (supported_cpu_flags_names) binds only "
        "VM-specific flags",
        f"{CPUCONFIG}:329-339, 922-925; {CPUFLAGS}:161-166",
    ),
    "reported-model": Rule(
        "reported-model is an enum of get_all_cpu_models(): pve-qemu's "
        "/usr/share/kvm/cpu-models-x86_64.json where shipped, else the "
        "built-in model -> vendor list ('default': no vendor forced)",
        f"{CPUCONFIG}:118-267, 304-311",
    ),
    "level": Rule(
        "level: integer 0..4294967295 (since qemu-server 9.1.14); the VM's, else "
        "the custom model's, is appended as ',level=N' right after the model name",
        f"{CPUCONFIG}:358-368, 950-956",
    ),
    "phys-bits": Rule(
        "phys-bits: 8-64 or 'host'; appended last as ',phys-bits=N' ('host': ',host-phys-bits=true')",
        f"{CPUCONFIG}:348-356, 445-465, 969-992",
    ),
    "pve-flags": Rule(
        "Proxmox's own flags: +lahf_lm for kvm64; +sep for kvm64 and kvm32; "
        "-rdtscp for Opteron*; +kvm_pv_unhalt and +kvm_pv_eoi under KVM on "
        "machine types >= 2.3 (also -x2apic for ostype solaris, -cet-ibt/-cet-ss "
        "for Windows 11 on QEMU >= 11, hv_* for Windows: guest-specific, "
        "not modelled)",
        f"{CPUCONFIG}:1001-1071, 1073-1139",
    ),
    "order": Rule(
        "flags resolve in the order Proxmox's, Hyper-V's, builtin model's, custom "
        "model's, the VM's, forced: later wins per name; a different op or value "
        "prints \"warning: CPU flag/setting 'new' overwrites 'old'\"",
        f"{CPUCONFIG}:752-810, 959-966",
    ),
    "forced": Rule(
        "forced last: enforce under KVM only (not for host); vendor=<the reported "
        "model's vendor> unless 'default'; kvm=off when hidden",
        f"{CPUCONFIG}:927-946",
    ),
    "print": Rule("flags printed sorted by name, each ',<op><name>[=<value>]'", f"{CPUCONFIG}:812-825"),
}

#: get_all_cpu_models()'s built-in x86_64 list (``reported-model`` enum) with the vendor forced.
PVE_ENUM: dict[str, str] = {
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
            "Icelake-Client",
            "Icelake-Client-noTSX",
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
    **dict.fromkeys(("kvm32", "kvm64", "qemu32", "qemu64", "max", "host"), "default"),
}
#: $depreacated_cpu_map: reported as another model (CPUConfig.pm:96-100, 892-894).
PVE_RENAMED = {"Icelake-Client": "Icelake-Server", "Icelake-Client-noTSX": "Icelake-Server-noTSX"}
PVE_FLAG = r"([+-])([a-zA-Z0-9\-_\.]+)"


def machine_version(machine: str) -> tuple[int, int]:
    m = re.search(r"-(\d+)\.(\d+)$", machine)
    return (int(m.group(1)), int(m.group(2))) if m else (99, 0)  # unversioned: the newest


def pve_flags(model: str, accel: str, machine: str) -> dict[str, str]:
    """RULES["pve-flags"]: the flags Proxmox sets itself, name -> op (a Linux guest)."""
    flags = {}
    if model == "kvm64":
        flags["lahf_lm"] = "+"
    if model in ("kvm64", "kvm32"):
        flags["sep"] = "+"
    if model.startswith("Opteron"):
        flags["rdtscp"] = "-"
    if accel == "kvm" and machine_version(machine) >= (2, 3):
        flags["kvm_pv_unhalt"] = flags["kvm_pv_eoi"] = "+"
    return flags


def pve_cpu(props: dict[str, str], accel: str, machine: str) -> tuple[str, list[str]]:
    """(the ``-cpu`` get_cpu_options builds for VM ``cpu: custom-<entry>``, its warnings)."""
    model = PVE_RENAMED.get(props["reported-model"], props["reported-model"])
    custom = {
        m.group(2): m.group(1)
        for f in props.get("flags", "").split(";")
        if f
        for m in [re.fullmatch(PVE_FLAG, f)]
        if m
    }
    forced: dict[str, tuple[str, str | None]] = {}
    if accel == "kvm":
        forced["enforce"] = ("", None)
    if PVE_ENUM[model] != "default":
        forced["vendor"] = ("", PVE_ENUM[model])
    if props.get("hidden") == "1":
        forced["kvm"] = ("", "off")
    layers: list[dict[str, tuple[str, str | None]]] = [
        {n: (op, None) for n, op in pve_flags(model, accel, machine).items()},
        {n: (op, None) for n, op in custom.items()},
        forced,
    ]
    resolved: dict[str, tuple[str, str | None]] = {}
    warnings = []
    for layer in layers:
        for name, (op, value) in layer.items():
            old = resolved.get(name)
            if old is not None and old != (op, value):
                warnings.append(f"warning: CPU flag/setting '{op}{name}' overwrites '{old[0]}{name}'")
            resolved[name] = (op, value)
    cpu = model
    if "level" in props:
        cpu += f",level={props['level']}"
    for name in sorted(resolved):
        op, value = resolved[name]
        cpu += f",{op}{name}" + (f"={value}" if value else "")
    if "phys-bits" in props:
        cpu += ",host-phys-bits=true" if props["phys-bits"] == "host" else f",phys-bits={props['phys-bits']}"
    return cpu, warnings


def entry(pool: str) -> dict[str, str]:
    _, props = proxmox_entry(export(pool, "proxmox"))
    assert props["reported-model"] in PVE_ENUM  # RULES["reported-model"]
    if "level" in props:  # RULES["level"]
        assert re.fullmatch(r"\d+", props["level"]) and int(props["level"]) < 2**32
    return props


def test_every_reported_model_is_in_proxmoxs_enum_with_its_vendor() -> None:
    assert {m: PVE_ENUM.get(m) for m in PVE_MODELS} == {m: (v or "default") for m, v in PVE_MODELS.items()}
    assert not set(PVE_MODELS) & set(PVE_RENAMED)


def test_every_entry_pins_the_pools_level() -> None:
    """kvm64 reports level 13 where a pool's custom string may have more (or less)."""
    wrong = {}
    for pool in ALL_POOLS:
        b: Baseline = pools()[pool]
        props = entry(pool)
        if props.get("level") != (None if b.scalars.level is None else str(b.scalars.level)):
            wrong[pool] = (props.get("level"), b.scalars.level)
    assert not wrong


def test_no_entry_names_a_flag_proxmox_sets_itself() -> None:
    """Redundant (same op) says nothing; contrary prints an override warning at every start."""
    offenders = {}
    for pool in ALL_POOLS:
        b = pools()[pool]
        props = entry(pool)
        own = pve_flags(props["reported-model"], b.accel, b.machine_type)
        named = {f[1:]: f[0] for f in props.get("flags", "").split(";") if f}
        same = sorted(n for n, op in own.items() if named.get(n) == op)
        contrary = sorted(n for n, op in own.items() if n in named and named[n] != op)
        _, warnings = pve_cpu(props, b.accel, b.machine_type)
        assert len(warnings) == len(contrary)
        if same or contrary:
            offenders[pool] = (props["reported-model"], same, contrary)
    assert not offenders


def test_the_cpu_proxmox_builds_starts_with_enforce_as_the_pool_cpu(
    live: Live,  # noqa: F811
    qemu_bin: str,
) -> None:
    b = live.baseline
    _, props = proxmox_entry(live.export("proxmox"))
    machine = b["machine_type"]
    cpu, warnings = pve_cpu(props, live.accel, machine)
    assert not warnings, (cpu, warnings)
    # pinned, not the reported model's by chance (kvm64's 13 is this host's KVM pool's too)
    assert props.get("level") == str(b["scalars"]["level"])
    if live.accel != "kvm":  # Proxmox forces enforce under KVM only
        assert ",enforce" not in cpu
        cpu += ",enforce"
    got = vcpu(qemu_bin, machine, live.accel, ["-cpu", cpu])
    custom = vcpu(qemu_bin, machine, live.accel, ["-cpu", b["custom"] + ",enforce"])
    assert got["feature-words"] == custom["feature-words"]
    assert nothing_filtered(got)
    s = b["scalars"]
    assert (got["vendor"], got["level"], got["phys-bits"]) == (b["vendor"], s["level"], s["phys_bits"])
