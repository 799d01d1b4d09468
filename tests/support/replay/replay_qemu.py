#!/usr/bin/env python3
"""A stand-in for ``qemu-system-x86_64`` that answers from a capture of a real host.

The real probe launches it through a per-host wrapper (``hosts.py``)::

    replay_qemu.py --replay-capture FILE --replay-log LOG --replay-as PATH -- <QEMU argv...>

It checks its command line the way QEMU does (same messages, exit 1), then
speaks QMP on the inherited ``-chardev socket,id=qmp,fd=N`` and answers from
the capture. Everything it was asked (its argv, each QMP command and how it
was answered) goes to LOG as JSON lines, so tests can hold the probe's
recorded ``attempts`` against what the stand-in really saw.

``--replay-as`` is the path the wrapper was started as: QEMU prefixes its
messages with its program name, and the suite's orphan guard finds stand-ins
by ``qemu-system`` in their command line.

What a capture lacks is decided in ONE place, ``ANSWERS`` below: answered
with a value labelled synthetic, derived from captured data by a stated rule,
or refused with ``{"error": {"class": "GenericError", "desc": "replay: <what>
not captured ..."}}``. A captured reply is sent verbatim (only the envelope's
``id`` is the asker's), never altered.

Stdlib only, started for every probe launch: keep imports cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

if __package__:  # imported as tests.support.replay.replay_qemu (the tests read ANSWERS)
    from . import capture as capmod
    from . import cpumap
else:  # run as a script: the siblings are top-level modules
    import capture as capmod  # type: ignore[import-not-found,no-redef]
    import cpumap  # type: ignore[import-not-found,no-redef]

# ===========================================================================
# The answer table: every choice about what the captures lack, in one place.
# ===========================================================================
CAPTURED = "captured"  # a captured reply, verbatim
CAPTURED_OR_REFUSED = "captured-or-refused"  # verbatim where the capture has it, else refused
DERIVED = "derived"  # computed from captured data by the rule in the note
SYNTHETIC = "synthetic"  # made up, labelled replay:<file> where QMP has room for a label
REFUSED = "refused"  # QMP GenericError "replay: <what> not captured" (or exit 1 at start)

#: Columns: "cputest" (a cputestdata .json host, KVM only), "replies-kvm" and
#: "replies-tcg" (the two passes of a caps_*.replies conversation). A column
#: an item lacks does not apply there and is refused.
ANSWERS: dict[str, dict[str, tuple[str, str]]] = {
    "-version": {
        "cputest": (SYNTHETIC, "QEMU emulator version 0.0.0 (replay:<file>): the .json has no version"),
        "replies-kvm": (CAPTURED, "the conversation's query-version, as QEMU's banner"),
        "replies-tcg": (CAPTURED, "the conversation's query-version, as QEMU's banner"),
    },
    "-accel kvm": {
        "cputest": (CAPTURED, "libvirt captured the host under KVM"),
        "replies-kvm": (CAPTURED, "the KVM pass (everything before the second qmp_capabilities)"),
    },
    "-accel tcg": {
        "cputest": (REFUSED, "exit 1 at start: cputestdata holds a KVM capture only"),
        "replies-tcg": (CAPTURED, "the TCG pass (after the second qmp_capabilities)"),
    },
    "-machine, query-machines": {
        "cputest": (SYNTHETIC, "pc-q35-0.0 (alias q35), pc-i440fx-0.0 (alias pc, is-default), none"),
        "replies-kvm": (CAPTURED, "query-machines of the pass; an unknown -machine gets QEMU's error"),
        "replies-tcg": (CAPTURED, "query-machines of the pass; an unknown -machine gets QEMU's error"),
    },
    "query-version, QMP greeting": {
        "cputest": (SYNTHETIC, '{"qemu": 0.0.0, "package": "replay:<file>"}'),
        "replies-kvm": (CAPTURED, "the conversation's query-version"),
        "replies-tcg": (CAPTURED, "the conversation's query-version (asked in the KVM pass)"),
    },
    "query-kvm": {
        "cputest": (DERIVED, '{"present": true, "enabled": true}: the capture was made under KVM'),
        "replies-kvm": (CAPTURED, "the KVM pass's query-kvm"),
        "replies-tcg": (DERIVED, '{"present": <KVM pass>, "enabled": false}: the pass ran -accel tcg'),
    },
    "query-cpu-definitions": {
        "cputest": (CAPTURED_OR_REFUSED, "id=definitions where the .json has it (about half)"),
        "replies-kvm": (
            CAPTURED,
            "the pass's own list (libvirt asked with -machine none; replayed for every -machine)",
        ),
        "replies-tcg": (CAPTURED, "the pass's own list (TCG's unavailable-features differ)"),
    },
    "expansion static host": {
        "cputest": (REFUSED, "libvirt's cpu-data.py discarded the static expansion"),
        "replies-kvm": (CAPTURED, "libvirt asked it without props (see PROPS_RULE)"),
    },
    "expansion full host": {
        "cputest": (
            CAPTURED,
            "id=model-expansion: full expansion of the static model, so its name is 'base' (see PROPS_RULE)",
        ),
        "replies-kvm": (
            CAPTURED,
            "libvirt asked it with migratable=false, hv-passthrough=true (see PROPS_RULE)",
        ),
    },
    "expansion static max": {
        "replies-tcg": (CAPTURED, "libvirt asked it without props (see PROPS_RULE)"),
    },
    "expansion full max": {
        "replies-tcg": (REFUSED, "libvirt's TCG pass asks static expansions only"),
    },
    "expansion static <named model>": {
        "cputest": (
            SYNTHETIC,
            "the model's features from libvirt's cpu_map (MODEL_RULE), model "
            "name 'base' as QEMU's static expansions; a model the captured definitions "
            "lack gets QEMU's \"CPU model 'X' not found\"; one cpu_map lacks is refused",
        ),
        "replies-kvm": (SYNTHETIC, "as cputest"),
        "replies-tcg": (SYNTHETIC, "as cputest"),
    },
    "expansion (any other model or type)": {
        "cputest": (REFUSED, "only the host CPU was expanded"),
        "replies-kvm": (REFUSED, "only host was expanded under KVM"),
        "replies-tcg": (REFUSED, "only max was expanded under TCG"),
    },
    "query-cpus-fast": {
        "cputest": (
            SYNTHETIC,
            "QEMU's layout: one entry per -smp vCPU, /machine/unattached/"
            "device[N], thread-id = the stand-in's pid",
        ),
        "replies-kvm": (SYNTHETIC, "as cputest"),
        "replies-tcg": (SYNTHETIC, "as cputest"),
    },
    "query-status": {
        "cputest": (DERIVED, "prelaunch/paused with -S, else running"),
        "replies-kvm": (DERIVED, "as cputest"),
        "replies-tcg": (DERIVED, "as cputest"),
    },
    "qom-get feature-words": {
        "cputest": (
            CAPTURED,
            "-cpu host only: the -enabled.xml masks, one word per non-zero "
            "register (libvirt's rows do not say which zero registers QEMU had); "
            "-feat on the command line is not applied; other models refused",
        ),
        "replies-kvm": (REFUSED, "a conversation holds no realized vCPU"),
        "replies-tcg": (REFUSED, "a conversation holds no realized vCPU"),
    },
    "qom-get filtered-features": {
        "cputest": (
            DERIVED,
            "-cpu host: the -disabled.xml masks; any model: plus the bits "
            "(x86_features.xml) of the model's unavailable features and of requested "
            "features the host lacks",
        ),
        "replies-kvm": (
            DERIVED,
            "as cputest without -disabled.xml: a modern QEMU builds host "
            "from what KVM offers, so host filters nothing of its own (QEMU 7.2 on "
            "the test machine reports every word 0), only what -cpu asks for",
        ),
        "replies-tcg": (DERIVED, "as replies-kvm, judged against the TCG pass"),
    },
    "qom-get vendor, family, model, stepping, model-id": {
        "cputest": (CAPTURED, "-cpu host: the props of the captured host expansion; other models refused"),
        "replies-kvm": (CAPTURED, "-cpu host: the props of the full host expansion"),
        "replies-tcg": (CAPTURED, "-cpu max: the props of the static max expansion"),
    },
    "qom-get level, xlevel": {
        "cputest": (CAPTURED_OR_REFUSED, "from the host expansion; older captures lack them"),
        "replies-kvm": (CAPTURED_OR_REFUSED, "from the full host expansion"),
        "replies-tcg": (CAPTURED_OR_REFUSED, "static expansions lack them: refused"),
    },
    "qom-get phys-bits": {
        "cputest": (REFUSED, "expansions hold the pre-realize 0, never a vCPU's value"),
        "replies-kvm": (REFUSED, "as cputest"),
        "replies-tcg": (REFUSED, "as cputest"),
    },
    "qom-get (any other property)": {
        "cputest": (REFUSED, "not captured"),
        "replies-kvm": (REFUSED, "not captured"),
        "replies-tcg": (REFUSED, "not captured"),
    },
    "other commands": {
        "cputest": (REFUSED, "CommandNotFound, as a QEMU without the command"),
        "replies-kvm": (
            CAPTURED_OR_REFUSED,
            "verbatim if the pass has the same command with "
            "the same arguments; GenericError if only other arguments were "
            "captured; CommandNotFound if never",
        ),
        "replies-tcg": (CAPTURED_OR_REFUSED, "as replies-kvm"),
    },
}

#: How expansion asks that carry props are answered (the probe's fallback
#: sends ``{"arch-capabilities": false}``; libvirt asked ``full host`` with
#: ``migratable=false, hv-passthrough=true``): the captured answer for the
#: same type and model is still the right one, because it describes the
#: captured host; props are never applied to it (that would alter a captured
#: reply). The log records the exchange used and the props not applied.
PROPS_RULE = (
    "the exact arguments, else the captured ask of that type and model without "
    "props, else any captured ask of that type and model; props are never applied"
)

#: How a named model's static expansion is made up (no capture holds one: libvirt
#: never asked). ``cpumap.model_features`` is the one implementation; the
#: baseline's property tests build their members through it too.
MODEL_RULE = (
    "libvirt's cpu_map/x86_<Model>.xml flattened through its <model name=...> inheritance, "
    "features marked removed='yes' left out, each spelt as QEMU through x86_features.xml's "
    "<alias source='qemu'>, kept only if the capture's host expansion names it (a QEMU expands "
    "a model only to features it has) and, as QEMU's feature_dependencies do, only if its "
    "parent is in the model too (vmx-* need vmx, the SVM leaf svm, ARCH/CORE/PERF_CAPABILITIES "
    "bits arch-capabilities/core-capability/pdcm, XSAVE sub-leaf 1 xsave); QEMU's X-v1 and "
    "cpu_map's X are one model (libvirt's -v1 files include X), other versions are never "
    "guessed; only features set true are "
    "listed, and QEMU's KVM defaults (kvmclock, x2apic, ...) are not added"
)

#: ``-cpu`` checks, all derived from captured data (see ``Replay.configure_cpu``).
CPU_RULE = (
    "A model is known if the pass's captured query-cpu-definitions lists it, else (no "
    "definitions captured) if libvirt's cpu_map has it; host, max and base always. A model's "
    "own missing features are its captured unavailable-features; without definitions, the "
    "CPUID features of the cpu_map model the host lacks (MSR features such as vmx-* are not "
    "judged). A requested feature is judged against the -enabled.xml bits through "
    "x86_features.xml (cputest CPUID features), else against the captured host expansion (MSR "
    "and KVM features, conversations); a feature neither can judge counts as missing. A name "
    'neither the captured QEMU nor libvirt knows gets QEMU\'s "Property ... not found". '
    "Missing features are warned about (unless check=off), fail the start with enforce, and "
    "otherwise show up in filtered-features."
)

#: Properties every x86 QEMU accepts in -cpu even where a capture's expansion omits them.
GENERIC_CPU_PROPS = frozenset({"check", "enforce", "migratable", "host-cache-info", "host-phys-bits"})
SYNTHETIC_MACHINES = (
    {
        "name": "pc-q35-0.0",
        "alias": "q35",
        "cpu-max": 288,
        "deprecated": False,
        "hotpluggable-cpus": True,
        "default-cpu-type": "qemu64-x86_64-cpu",
    },
    {
        "name": "pc-i440fx-0.0",
        "alias": "pc",
        "is-default": True,
        "cpu-max": 255,
        "deprecated": False,
        "hotpluggable-cpus": True,
        "default-cpu-type": "qemu64-x86_64-cpu",
    },
    {"name": "none", "cpu-max": 1, "deprecated": False, "hotpluggable-cpus": False},
)
HOST_MODELS = ("host", "max", "base")
#: QEMU emits cpuid-input-ecx only for feature words of subleaf-indexed leaves.
SUBLEAF_LEAVES = frozenset({0x7, 0xD, 0xF, 0x12, 0x14, 0x24})
VCPU_SCALARS = ("vendor", "family", "model", "stepping", "model-id")
VCPU_LEVELS = ("level", "xlevel")
BOOL_WORDS = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}
NO_ARG = frozenset({"-nodefaults", "-no-user-config", "-S", "-version", "-nographic"})
WITH_ARG = frozenset(
    {
        "-display",
        "-m",
        "-smp",
        "-machine",
        "-M",
        "-accel",
        "-cpu",
        "-chardev",
        "-mon",
        "-qmp",
        "-name",
        "-uuid",
    }
)


class Exit(Exception):
    """Stop the stand-in with QEMU's exit status after its messages went to stderr."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class QmpError(Exception):
    def __init__(self, cls: str, desc: str, how: str = "error") -> None:
        super().__init__(desc)
        self.cls = cls
        self.desc = desc
        self.how = how


@dataclass
class CpuArg:
    """``-cpu model,+feat,-feat,feat=on|off,prop=value,enforce,check`` as QEMU reads it."""

    model: str
    wanted: dict[str, bool] = field(default_factory=dict)  # feature/prop name -> on/off
    values: dict[str, str] = field(default_factory=dict)  # prop=value that is not a bool
    enforce: bool = False
    check: bool = True  # QEMU's default: warn about what it filters

    @classmethod
    def parse(cls, text: str) -> CpuArg:
        model, *items = text.split(",")
        arg = cls(model)
        for item in items:
            if not item:
                continue
            if item[0] in "+-":
                arg.wanted[item[1:]] = item[0] == "+"
                continue
            key, sep, value = item.partition("=")
            on = BOOL_WORDS.get(value.lower()) if sep else True
            if key in ("enforce", "check") and on is not None:
                setattr(arg, key, on)
            elif on is None:
                arg.values[key] = value
            else:
                arg.wanted[key] = on
        return arg


class Log:
    """JSON lines, one ``write`` each (O_APPEND): concurrent stand-ins never interleave."""

    def __init__(self, path: str | None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None

    def write(self, event: str, **fields: Any) -> None:
        if self.fd is None:
            return
        entry = {"event": event, "pid": os.getpid(), "time": round(time.time(), 6), **fields}
        os.write(self.fd, (json.dumps(entry, sort_keys=True) + "\n").encode())


class Replay:
    """One stand-in process: its command line, its capture, its QMP conversation."""

    def __init__(self, capture_path: Path, prog: str, log: Log) -> None:
        self.capture_path = capture_path
        self.prog = prog
        self.log = log
        self.kind = "replies" if capture_path.name.endswith(".replies") else "cputest"
        self.label = "replay:" + capture_path.name
        self.cap: capmod.Capture | None = None
        self.accel = "kvm"
        self.machine = ""
        self.cpu = CpuArg("qemu64")
        self.smp = 1
        self.paused = False
        self.qmp_fd: int | None = None
        self._table: cpumap.FeatureTable | None = None
        self._models: dict[str, cpumap.Model] | None = None
        self.missing: list[str] = []

    # -- the table --------------------------------------------------------
    @property
    def column(self) -> str:
        return "cputest" if self.kind == "cputest" else "replies-" + self.accel

    def rule(self, item: str) -> str:
        return ANSWERS[item].get(self.column, (REFUSED, "not applicable"))[0]

    def refuse(self, what: str, why: str = "") -> QmpError:
        why = f" ({why})" if why else ""
        return QmpError(
            "GenericError", f"replay: {what} not captured in {self.capture_path.name}{why}", REFUSED
        )

    # -- messages like QEMU's -----------------------------------------------
    def say(self, line: str) -> None:
        sys.stderr.write(f"{self.prog}: {line}\n")
        sys.stderr.flush()

    def die(self, *lines: str, hint: str | None = None) -> NoReturn:
        for line in lines:
            self.say(line)
        if hint:
            sys.stderr.write(hint + "\n")
        raise Exit(1)

    # -- what the capture says ------------------------------------------------
    def load(self) -> capmod.Capture:
        if self.cap is None:
            self.cap = capmod.load(self.capture_path)
        return self.cap

    @property
    def table(self) -> cpumap.FeatureTable:
        if self._table is None:
            self._table = cpumap.FeatureTable(
                self.capture_path.parent.parent / "cpu_map" / "x86_features.xml"
            )
        return self._table

    @property
    def cpu_map_models(self) -> dict[str, cpumap.Model]:
        if self._models is None:
            self._models = cpumap.load_models(self.capture_path.parent.parent / "cpu_map")
        return self._models

    def version(self) -> tuple[tuple[int, int, int], str]:
        if self.kind == "cputest":
            return (0, 0, 0), self.label
        major, minor, micro = capmod.replies_version(self.capture_path)
        if self.cap is not None:
            ex = self.cap.passes["kvm"].first("query-version")
            if ex is not None:
                return (major, minor, micro), str(ex.reply["return"].get("package", ""))
        return (major, minor, micro), ""

    def machines(self) -> list[dict[str, Any]]:
        if self.kind == "cputest":
            return [dict(m) for m in SYNTHETIC_MACHINES]
        ex = self.load().passes[self.accel].first("query-machines")
        return list(ex.reply["return"]) if ex else []

    def definitions(self) -> list[dict[str, Any]] | None:
        cap = self.load()
        if self.kind == "cputest":
            return cap.definitions
        ex = cap.passes[self.accel].first("query-cpu-definitions")
        return ex.reply["return"] if ex and "return" in ex.reply else None

    def host_props(self) -> dict[str, Any]:
        exp = capmod.host_expansion(self.load(), self.accel)
        return dict(exp["model"]["props"]) if exp else {}

    def known_cpu_props(self) -> set[str]:
        names = set(GENERIC_CPU_PROPS)
        cap = self.load()
        expansions: list[Any] = [cap.model_expansion] if cap.model_expansion else []
        for p in cap.passes.values():
            expansions += [e.reply.get("return") for e in p.all("query-cpu-model-expansion")]
        for exp in expansions:
            if isinstance(exp, dict):
                names.update(cpumap.fold(k) for k in exp["model"].get("props", {}))
        return names

    def host_has(self, name: str) -> bool:
        """Would the captured host give a guest this feature? (see CPU_RULES)"""
        bits = self.table.get(name)
        cap = self.load()
        if self.kind == "cputest" and bits is not None and bits.kind == "cpuid":
            for leaf, sub, regs in cap.enabled or []:
                if (leaf, sub) == (bits.leaf, bits.subleaf):
                    return regs[bits.register] & bits.mask == bits.mask
            return False
        folded = cpumap.fold(name)
        for key, value in self.host_props().items():
            if cpumap.fold(key) == folded and isinstance(value, bool):
                return value
        return False

    # -- the command line -------------------------------------------------------
    def parse_argv(self, argv: list[str]) -> dict[str, list[str]]:
        opts: dict[str, list[str]] = {}
        i = 0
        while i < len(argv):
            a = argv[i]
            name = "-" + a.lstrip("-") if a.startswith("-") else a
            if not a.startswith("-"):
                self.die(f"{a}: replay: positional arguments (disk images) are not supported")
            if name in NO_ARG:
                opts.setdefault(name, []).append("")
                i += 1
                continue
            if name not in WITH_ARG:
                self.die(f"{a}: invalid option")
            if i + 1 >= len(argv):
                self.die(f"{a}: requires an argument")
            opts.setdefault("-machine" if name == "-M" else name, []).append(argv[i + 1])
            i += 2
        return opts

    def configure(self, opts: dict[str, list[str]]) -> None:
        """Validate like QEMU, in QEMU's order: options, machine, accelerator, monitor, CPU."""
        for value in opts.get("-m", []):
            if not re.fullmatch(r"(size=)?\d+(\.\d+)?[kKmMgGtT]?[bB]?", value):
                self.die(f"-m {value}: Parameter 'size' expects a non-negative number below 2^64")
        for value in opts.get("-smp", []):
            found = re.match(r"(?:cpus=)?(\d+)", value)
            if not found or int(found.group(1)) < 1:
                self.die(f"-smp {value}: Parameter 'cpus' expects a number")
            self.smp = int(found.group(1))
        for value in opts.get("-display", []):
            if value.split(",")[0] != "none":
                self.die(f"-display {value}: replay: only -display none is supported")
        if "-qmp" in opts:
            self.die("-qmp: replay: give QMP as -chardev socket,id=ID,fd=N -mon chardev=ID,mode=control")
        self.paused = "-S" in opts
        machine_opts: dict[str, str] = {}
        requested = ""
        for value in opts.get("-machine", []):
            for i, item in enumerate(value.split(",")):
                key, sep, val = item.partition("=")
                if not sep and i == 0:
                    requested = key
                elif key == "type":
                    requested = val
                else:
                    machine_opts[key] = val
        accels = [v.split(",")[0] for v in opts.get("-accel", [])]
        if not accels and "accel" in machine_opts:
            accels = machine_opts["accel"].split(":")[:1]
        accel = accels[0] if accels else "tcg"  # QEMU's default without -accel
        if len(accels) > 1:
            self.die("-accel: replay: give one accelerator")
        if accel not in ("kvm", "tcg"):
            self.die(f"-accel {accel}: invalid accelerator {accel}")
        if self.kind == "replies" and accel in self.load().passes:
            self.accel = accel  # the machine list is the pass's own
        machines = self.machines()
        if requested == "help":
            sys.stdout.write("Supported machines are:\n")
            for m in machines:
                default = " (default)" if m.get("is-default") else ""
                sys.stdout.write(f"{m['name']:<20} replay{default}\n")
            raise Exit(0)
        if not requested:
            requested = next((m["name"] for m in machines if m.get("is-default")), "none")
        chosen = next((m for m in machines if requested in (m["name"], m.get("alias"))), None)
        if chosen is None:
            self.die("unsupported machine type", hint="Use -machine help to list supported machines")
        # Accelerators start after the machine is chosen, as in QEMU's vl.c.
        if accel == "tcg" and self.kind == "cputest":
            self.log.write("refused", what="-accel tcg", rule=ANSWERS["-accel tcg"]["cputest"][1])
            self.die(f"-accel tcg: replay: not captured ({self.capture_path.name} holds a KVM capture only)")
        if self.kind == "replies" and accel not in self.load().passes:
            self.die(f"-accel {accel}: replay: no {accel} pass in {self.capture_path.name}")
        self.accel = accel
        self.machine = str(chosen["name"])
        self.configure_monitor(opts)
        self.configure_cpu(opts.get("-cpu", ["qemu64"])[-1])

    def configure_monitor(self, opts: dict[str, list[str]]) -> None:
        chardevs: dict[str, int] = {}
        for value in opts.get("-chardev", []):
            backend, *items = value.split(",")
            kv = dict(item.partition("=")[::2] for item in items)
            if backend != "socket" or "fd" not in kv or "id" not in kv:
                self.die(f"-chardev {value}: replay: only -chardev socket,id=ID,fd=N is supported")
            try:
                fd = int(kv["fd"])
                os.fstat(fd)
            except (ValueError, OSError):
                self.die(f"-chardev {value}: File descriptor '{kv['fd']}' is not open")
            chardevs[kv["id"]] = fd
        for value in opts.get("-mon", []):
            kv = dict(item.partition("=")[::2] for item in value.split(","))
            if kv.get("chardev") not in chardevs:
                self.die(f"-mon {value}: chardev '{kv.get('chardev')}' not found")
            if kv.get("mode", "readline") != "control":
                self.die(f"-mon {value}: replay: only mode=control (QMP) monitors are supported")
            self.qmp_fd = chardevs[kv["chardev"]]
        if self.qmp_fd is None:
            self.die("replay: no QMP monitor (-chardev socket,id=qmp,fd=N -mon chardev=qmp,mode=control)")

    def is_feature(self, name: str) -> bool:
        """A CPUID/MSR feature (libvirt knows its bits) or a KVM paravirtual one, not a property."""
        folded = cpumap.fold(name)
        return (
            self.table.get(name) is not None
            or folded.startswith("kvm-")
            or folded in ("kvmclock", "kvmclock-stable-bit")
        )

    def configure_cpu(self, text: str) -> None:
        cpu = CpuArg.parse(text)
        self.cpu = cpu
        if cpu.model == "host" and self.accel != "kvm":
            self.die("CPU model 'host' requires KVM or HVF")
        defs = self.definitions()
        own: list[str] = []
        if defs is not None:
            known = {str(d["name"]): d for d in defs}
            if cpu.model not in known and cpu.model not in HOST_MODELS:
                self.die(f"unable to find CPU model '{cpu.model}'")
            if cpu.model in known:
                own = [str(n) for n in known[cpu.model].get("unavailable-features", [])]
        elif cpu.model in self.cpu_map_models:
            for name in sorted(self.cpu_map_models[cpu.model].features):
                bits = self.table.get(name)
                if bits is not None and bits.kind == "cpuid" and not self.host_has(name):
                    own.append(bits.name)
        elif cpu.model not in HOST_MODELS:
            self.die(f"unable to find CPU model '{cpu.model}'")
        known_props = self.known_cpu_props()
        for name, on in cpu.wanted.items():
            if cpumap.fold(name) not in known_props and self.table.get(name) is None:
                qom = f"{cpu.model}-x86_64-cpu.{name}"
                self.die(f"can't apply global {qom}={'on' if on else 'off'}: Property '{qom}' not found")
        off = {cpumap.fold(n) for n, on in cpu.wanted.items() if not on}
        missing = [n for n in own if cpumap.fold(n) not in off]
        seen = {cpumap.fold(n) for n in missing}
        for name, on in cpu.wanted.items():
            if on and self.is_feature(name) and cpumap.fold(name) not in seen and not self.host_has(name):
                missing.append(name)
                seen.add(cpumap.fold(name))
        self.missing = missing
        if missing and (cpu.check or cpu.enforce):
            who = "host" if self.accel == "kvm" else "TCG"
            for name in missing:
                bits = self.table.get(name)
                # Captured unavailable-features can hold "" (Xeon-Platinum-8268).
                what = bits.describe() if bits else name or "(a feature QEMU left unnamed)"
                self.say(f"warning: {who} doesn't support requested feature: {what}")
        if missing and cpu.enforce:
            who = "Host" if self.accel == "kvm" else "TCG"
            self.die(f"{who} doesn't support requested features")

    # -- QMP ---------------------------------------------------------------------
    def greeting(self) -> dict[str, Any]:
        """QEMU greets with its query-version answer, and we offer no capabilities (no OOB)."""
        return {"QMP": {"version": self.q_version({})[0], "capabilities": []}}

    def serve(self) -> int:
        assert self.qmp_fd is not None
        sock = socket.socket(fileno=self.qmp_fd)
        sock.setblocking(True)

        def send(msg: dict[str, Any]) -> None:
            sock.sendall((json.dumps(msg) + "\r\n").encode())

        send(self.greeting())
        negotiated = False
        buf = ""
        dec = json.JSONDecoder()
        while True:
            data = sock.recv(65536)
            if not data:
                # QEMU outlives its monitor: a paused guest waits to be killed.
                self.log.write("qmp-eof")
                while True:
                    signal.pause()
            buf += data.decode("utf-8", errors="replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    msg, end = dec.raw_decode(buf)
                except json.JSONDecodeError as exc:
                    if exc.pos >= len(buf.rstrip()) or exc.msg.startswith("Unterminated"):
                        break  # the object is not complete yet: wait for the rest
                    nl = buf.find("\n")
                    buf = buf[nl + 1 :] if nl >= 0 else ""
                    send({"error": {"class": "GenericError", "desc": f"JSON parse error, {exc.msg}"}})
                    continue
                buf = buf[end:]
                reply, negotiated, done = self.handle(msg, negotiated)
                send(reply)
                if done:
                    send(
                        {
                            "event": "SHUTDOWN",
                            "data": {"guest": False, "reason": "host-qmp-quit"},
                            "timestamp": {"seconds": int(time.time()), "microseconds": 0},
                        }
                    )
                    sock.close()
                    return 0

    def handle(self, msg: Any, negotiated: bool) -> tuple[dict[str, Any], bool, bool]:
        """One command -> (reply envelope, negotiated now, quit asked); logged with its answer kind."""
        envelope: dict[str, Any] = {}
        if isinstance(msg, dict) and "id" in msg:
            envelope["id"] = msg["id"]
        execute = msg.get("execute") if isinstance(msg, dict) else None
        args = msg.get("arguments", {}) if isinstance(msg, dict) else {}
        try:
            value, how, source = self.dispatch(msg, execute, args, negotiated)
            how = CAPTURED if how == CAPTURED_OR_REFUSED else how  # it was there
            envelope["return"] = value
        except QmpError as exc:
            envelope["error"] = {"class": exc.cls, "desc": exc.desc}
            how, source = exc.how, exc.desc
        self.log.write("qmp", execute=execute, arguments=args, answer=how, source=source)
        ok = "return" in envelope
        return envelope, negotiated or (ok and execute == "qmp_capabilities"), ok and execute == "quit"

    def dispatch(self, msg: Any, execute: Any, args: Any, negotiated: bool) -> tuple[Any, str, str]:
        if not isinstance(msg, dict):
            raise QmpError("GenericError", "QMP input must be a JSON object")
        if not isinstance(execute, str):
            raise QmpError("GenericError", "QMP input lacks member 'execute'")
        if not isinstance(args, dict):
            raise QmpError("GenericError", "QMP input member 'arguments' must be an object")
        if execute == "qmp_capabilities":
            if negotiated:
                raise QmpError(
                    "CommandNotFound", "Capabilities negotiation is already complete, command ignored"
                )
            return {}, "protocol", ""
        if not negotiated:
            raise QmpError("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'")
        if execute == "quit":
            return {}, "protocol", ""
        return self.answer(execute, args)

    def answer(self, execute: str, args: dict[str, Any]) -> tuple[Any, str, str]:
        handler: Callable[[dict[str, Any]], tuple[Any, str, str]] | None = {
            "query-version": self.q_version,
            "query-kvm": self.q_kvm,
            "query-machines": self.q_machines,
            "query-cpu-definitions": self.q_definitions,
            "query-cpu-model-expansion": self.q_expansion,
            "query-cpus-fast": self.q_cpus_fast,
            "query-status": self.q_status,
            "qom-get": self.q_qom_get,
        }.get(execute)
        if handler is not None:
            return handler(args)
        return self.q_other(execute, args)

    def q_version(self, _args: dict[str, Any]) -> tuple[Any, str, str]:
        how = self.rule("query-version, QMP greeting")
        if how == CAPTURED:
            ex = self.load().passes["kvm"].first("query-version")
            assert ex is not None
            return ex.reply["return"], how, f"exchange {ex.index}"
        (major, minor, micro), package = self.version()
        return (
            {"qemu": {"major": major, "minor": minor, "micro": micro}, "package": package},
            how,
            "ANSWERS",
        )

    def q_kvm(self, _args: dict[str, Any]) -> tuple[Any, str, str]:
        how = self.rule("query-kvm")
        cap = self.load()
        if how == CAPTURED:
            ex = cap.passes[self.accel].first("query-kvm")
            if ex is None:
                raise self.refuse("query-kvm")
            return ex.reply["return"], how, f"exchange {ex.index}"
        present = True
        kvm_ex = cap.passes["kvm"].first("query-kvm") if "kvm" in cap.passes else None
        if kvm_ex is not None:
            present = bool(kvm_ex.reply["return"].get("present"))
        return {"enabled": self.accel == "kvm", "present": present}, how, "ANSWERS"

    def q_machines(self, _args: dict[str, Any]) -> tuple[Any, str, str]:
        how = self.rule("-machine, query-machines")
        if how == CAPTURED:
            ex = self.load().passes[self.accel].first("query-machines")
            if ex is None:
                raise self.refuse("query-machines")
            return ex.reply["return"], how, f"exchange {ex.index}"
        return self.machines(), how, "ANSWERS"

    def q_definitions(self, _args: dict[str, Any]) -> tuple[Any, str, str]:
        how = self.rule("query-cpu-definitions")
        cap = self.load()
        if self.kind == "cputest":
            if cap.definitions is None:
                raise self.refuse("query-cpu-definitions")
            return cap.definitions, how, "id=definitions"
        ex = cap.passes[self.accel].first("query-cpu-definitions")
        if ex is None or "return" not in ex.reply:
            raise self.refuse("query-cpu-definitions")
        return ex.reply["return"], how, f"exchange {ex.index}"

    def q_expansion(self, args: dict[str, Any]) -> tuple[Any, str, str]:
        kind = args.get("type")
        model = args.get("model")
        if kind is None:
            raise QmpError("GenericError", "Parameter 'type' is missing")
        if kind not in ("static", "full"):
            raise QmpError("GenericError", f"Parameter 'type' does not accept value '{kind}'")
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise QmpError("GenericError", "Parameter 'model' is missing")
        name = model["name"]
        props = model.get("props") or {}
        item = f"expansion {kind} {name}"
        if item not in ANSWERS:
            item = "expansion (any other model or type)"
        if kind == "static" and name not in HOST_MODELS:
            return self.model_expansion(name)
        how = self.rule(item)
        what = f"query-cpu-model-expansion {kind} {name} (-accel {self.accel})"
        if how == REFUSED:
            raise self.refuse(what)
        cap = self.load()
        if self.kind == "cputest":
            if cap.model_expansion is None:
                raise self.refuse(what)
            return cap.model_expansion, how, f"id=model-expansion; props not applied: {props}"
        asks = [
            e
            for e in cap.passes[self.accel].all("query-cpu-model-expansion")
            if e.arguments.get("type") == kind
            and (e.arguments.get("model") or {}).get("name") == name
            and "return" in e.reply
        ]
        exact = [e for e in asks if e.arguments == args]
        bare = [e for e in asks if not e.arguments["model"].get("props")]
        if not asks:
            raise self.refuse(what)
        chosen = (exact or bare or asks)[0]
        note = f"exchange {chosen.index}"
        if chosen.arguments != args:
            captured = chosen.arguments["model"].get("props", {})
            note += f"; asked props {props} not applied, captured props {captured}"
        return chosen.reply["return"], how, note

    def model_expansion(self, name: str) -> tuple[Any, str, str]:
        """A named model's static expansion, made up from cpu_map (see MODEL_RULE)."""
        item = "expansion static <named model>"
        how = self.rule(item)
        defs = self.definitions()
        if defs is not None and name not in {str(d["name"]) for d in defs}:
            raise QmpError("GenericError", f"CPU model '{name}' not found")
        known = {cpumap.fold(k) for k in self.host_props()}
        feats = cpumap.model_features(self.cpu_map_models, self.table, name, known)
        if feats is None:
            raise self.refuse(
                f"query-cpu-model-expansion static {name}", "libvirt's cpu_map has no such model"
            )
        source = f"cpu_map {cpumap.resolve_model(self.cpu_map_models, name)} (MODEL_RULE)"
        return {"model": {"name": "base", "props": dict.fromkeys(feats, True)}}, how, source

    def vcpu_paths(self) -> list[str]:
        return [f"/machine/unattached/device[{i}]" for i in range(self.smp)]

    def q_cpus_fast(self, _args: dict[str, Any]) -> tuple[Any, str, str]:
        cpus = [
            {
                "cpu-index": i,
                "qom-path": path,
                "thread-id": os.getpid(),
                "target": "x86_64",
                "props": {"core-id": 0, "thread-id": 0, "socket-id": i},
            }
            for i, path in enumerate(self.vcpu_paths())
        ]
        return cpus, self.rule("query-cpus-fast"), "ANSWERS"

    def q_status(self, _args: dict[str, Any]) -> tuple[Any, str, str]:
        status = (
            {"status": "prelaunch", "running": False}
            if self.paused
            else {"status": "running", "running": True}
        )
        return status, self.rule("query-status"), "ANSWERS"

    def _words(self, rows: list[capmod.CpuidRow]) -> list[dict[str, Any]]:
        words = []
        for leaf, sub, regs in rows:
            for reg in capmod.REGISTERS:
                if not regs[reg]:
                    continue
                w: dict[str, Any] = {"cpuid-input-eax": leaf}
                if leaf in SUBLEAF_LEAVES:
                    w["cpuid-input-ecx"] = sub
                w["cpuid-register"] = reg.upper()
                w["features"] = regs[reg]
                words.append(w)
        return words

    def filtered_rows(self) -> list[capmod.CpuidRow]:
        """What the launched vCPU filtered, as cpudata rows (see ANSWERS)."""
        merged: dict[tuple[int, int], dict[str, int]] = {}
        cap = self.load()
        if self.kind == "cputest" and self.cpu.model in ("host", "max"):
            for leaf, sub, regs in cap.disabled or []:
                merged[(leaf, sub)] = dict(regs)
        for name in self.missing:
            bits = self.table.get(name)
            if bits is None or bits.kind != "cpuid":
                continue
            regs = merged.setdefault((bits.leaf, bits.subleaf), dict.fromkeys(capmod.REGISTERS, 0))
            regs[bits.register] |= bits.mask
        return [(leaf, sub, regs) for (leaf, sub), regs in sorted(merged.items())]

    def q_qom_get(self, args: dict[str, Any]) -> tuple[Any, str, str]:
        path, prop = args.get("path"), args.get("property")
        if not isinstance(path, str):
            raise QmpError("GenericError", "Parameter 'path' is missing")
        if not isinstance(prop, str):
            raise QmpError("GenericError", "Parameter 'property' is missing")
        if path not in self.vcpu_paths():
            raise QmpError("DeviceNotFound", f"Device '{path}' not found")
        host_like = self.cpu.model in ("host", "max")
        if prop == "feature-words":
            how = self.rule("qom-get feature-words")
            cap = self.load()
            if how == REFUSED or not host_like or cap.enabled is None:
                raise self.refuse(f"qom-get feature-words of a -cpu {self.cpu.model} vCPU")
            return self._words(cap.enabled), how, "-enabled.xml"
        if prop == "filtered-features":
            how = self.rule("qom-get filtered-features")
            return self._words(self.filtered_rows()), how, "-disabled.xml + missing " + ",".join(self.missing)
        if prop in VCPU_SCALARS + VCPU_LEVELS:
            item = (
                "qom-get vendor, family, model, stepping, model-id"
                if prop in VCPU_SCALARS
                else "qom-get level, xlevel"
            )
            how = self.rule(item)
            props = self.host_props() if host_like else {}
            if how == REFUSED or prop not in props:
                raise self.refuse(f"qom-get {prop} of a -cpu {self.cpu.model} vCPU")
            return props[prop], how, "host expansion"
        if prop == "phys-bits":
            raise self.refuse("qom-get phys-bits", "expansions hold only the pre-realize 0")
        raise self.refuse(f"qom-get {prop}")

    def q_other(self, execute: str, args: dict[str, Any]) -> tuple[Any, str, str]:
        if self.rule("other commands") == REFUSED:
            raise QmpError("CommandNotFound", f"The command {execute} has not been found")
        same = self.load().passes[self.accel].all(execute)
        if not same:
            raise QmpError("CommandNotFound", f"The command {execute} has not been found")
        for ex in same:
            if ex.arguments == args:
                if "error" in ex.reply:
                    raise QmpError(ex.reply["error"]["class"], ex.reply["error"]["desc"], CAPTURED)
                return ex.reply.get("return"), CAPTURED, f"exchange {ex.index}"
        raise self.refuse(f"{execute} with arguments {json.dumps(args, sort_keys=True)}")


def _own_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    own: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i] != "--":
        if not argv[i].startswith("--replay-") or i + 1 >= len(argv):
            sys.stderr.write(f"replay_qemu: bad wrapper arguments {argv!r}\n")
            raise Exit(2)
        own[argv[i][len("--replay-") :]] = argv[i + 1]
        i += 2
    return own, argv[i + 1 :]


def main(argv: list[str]) -> int:
    try:
        own, qemu_args = _own_args(argv)
    except Exit as exc:
        return exc.status
    prog_path = own.get("as", "qemu-system-x86_64")
    log = Log(own.get("log"))
    replay = Replay(Path(own["capture"]), os.path.basename(prog_path), log)
    log.write("start", argv=[prog_path, *qemu_args], capture=replay.capture_path.name)
    status = 0
    try:
        if "-version" in qemu_args or "--version" in qemu_args:
            (major, minor, micro), _ = replay.version()
            sys.stdout.write(
                f"QEMU emulator version {major}.{minor}.{micro} ({replay.label})\n"
                "Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n"
            )
        else:
            replay.configure(replay.parse_argv(qemu_args))
            log.write(
                "ready",
                machine=replay.machine,
                accel=replay.accel,
                cpu=replay.cpu.model,
                missing=replay.missing,
            )
            status = replay.serve()
    except Exit as exc:
        status = exc.status
    except (BrokenPipeError, ConnectionResetError):
        status = 0  # the client went away mid-reply; QEMU does not care either
    log.write("exit", status=status)
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
