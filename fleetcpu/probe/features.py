"""QEMU's x86 CPU feature vocabulary: names, aliases, CPUID/MSR bits, policy classes.

Every other module compares features by name, and QEMU hands out several
spellings of one feature (``sse4.1``/``sse4_1``/``sse4-1``) mixed with
properties that are no features at all (``l3-cache``, ``hv-*``). A baseline
computed over unnormalised names would count one feature twice, or call a host
"missing" ``sse4_1`` that it has as ``sse4.1``. So names are folded here, once,
into the spelling that ``query-cpu-model-expansion type=static`` uses: that is
the one spelling QEMU itself never duplicates, and the one ``-cpu`` accepts on
every QEMU 7.2-10.0.

``feature-words`` and libvirt speak raw CPUID registers; the bit table below
turns those into the same names. It was written from the Intel SDM (vol. 2A,
CPUID) and the AMD APM (vol. 3, appendix E) and checked against QEMU and
libvirt by ``tests/test_features.py``.

Python 3.9, stdlib only: this module ships to hosts with the probe.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, Optional, Set, Tuple

from ..vocabulary import Register

__all__ = [
    "CPUID_FEATURES",
    "KVM_PV",
    "MSR_FEATURES",
    "NESTED",
    "NON_MIGRATABLE",
    "OS_CONTROLLED",
    "SECURITY",
    "TSX",
    "Word",
    "canonical",
    "cpuid_bit",
    "is_feature",
    "is_feature_word",
    "is_msr_feature",
    "is_nested",
    "is_property",
    "msr_bit",
    "names_for",
]

#: (leaf, subleaf, register): one 32-bit CPUID output register.
Word = Tuple[int, int, str]

_REGISTERS = frozenset(Register.values())

# Leaves whose output depends on ECX. For every other leaf the CPU ignores ECX,
# and QEMU's feature-words leaves cpuid-input-ecx out, so callers may pass any
# subleaf there and still hit the table.
_SUBLEAF_LEAVES = frozenset((0x7, 0xD, 0xF, 0x12, 0x14, 0x24))

_KVM_LEAF = 0x40000001
_SVM_LEAF = 0x8000000A

# ---------------------------------------------------------------------------
# CPUID feature bits, bit -> QEMU spelling, grouped by output register.
# A bit missing from a word has no QEMU name (reserved, or never exposed to
# guests); names_for() reports it by position rather than guess a name.
# ---------------------------------------------------------------------------
_CPUID: Dict[Word, Dict[int, str]] = {
    # Basic features (SDM: CPUID leaf 01H, EDX). QEMU keeps Linux's historic
    # names for bits Intel renamed: pn (PSN), clflush (CLFSH), ds (DTS), ht (HTT).
    (0x1, 0, "edx"): {
        0: "fpu",
        1: "vme",
        2: "de",
        3: "pse",
        4: "tsc",
        5: "msr",
        6: "pae",
        7: "mce",
        8: "cx8",
        9: "apic",
        11: "sep",
        12: "mtrr",
        13: "pge",
        14: "mca",
        15: "cmov",
        16: "pat",
        17: "pse36",
        18: "pn",
        19: "clflush",
        21: "ds",
        22: "acpi",
        23: "mmx",
        24: "fxsr",
        25: "sse",
        26: "sse2",
        27: "ss",
        28: "ht",
        29: "tm",
        30: "ia64",
        31: "pbe",
    },
    # Leaf 01H ECX. Bit 0 is SSE3, spelt "pni" by QEMU (and Linux). osxsave
    # mirrors the guest's CR4.OSXSAVE: see OS_CONTROLLED.
    (0x1, 0, "ecx"): {
        0: "pni",
        1: "pclmulqdq",
        2: "dtes64",
        3: "monitor",
        4: "ds-cpl",
        5: "vmx",
        6: "smx",
        7: "est",
        8: "tm2",
        9: "ssse3",
        10: "cid",
        12: "fma",
        13: "cx16",
        14: "xtpr",
        15: "pdcm",
        17: "pcid",
        18: "dca",
        19: "sse4.1",
        20: "sse4.2",
        21: "x2apic",
        22: "movbe",
        23: "popcnt",
        24: "tsc-deadline",
        25: "aes",
        26: "xsave",
        27: "osxsave",
        28: "avx",
        29: "f16c",
        30: "rdrand",
        31: "hypervisor",
    },
    # Thermal and power management: only ARAT matters to a guest.
    (0x6, 0, "eax"): {2: "arat"},
    # Structured extended features, leaf 07H subleaf 0.
    (0x7, 0, "ebx"): {
        0: "fsgsbase",
        1: "tsc-adjust",
        2: "sgx",
        3: "bmi1",
        4: "hle",
        5: "avx2",
        6: "fdp-excptn-only",
        7: "smep",
        8: "bmi2",
        9: "erms",
        10: "invpcid",
        11: "rtm",
        13: "zero-fcs-fds",
        14: "mpx",
        16: "avx512f",
        17: "avx512dq",
        18: "rdseed",
        19: "adx",
        20: "smap",
        21: "avx512ifma",
        22: "pcommit",
        23: "clflushopt",
        24: "clwb",
        25: "intel-pt",
        26: "avx512pf",
        27: "avx512er",
        28: "avx512cd",
        29: "sha-ni",
        30: "avx512bw",
        31: "avx512vl",
    },
    (0x7, 0, "ecx"): {
        1: "avx512vbmi",
        2: "umip",
        3: "pku",
        4: "ospke",
        5: "waitpkg",
        6: "avx512vbmi2",
        8: "gfni",
        9: "vaes",
        10: "vpclmulqdq",
        11: "avx512vnni",
        12: "avx512bitalg",
        14: "avx512-vpopcntdq",
        16: "la57",
        22: "rdpid",
        24: "bus-lock-detect",
        25: "cldemote",
        27: "movdiri",
        28: "movdir64b",
        30: "sgxlc",
        31: "pks",
    },
    # pconfig (bit 18), like ospke above, is a name recent QEMUs dropped;
    # expansions recorded on older QEMUs still carry it, so it stays decodable.
    (0x7, 0, "edx"): {
        2: "avx512-4vnniw",
        3: "avx512-4fmaps",
        4: "fsrm",
        8: "avx512-vp2intersect",
        10: "md-clear",
        14: "serialize",
        16: "tsx-ldtrk",
        18: "pconfig",
        19: "arch-lbr",
        22: "amx-bf16",
        23: "avx512-fp16",
        24: "amx-tile",
        25: "amx-int8",
        26: "spec-ctrl",
        27: "stibp",
        28: "flush-l1d",
        29: "arch-capabilities",
        30: "core-capability",
        31: "ssbd",
    },
    (0x7, 1, "eax"): {
        0: "sha512",
        1: "sm3",
        2: "sm4",
        4: "avx-vnni",
        5: "avx512-bf16",
        7: "cmpccxadd",
        10: "fzrm",
        11: "fsrs",
        12: "fsrc",
        17: "fred",
        18: "lkgs",
        19: "wrmsrns",
        21: "amx-fp16",
        23: "avx-ifma",
        26: "lam",
    },
    (0x7, 1, "edx"): {
        4: "avx-vnni-int8",
        5: "avx-ne-convert",
        8: "amx-complex",
        10: "avx-vnni-int16",
        14: "prefetchiti",
        19: "avx10",
    },
    (0x7, 2, "edx"): {
        0: "intel-psfd",
        1: "ipred-ctrl",
        2: "rrsba-ctrl",
        3: "ddpd-u",
        4: "bhi-ctrl",
        5: "mcdt-no",
    },
    # XSAVE extensions (subleaf 1). Subleaf 0 EAX/EDX and subleaf 1 ECX/EDX are
    # state-component bitmaps derived from features, not features: see
    # is_feature_word().
    (0xD, 1, "eax"): {0: "xsaveopt", 1: "xsavec", 2: "xgetbv1", 3: "xsaves", 4: "xfd"},
    # SGX capabilities (subleaf 0) and allowed SECS.ATTRIBUTES (subleaf 1).
    (0x12, 0, "eax"): {0: "sgx1", 1: "sgx2", 11: "sgx-edeccssa"},
    (0x12, 0, "ebx"): {0: "sgx-exinfo"},
    (0x12, 1, "eax"): {
        1: "sgx-debug",
        2: "sgx-mode64",
        4: "sgx-provisionkey",
        5: "sgx-tokenkey",
        7: "sgx-kss",
        10: "sgx-aex-notify",
    },
    # Intel PT: only the LIP bit is a feature; the rest of leaf 0x14 is a
    # capability set QEMU pins to a fixed minimum.
    (0x14, 0, "ecx"): {31: "intel-pt-lip"},
    # AVX10 converged vector ISA: supported vector lengths.
    (0x24, 0, "ebx"): {16: "avx10-128", 17: "avx10-256", 18: "avx10-512"},
    # KVM paravirtual features (Linux Documentation/virt/kvm/x86/cpuid.rst).
    # Bits 0 and 3 are the old and new kvmclock MSR ranges; QEMU drives both
    # with one property, so both decode to "kvmclock" (bit 0 is primary).
    (_KVM_LEAF, 0, "eax"): {
        0: "kvmclock",
        1: "kvm-nopiodelay",
        2: "kvm-mmu",
        3: "kvmclock",
        4: "kvm-asyncpf",
        5: "kvm-steal-time",
        6: "kvm-pv-eoi",
        7: "kvm-pv-unhalt",
        9: "kvm-pv-tlb-flush",
        10: "kvm-asyncpf-vmexit",
        11: "kvm-pv-ipi",
        12: "kvm-poll-control",
        13: "kvm-pv-sched-yield",
        14: "kvm-asyncpf-int",
        15: "kvm-msi-ext-dest-id",
        24: "kvmclock-stable-bit",
    },
    (_KVM_LEAF, 0, "edx"): {0: "kvm-hint-dedicated"},
    # AMD extended features (APM vol. 3, CPUID Fn8000_0001).
    (0x80000001, 0, "ecx"): {
        0: "lahf-lm",
        1: "cmp-legacy",
        2: "svm",
        3: "extapic",
        4: "cr8legacy",
        5: "abm",
        6: "sse4a",
        7: "misalignsse",
        8: "3dnowprefetch",
        9: "osvw",
        10: "ibs",
        11: "xop",
        12: "skinit",
        13: "wdt",
        15: "lwp",
        16: "fma4",
        17: "tce",
        19: "nodeid-msr",
        21: "tbm",
        22: "topoext",
        23: "perfctr-core",
        24: "perfctr-nb",
    },
    # Only the bits that exist nowhere else; the AMD copies of leaf-1 EDX bits
    # are added below from _AMD_MIRRORED_EDX_BITS.
    (0x80000001, 0, "edx"): {
        11: "syscall",
        20: "nx",
        22: "mmxext",
        25: "fxsr-opt",
        26: "pdpe1gb",
        27: "rdtscp",
        29: "lm",
        30: "3dnowext",
        31: "3dnow",
    },
    # RAS (EBX) and advanced power management (EDX).
    (0x80000007, 0, "ebx"): {0: "overflow-recov", 1: "succor"},
    (0x80000007, 0, "edx"): {8: "invtsc"},
    (0x80000008, 0, "ebx"): {
        0: "clzero",
        2: "xsaveerptr",
        9: "wbnoinvd",
        12: "ibpb",
        14: "ibrs",
        15: "amd-stibp",
        17: "stibp-always-on",
        24: "amd-ssbd",
        25: "virt-ssbd",
        26: "amd-no-ssb",
        28: "amd-psfd",
    },
    # SVM features (APM vol. 3, CPUID Fn8000_000A EDX).
    (_SVM_LEAF, 0, "edx"): {
        0: "npt",
        1: "lbrv",
        2: "svm-lock",
        3: "nrip-save",
        4: "tsc-scale",
        5: "vmcb-clean",
        6: "flushbyasid",
        7: "decodeassists",
        10: "pause-filter",
        12: "pfthreshold",
        13: "avic",
        15: "v-vmsave-vmload",
        16: "vgif",
        25: "vnmi",
        28: "svme-addr-chk",
    },
    # Extended feature identification 2 (Zen 3+).
    (0x80000021, 0, "eax"): {
        0: "no-nested-data-bp",
        2: "lfence-always-serializing",
        6: "null-sel-clr-base",
        8: "auto-ibrs",
        24: "eraps",
        27: "sbpb",
        28: "ibpb-brtype",
        29: "srso-no",
        30: "srso-user-kernel-no",
    },
    (0x80000022, 0, "eax"): {0: "perfmon-v2"},
    # Centaur/VIA/Zhaoxin PadLock: each engine has a present bit and an enabled bit.
    (0xC0000001, 0, "edx"): {
        2: "xstore",
        3: "xstore-en",
        6: "xcrypt",
        7: "xcrypt-en",
        8: "ace2",
        9: "ace2-en",
        10: "phe",
        11: "phe-en",
        12: "pmm",
        13: "pmm-en",
    },
}

# On AMD, CPUID 0x80000001 EDX repeats these leaf-1 EDX bits; QEMU copies them
# there for AMD vendors only and gives the copies no names. They are the same
# features, so they decode to the leaf-1 names (and cpuid_bit() stays leaf 1).
_AMD_MIRRORED_EDX_BITS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 17, 23, 24)

# ---------------------------------------------------------------------------
# MSR-based features: reported only as named properties, never in feature-words.
# msr index -> {bit: name}. For the VMX control MSRs the bit is the control's
# number, i.e. the allowed-1 flag in the MSR's upper half (bit + 32).
# ---------------------------------------------------------------------------
_MSR_MCG_CAP = 0x179
_MSR_CORE_CAPABILITY = 0xCF
_MSR_ARCH_CAPABILITIES = 0x10A
_MSR_PERF_CAPABILITIES = 0x345
_MSR_VMX_BASIC = 0x480
_MSR_VMX_MISC = 0x485
_MSR_VMX_PROCBASED_CTLS2 = 0x48B
_MSR_VMX_EPT_VPID_CAP = 0x48C
_MSR_VMX_TRUE_PINBASED = 0x48D
_MSR_VMX_TRUE_PROCBASED = 0x48E
_MSR_VMX_TRUE_EXIT = 0x48F
_MSR_VMX_TRUE_ENTRY = 0x490
_MSR_VMX_VMFUNC = 0x491

_MSR: Dict[int, Dict[int, str]] = {
    # LMCE_P: local machine-check delivery, a QEMU boolean in the static expansion.
    _MSR_MCG_CAP: {27: "lmce"},
    _MSR_CORE_CAPABILITY: {5: "split-lock-detect"},
    # Hardware "not affected"/mitigation-present flags (SDM vol. 4, 2.1).
    _MSR_ARCH_CAPABILITIES: {
        0: "rdctl-no",
        1: "ibrs-all",
        2: "rsba",
        3: "skip-l1dfl-vmentry",
        4: "ssb-no",
        5: "mds-no",
        6: "pschange-mc-no",
        7: "tsx-ctrl",
        8: "taa-no",
        13: "sbdr-ssdp-no",
        14: "fbsdp-no",
        15: "psdp-no",
        17: "fb-clear",
        20: "bhi-no",
        24: "pbrsb-no",
        26: "gds-no",
        27: "rfds-no",
        28: "rfds-clear",
    },
    _MSR_PERF_CAPABILITIES: {13: "full-width-write"},
    _MSR_VMX_BASIC: {
        54: "vmx-ins-outs",
        55: "vmx-true-ctls",
        56: "vmx-any-errcode",
        58: "vmx-nested-exception",
    },
    _MSR_VMX_MISC: {
        5: "vmx-store-lma",
        6: "vmx-activity-hlt",
        7: "vmx-activity-shutdown",
        8: "vmx-activity-wait-sipi",
        29: "vmx-vmwrite-vmexit-fields",
        30: "vmx-zero-len-inject",
    },
    _MSR_VMX_PROCBASED_CTLS2: {
        0: "vmx-apicv-xapic",
        1: "vmx-ept",
        2: "vmx-desc-exit",
        3: "vmx-rdtscp-exit",
        4: "vmx-apicv-x2apic",
        5: "vmx-vpid",
        6: "vmx-wbinvd-exit",
        7: "vmx-unrestricted-guest",
        8: "vmx-apicv-register",
        9: "vmx-apicv-vid",
        10: "vmx-ple",
        11: "vmx-rdrand-exit",
        12: "vmx-invpcid-exit",
        13: "vmx-vmfunc",
        14: "vmx-shadow-vmcs",
        15: "vmx-encls-exit",
        16: "vmx-rdseed-exit",
        17: "vmx-pml",
        20: "vmx-xsaves",
        25: "vmx-tsc-scaling",
        26: "vmx-enable-user-wait-pause",
    },
    # QEMU names bit 41 (INVVPID single-context) "vmx-invept-single-context",
    # the same name as bit 25, and bit 43 (INVVPID single-context-retaining-
    # globals) "vmx-invept-single-context-noglobals". Those are QEMU's property
    # names, so they are ours; bit 25 stays the primary bit of the shared name.
    _MSR_VMX_EPT_VPID_CAP: {
        0: "vmx-ept-execonly",
        6: "vmx-page-walk-4",
        7: "vmx-page-walk-5",
        16: "vmx-ept-2mb",
        17: "vmx-ept-1gb",
        20: "vmx-invept",
        21: "vmx-eptad",
        22: "vmx-ept-advanced-exitinfo",
        25: "vmx-invept-single-context",
        26: "vmx-invept-all-context",
        32: "vmx-invvpid",
        40: "vmx-invvpid-single-addr",
        41: "vmx-invept-single-context",
        42: "vmx-invvpid-all-context",
        43: "vmx-invept-single-context-noglobals",
    },
    _MSR_VMX_TRUE_PINBASED: {
        0: "vmx-intr-exit",
        3: "vmx-nmi-exit",
        5: "vmx-vnmi",
        6: "vmx-preemption-timer",
        7: "vmx-posted-intr",
    },
    _MSR_VMX_TRUE_PROCBASED: {
        2: "vmx-vintr-pending",
        3: "vmx-tsc-offset",
        7: "vmx-hlt-exit",
        9: "vmx-invlpg-exit",
        10: "vmx-mwait-exit",
        11: "vmx-rdpmc-exit",
        12: "vmx-rdtsc-exit",
        15: "vmx-cr3-load-noexit",
        16: "vmx-cr3-store-noexit",
        19: "vmx-cr8-load-exit",
        20: "vmx-cr8-store-exit",
        21: "vmx-flexpriority",
        22: "vmx-vnmi-pending",
        23: "vmx-movdr-exit",
        24: "vmx-io-exit",
        25: "vmx-io-bitmap",
        27: "vmx-mtf",
        28: "vmx-msr-bitmap",
        29: "vmx-monitor-exit",
        30: "vmx-pause-exit",
        31: "vmx-secondary-ctls",
    },
    _MSR_VMX_TRUE_EXIT: {
        2: "vmx-exit-nosave-debugctl",
        12: "vmx-exit-load-perf-global-ctrl",
        15: "vmx-exit-ack-intr",
        18: "vmx-exit-save-pat",
        19: "vmx-exit-load-pat",
        20: "vmx-exit-save-efer",
        21: "vmx-exit-load-efer",
        22: "vmx-exit-save-preemption-timer",
        23: "vmx-exit-clear-bndcfgs",
        25: "vmx-exit-clear-rtit-ctl",
        29: "vmx-exit-load-pkrs",
        31: "vmx-exit-secondary-ctls",
    },
    _MSR_VMX_TRUE_ENTRY: {
        2: "vmx-entry-noload-debugctl",
        9: "vmx-entry-ia32e-mode",
        13: "vmx-entry-load-perf-global-ctrl",
        14: "vmx-entry-load-pat",
        15: "vmx-entry-load-efer",
        16: "vmx-entry-load-bndcfgs",
        18: "vmx-entry-load-rtit-ctl",
        22: "vmx-entry-load-pkrs",
        23: "vmx-entry-load-fred",
    },
    _MSR_VMX_VMFUNC: {0: "vmx-eptp-switching"},
}

# Spellings QEMU accepts besides the canonical one that the "_" -> "-" rule
# below cannot derive: renamed features whose old name QEMU still registers.
_EXPLICIT_ALIASES: Dict[str, str] = {
    "sse3": "pni",
    "pclmuldq": "pclmulqdq",
    "sse4_1": "sse4.1",
    "sse4-1": "sse4.1",
    "sse4_2": "sse4.2",
    "sse4-2": "sse4.2",
    "xd": "nx",
    "ffxsr": "fxsr-opt",
    "i64": "lm",
}

# Properties of the QEMU CPU object that are not features: they shape CPUID
# (levels, topology, caches), pick QEMU behaviour, or are QOM plumbing. A
# baseline must never intersect them as if a host could "lack" them.
_PROPERTIES = frozenset(
    (
        # Identity of the virtual CPU, not capability.
        "vendor",
        "family",
        "model",
        "stepping",
        "model-id",
        "ucode-rev",
        # CPUID level limits and leaf layout.
        "level",
        "xlevel",
        "xlevel2",
        "min-level",
        "min-xlevel",
        "min-xlevel2",
        "level-func7",
        "full-cpuid-auto-level",
        "cpuid-0xb",
        "avx10-version",
        # Address widths.
        "phys-bits",
        "host-phys-bits",
        "host-phys-bits-limit",
        "guest-phys-bits",
        "fill-mtrr-mask",
        # Cache and topology description.
        "l3-cache",
        "legacy-cache",
        "host-cache-info",
        "legacy-multi-node",
        "apic-id",
        "core-id",
        "die-id",
        "module-id",
        "node-id",
        "socket-id",
        "thread-id",
        "cluster-id",
        # QEMU behaviour switches. "kvm" is the bare switch exposing the KVM
        # leaves, not a CPUID bit; "kvm-no-smi-migration" and "kvm-pv-enforce-cpuid"
        # share the kvm- prefix of the PV features but are switches too.
        "check",
        "enforce",
        "migratable",
        "pmu",
        "lbr-fmt",
        "lbr_fmt",
        "kvm",
        "tcg-cpuid",
        "vmware-cpuid-freq",
        "xen-vapic",
        "kvm-no-smi-migration",
        "kvm-pv-enforce-cpuid",
        "tsc-frequency",
        "start-powered-off",
        # QOM plumbing and the probe's own read-only views.
        "memory",
        "realized",
        "hotplugged",
        "hotpluggable",
        "parent_bus",
        "type",
        "feature-words",
        "filtered-features",
        "unavailable-features",
    )
)

# Whole namespaces of non-features: Hyper-V enlightenments (their own CPUID
# leaves, configured per VM, not per host) and QEMU's experimental/compat knobs.
_PROPERTY_PREFIXES = ("hv-", "hv_", "x-")

# ---------------------------------------------------------------------------
# Reverse indexes, built once so every lookup is one dict probe.
# ---------------------------------------------------------------------------


def _build_decode() -> Dict[Tuple[int, int, str, int], str]:
    out: Dict[Tuple[int, int, str, int], str] = {}
    for (leaf, subleaf, reg), bits in _CPUID.items():
        for bit, name in bits.items():
            out[(leaf, subleaf, reg, bit)] = name
    for bit in _AMD_MIRRORED_EDX_BITS:
        out[(0x80000001, 0, "edx", bit)] = _CPUID[(0x1, 0, "edx")][bit]
    return out


def _build_primary_cpuid() -> Dict[str, Tuple[int, int, str, int]]:
    out: Dict[str, Tuple[int, int, str, int]] = {}
    for (leaf, subleaf, reg), bits in _CPUID.items():
        for bit, name in sorted(bits.items()):
            out.setdefault(name, (leaf, subleaf, reg, bit))
    return out


def _build_primary_msr() -> Dict[str, Tuple[int, int]]:
    out: Dict[str, Tuple[int, int]] = {}
    for index, bits in _MSR.items():
        for bit, name in sorted(bits.items()):
            out.setdefault(name, (index, bit))
    return out


_DECODE = _build_decode()
_CPUID_BIT = _build_primary_cpuid()
_MSR_BIT = _build_primary_msr()

#: Every CPUID-based feature, canonical spelling.
CPUID_FEATURES: FrozenSet[str] = frozenset(_CPUID_BIT)

#: Features that live in MSRs (IA32_ARCH_CAPABILITIES, IA32_CORE_CAPABILITIES,
#: IA32_PERF_CAPABILITIES, IA32_MCG_CAP, the VMX capability MSRs): QEMU reports
#: them only as named properties, so feature-words can never confirm them.
MSR_FEATURES: FrozenSet[str] = frozenset(_MSR_BIT)

_ALL_FEATURES: FrozenSet[str] = CPUID_FEATURES | MSR_FEATURES


def _build_canonical() -> Dict[str, str]:
    out: Dict[str, str] = {}
    for name in _ALL_FEATURES:
        # QEMU's -cpu parser turns "_" into "-", and it registers the
        # underscore spelling of older names as QOM aliases (lahf_lm,
        # kvm_asyncpf, ...): both name the same feature.
        if "-" in name:
            out[name.replace("-", "_")] = name
    out.update(_EXPLICIT_ALIASES)
    for name in _ALL_FEATURES:
        out[name] = name
    return out


_CANONICAL = _build_canonical()

# ---------------------------------------------------------------------------
# Feature classes the baseline policy treats specially.
# ---------------------------------------------------------------------------

#: QEMU refuses to migrate a guest that has these (it masks them from
#: migratable "host"/"max" CPUs): a pool baseline that includes one is a pool
#: that cannot live-migrate. invtsc is the only feature QEMU 7.2-10.0 marks
#: unmigratable; the tests check that migratable=off changes nothing else.
NON_MIGRATABLE: FrozenSet[str] = frozenset(("invtsc",))

#: Nested virtualisation: present only when the host kernel enables nesting
#: (kvm_intel.nested / kvm_amd.nested), so a module reload changes them
#: without any hardware change; and a vmx-* mismatch is the classic
#: "migration fails for a guest that never used VMX".
NESTED: FrozenSet[str] = frozenset(
    {"vmx", "svm"}
    | set(_CPUID[(_SVM_LEAF, 0, "edx")].values())
    | {n for n in MSR_FEATURES if n.startswith("vmx-")}
)

#: KVM's paravirtual leaf: it depends on the host kernel's KVM, not on the
#: silicon, and is absent under TCG, so it must be judged per accelerator.
KVM_PV: FrozenSet[str] = frozenset(
    set(_CPUID[(_KVM_LEAF, 0, "eax")].values()) | set(_CPUID[(_KVM_LEAF, 0, "edx")].values())
)

#: Transactional memory: microcode and kernels (TAA mitigation, tsx=off)
#: remove it from hosts that had it, so it vanishes from a pool without any
#: hardware change. tsx-ldtrk is enumerated independently and is not here.
TSX: FrozenSet[str] = frozenset(("hle", "rtm"))

#: Speculative-execution controls and "not affected" bits. They change with
#: microcode and kernel updates, and a guest that lacks a mitigation its host
#: has is silently vulnerable, so the policy reports them apart from ISA
#: features rather than quietly dropping them from a baseline.
SECURITY: FrozenSet[str] = frozenset(
    {
        # Intel enumeration and controls (CPUID 7.0 EDX, 7.2 EDX).
        "spec-ctrl",
        "stibp",
        "ssbd",
        "md-clear",
        "flush-l1d",
        "arch-capabilities",
        "core-capability",
        "intel-psfd",
        "ipred-ctrl",
        "rrsba-ctrl",
        "ddpd-u",
        "bhi-ctrl",
        "mcdt-no",
        # AMD enumeration and controls (CPUID 0x80000008 EBX, 0x80000021 EAX).
        "ibpb",
        "ibrs",
        "amd-stibp",
        "stibp-always-on",
        "amd-ssbd",
        "virt-ssbd",
        "amd-no-ssb",
        "amd-psfd",
        "lfence-always-serializing",
        "auto-ibrs",
        "eraps",
        "sbpb",
        "ibpb-brtype",
        "srso-no",
        "srso-user-kernel-no",
    }
    | set(_MSR[_MSR_ARCH_CAPABILITIES].values())
)

#: Bits the CPU sets from the guest OS's CR4 (OSXSAVE, OSPKE): they say what
#: the OS enabled, not what the CPU offers, so a baseline must ignore them.
OS_CONTROLLED: FrozenSet[str] = frozenset(("osxsave", "ospke"))

# XSAVE state-component bitmaps (XCR0 and IA32_XSS halves): QEMU lists them in
# feature-words, but they follow from features (avx -> YMM state) and have no
# names of their own.
_STATE_COMPONENT_WORDS: FrozenSet[Word] = frozenset(
    ((0xD, 0, "eax"), (0xD, 0, "edx"), (0xD, 1, "ecx"), (0xD, 1, "edx"))
)


# ---------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------


def canonical(name: str) -> str:
    """The static-expansion spelling of a feature; unknown names come back unchanged.

    Unknown names pass through so that a newer QEMU's feature is still carried
    (under its own name) instead of being dropped or rejected by an older probe.
    """
    return _CANONICAL.get(name, name)


def is_property(name: str) -> bool:
    """True for CPU-object properties that are not features (``level``, ``hv-*``, ``x-*``)."""
    return name in _PROPERTIES or name.startswith(_PROPERTY_PREFIXES)


def is_msr_feature(name: str) -> bool:
    """True for MSR-based features; every ``vmx-*`` counts, known to this table or not.

    QEMU keeps the vmx- namespace for VMX capability-MSR bits, so a name a newer
    QEMU adds there is still an MSR feature that feature-words cannot show.
    """
    canon = canonical(name)
    return canon in MSR_FEATURES or canon.startswith("vmx-")


def is_feature(name: str) -> bool:
    """True for a known feature or any spelling QEMU accepts for one (and any ``vmx-*``)."""
    return canonical(name) in _ALL_FEATURES or is_msr_feature(name)


def is_nested(name: str) -> bool:
    """True for VMX/SVM and everything that exists only with nesting enabled."""
    canon = canonical(name)
    return canon in NESTED or canon.startswith("vmx-")


def cpuid_bit(name: str) -> Optional[Tuple[int, int, str, int]]:
    """``(leaf, subleaf, register, bit)`` of a CPUID feature, None for MSR features and unknowns.

    A feature QEMU drives through two bits (kvmclock) gives its first bit; an AMD
    copy in 0x80000001 EDX is never returned, the leaf-1 bit is the feature.
    """
    return _CPUID_BIT.get(canonical(name))


def msr_bit(name: str) -> Optional[Tuple[int, int]]:
    """``(msr index, bit)`` of an MSR feature, None otherwise.

    For VMX control MSRs the bit is the control's number (its allowed-1 flag is
    MSR bit ``bit + 32``), which is how QEMU and libvirt number them.
    """
    return _MSR_BIT.get(canonical(name))


def _norm(leaf: int, subleaf: int, register: str) -> Word:
    reg = register.lower()
    if reg not in _REGISTERS:
        raise ValueError(f"not a CPUID output register: {register!r}")
    return (leaf, subleaf if leaf in _SUBLEAF_LEAVES else 0, reg)


def is_feature_word(leaf: int, subleaf: int, register: str) -> bool:
    """True if the register holds feature flags this table names.

    False for state-component bitmaps (XCR0/XSS in leaf 0xD) and unknown words,
    whose set bits are not features and must not enter a baseline.
    """
    word = _norm(leaf, subleaf, register)
    return word in _CPUID and word not in _STATE_COMPONENT_WORDS


def names_for(leaf: int, subleaf: int, register: str, bits: int) -> Tuple[str, ...]:
    """Canonical names of the set bits of one CPUID register, in bit order, each once.

    A set bit without a QEMU name becomes ``cpuid-0x<leaf>-<subleaf>-<reg>-bit<n>``
    so that it is still reported (and still compared) rather than lost.
    Raises ValueError for a value that cannot be a 32-bit register.
    """
    if not 0 <= bits <= 0xFFFFFFFF:
        raise ValueError(f"CPUID register value out of 32-bit range: {bits!r}")
    leaf, subleaf, reg = _norm(leaf, subleaf, register)
    out: List[str] = []
    seen: Set[str] = set()
    remaining = bits
    while remaining:
        low = remaining & -remaining
        bit = low.bit_length() - 1
        remaining ^= low
        name = _DECODE.get((leaf, subleaf, reg, bit))
        if name is None:
            name = f"cpuid-0x{leaf:x}-{subleaf}-{reg}-bit{bit}"
        if name not in seen:
            seen.add(name)
            out.append(name)
    return tuple(out)
