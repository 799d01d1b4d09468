"""The explicit, versioned Arrow schema of every table of the store.

Why explicit rather than inferred from rows: inference makes a column's type
depend on the first value seen (an all-null ``port`` becomes ``null``, a
small ``xlevel`` becomes int32), so two runs of the same table would disagree
and DuckDB or pyarrow would refuse to read them together. Every file carries
its table name and schema version in the Parquet key-value metadata, which is
how a reader tells our files from someone else's.

Evolution rule (pinned by a test): within ``v1/`` a change may only *add*
nullable columns, bumping that table's ``version``; readers read every file
through the current schema, so old files get nulls in the new columns. Any
other change (a type, a meaning, a removed column) starts ``v2/``.

Pure: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..vocabulary import Accel

__all__ = [
    "ADOPTIONS",
    "COMPLIANCE",
    "DETAIL_TABLES",
    "EXPANSION",
    "FEATURE_WORDS",
    "FILE_ENTRY",
    "HEADROOM",
    "HOSTS",
    "INDEX",
    "INDEX_ACCELS",
    "LAYOUT",
    "LAYOUTS",
    "LAYOUT_DIR",
    "MACHINES",
    "MACHINE_ENTRY",
    "META_TABLE",
    "META_VERSION",
    "MODELS",
    "RUNS",
    "RUN_TABLES",
    "STRINGS",
    "TABLES",
    "TIME",
    "VERIFY",
    "TableSpec",
]

#: The store layout this fleetcpu creates, named in the store marker. Layout 2 commits
#: a run in parts (several files per table per run, each part with its own commit
#: record), so a kill loses seconds, not the run; a fleetcpu that knows only layout 1
#: refuses such a store rather than read one part of a run as all of it.
LAYOUT = 2
#: Layouts this fleetcpu opens: it reads both, and writes each in its own way (a
#: layout 1 store keeps one file per table per run, so older fleetcpus can share it).
LAYOUTS = (1, 2)
#: The directory under the store root that holds the tables: the generation of the
#: table schemas (a breaking schema change starts ``v2/``), not the layout version.
LAYOUT_DIR = "v1"

META_TABLE = b"fleetcpu.table"
META_VERSION = b"fleetcpu.schema_version"

#: Every time in the store: milliseconds are what the orchestrator's clock
#: resolves usefully, and UTC avoids any local-time ambiguity.
TIME = pa.timestamp("ms", tz="UTC")
STRINGS = pa.list_(pa.string())


@dataclass(frozen=True)
class TableSpec:
    """One table: its name (the directory), schema version and Arrow schema."""

    name: str
    version: int
    schema: pa.Schema

    @property
    def with_metadata(self) -> pa.Schema:
        """The schema as written into files: it names its table and version."""
        return self.schema.with_metadata(
            {META_TABLE: self.name.encode(), META_VERSION: str(self.version).encode()}
        )

    @property
    def names(self) -> list[str]:
        return list(self.schema.names)


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field[Any]:
    return pa.field(name, type_, nullable=nullable)


#: One file a run committed, as its commit record lists it: ``path`` relative to the
#: layout directory (``hosts/date=.../run-<id>.parquet``), its rows, bytes and sha256.
FILE_ENTRY = pa.struct(
    [
        pa.field("table", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
    ]
)

#: One entry of a QEMU's machine list (``query-machines``), as the probe records it.
MACHINE_ENTRY = pa.struct(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("alias", pa.string()),
        pa.field("is_default", pa.bool_(), nullable=False),
        pa.field("deprecated", pa.bool_(), nullable=False),
    ]
)

RUNS = TableSpec(
    "runs",
    3,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("started_at", TIME, False),
            _f("finished_at", TIME, False),
            _f("command", pa.string(), False),
            _f("inventory", pa.string()),
            _f("fleetcpu_version", pa.string(), False),
            # complete | interrupted: an interrupted run still holds every host it added;
            # partial (layout 2): a part of a run whose last part is still to come.
            _f("status", pa.string(), False),
            _f("hosts_ok", pa.int32(), False),
            _f("hosts_failed", pa.int32(), False),
            # Hosts whose CPU data changed and so got detail rows in this run.
            _f("hosts_detail", pa.int32(), False),
            # v2: every file the run committed (the runs file itself aside). Null in runs
            # written before: those are trusted as they are, and fsck calls them unverified.
            _f("files", pa.list_(FILE_ENTRY)),
            # v3, layout 2: the part of the run this record commits (1, 2, ...), its
            # files only and its hosts only (a run's totals are the sums over its
            # records). Every part but the last has status "partial"; the last says
            # complete or interrupted. Null: the record commits the whole run (layout 1).
            _f("part", pa.int32()),
        ]
    ),
)

HOSTS = TableSpec(
    "hosts",
    3,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("host", pa.string(), False),
            _f("pool", pa.string(), False),
            _f("collected_at", TIME, False),
            _f("status", pa.string(), False),
            _f("stage", pa.string()),
            _f("error", pa.string()),
            _f("error_code", pa.string()),
            _f("stderr_tail", pa.string()),
            _f("accel", pa.string()),
            _f("accel_reason", pa.string()),
            _f("qemu_version", pa.string()),
            _f("qemu_package", pa.string()),
            _f("qemu_binary", pa.string()),
            _f("qemu_kvm_present", pa.bool_()),
            _f("qemu_kvm_enabled", pa.bool_()),
            _f("hostname", pa.string()),
            _f("kernel_release", pa.string()),
            _f("cpu_vendor", pa.string()),
            _f("cpu_family", pa.int32()),
            _f("cpu_model", pa.int32()),
            _f("cpu_stepping", pa.int32()),
            _f("cpu_model_name", pa.string()),
            _f("microcode", pa.string()),
            _f("kvm_module", pa.string()),
            _f("kvm_nested", pa.string()),
            _f("dev_kvm", pa.string()),
            _f("synthetic", pa.string()),
            _f("probe_time", TIME),
            _f("probe_version", pa.string()),
            _f("probe_duration_s", pa.float64()),
            _f("duration_s", pa.float64()),
            _f("machine_types", STRINGS),
            # What the inventory declares for the host's pool (the machine types its VMs pin).
            _f("declared_machine_types", STRINGS),
            _f("conn_transport", pa.string()),
            _f("conn_address", pa.string()),
            _f("conn_port", pa.int32()),
            _f("conn_user", pa.string()),
            _f("conn_python", pa.string()),
            _f("conn_qemu", pa.string()),
            # Every QEMU launch the probe made, as JSON: evidence, rarely queried.
            _f("attempts", pa.string()),
            _f("cpu_digest", pa.string()),
            # The run whose detail tables hold this host's CPU data for this row.
            _f("detail_run", pa.string()),
            # v2: the QEMU's machine list (every type it can start, deprecation, aliases):
            # "machine type gone from this QEMU" is provable from stored data. Null: not
            # recorded (no QEMU answered, or a row written before v2).
            _f("qemu_machines", pa.list_(MACHINE_ENTRY)),
            # v3: the highest x86-64 psABI level (x86-64-v1..v4) the host's CPU offers, over
            # every machine type probed (``probe.abi_level``). Null: a failed run, not even
            # v1, or a row written before v3.
            _f("abi_level", pa.string()),
        ]
    ),
)

MACHINES = TableSpec(
    "machines",
    1,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("host", pa.string(), False),
            _f("machine_type", pa.string(), False),
            _f("requested", pa.string(), False),
            _f("accel", pa.string(), False),
            _f("cpu", pa.string(), False),
            _f("vendor", pa.string()),
            _f("family", pa.int32()),
            _f("model", pa.int32()),
            _f("stepping", pa.int32()),
            _f("model_id", pa.string()),
            _f("level", pa.int64()),
            _f("xlevel", pa.int64()),
            _f("phys_bits", pa.int32()),
            # QMP queries that failed while the probe went on, as JSON.
            _f("errors", pa.string()),
        ]
    ),
)

FEATURE_WORDS = TableSpec(
    "feature_words",
    1,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("host", pa.string(), False),
            _f("machine_type", pa.string(), False),
            _f("leaf", pa.int64(), False),
            _f("subleaf", pa.int64(), False),
            _f("register", pa.string(), False),
            # null: QEMU did not report this register in that list.
            _f("supported", pa.int64()),
            _f("filtered", pa.int64()),
        ]
    ),
)

MODELS = TableSpec(
    "models",
    1,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("host", pa.string(), False),
            _f("machine_type", pa.string(), False),
            _f("model", pa.string(), False),
            _f("usable", pa.bool_(), False),
            _f("unavailable_features", STRINGS, False),
            _f("alias_of", pa.string()),
            _f("deprecated", pa.bool_(), False),
            _f("migration_safe", pa.bool_()),
            _f("static", pa.bool_(), False),
            _f("typename", pa.string()),
            # The model's static expansion on this machine type (usable, non-alias models).
            _f("features", STRINGS),
        ]
    ),
)

EXPANSION = TableSpec(
    "expansion",
    1,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("host", pa.string(), False),
            _f("machine_type", pa.string(), False),
            _f("kind", pa.string(), False),  # static | full
            _f("model", pa.string(), False),
            _f("enabled", STRINGS, False),
            _f("disabled", STRINGS, False),
            # Non-feature properties (level, model-id, hv-spinlocks...) as JSON:
            # their value types vary per property.
            _f("props", pa.string(), False),
        ]
    ),
)

#: ``fleetcpu verify``: one row per host per verify run. Why its own table and
#: not ``hosts`` rows: a verify run starts the pool's CPU, it does not probe the
#: host, so it must never become a host's latest record (the baseline reads
#: those); and history must still show when a pool stopped verifying.
VERIFY = TableSpec(
    "verify",
    1,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("host", pa.string(), False),
            _f("pool", pa.string(), False),
            _f("collected_at", TIME, False),
            _f("accel", pa.string(), False),
            # As asked (the baseline's, or --machine-type) and as the host's QEMU resolved it.
            _f("machine_type", pa.string(), False),
            _f("resolved_machine_type", pa.string()),
            # The -cpu string verified, without the ",enforce" verify always adds.
            _f("cpu", pa.string(), False),
            _f("passed", pa.bool_(), False),
            # pass | refused | filtered | differs | unverified | failed (fleetcpu.verify.VERDICTS)
            _f("verdict", pa.string(), False),
            # null: QEMU was never launched (connect, python, qemu missing...).
            _f("started", pa.bool_()),
            _f("exit_status", pa.int32()),
            # Features QEMU named when it refused to start under enforce.
            _f("missing", STRINGS),
            # Features the started vCPU filtered (must be none).
            _f("filtered", STRINGS),
            # sha256 of the vCPU's feature-words; null when they could not be read.
            _f("words_digest", pa.string()),
            # null: not compared (did not start, or feature-words unreadable).
            _f("equal_to_pool", pa.bool_()),
            # The host whose vCPU was the pool's reference in this run.
            _f("reference", pa.string()),
            # How this vCPU differs from the reference (registers, scalars), as JSON.
            _f("differences", pa.string()),
            _f("stage", pa.string()),
            _f("error", pa.string()),
            _f("error_code", pa.string()),
            _f("stderr_tail", pa.string()),
            _f("qemu_version", pa.string()),
            _f("duration_s", pa.float64()),
        ]
    ),
)

#: ``fleetcpu adopt``: one row per adoption, append-only (a later row for the pool
#: supersedes, never replaces, an earlier one). Written as a run of its own
#: (command ``adopt``, no ``hosts`` rows), so history keeps every contract a pool had.
ADOPTIONS = TableSpec(
    "adoptions",
    2,
    pa.schema(
        [
            _f("adoption_id", pa.string(), False),  # the adopt run's id
            _f("adopted_at", TIME, False),
            _f("adopted_by", pa.string(), False),  # user@host of the orchestrator
            _f("pool", pa.string(), False),
            _f("note", pa.string()),
            _f("machine_type", pa.string(), False),
            _f("accel", pa.string(), False),
            # baseline (today's, computed) | operator (--cpu STRING)
            _f("source", pa.string(), False),
            # The -cpu string judged: the named form (or the operator's string).
            _f("cpu", pa.string(), False),
            _f("custom", pa.string()),
            _f("model", pa.string(), False),
            _f("vendor", pa.string()),
            # Exactly the features a guest gets from ``cpu`` (canonical names).
            _f("features", STRINGS, False),
            _f("family", pa.int32()),
            _f("cpu_model", pa.int32()),
            _f("stepping", pa.int32()),
            _f("level", pa.int64()),
            _f("xlevel", pa.int64()),
            _f("phys_bits", pa.int32()),
            # The members it was computed from (or judged against), and their data's runs.
            _f("members", STRINGS, False),
            _f("member_runs", STRINGS, False),
            _f("previous", pa.string()),  # the adoption it superseded
            # v2: what ``adopt --require`` asked (levels and features, as given); the adopted
            # ``features`` hold every feature it names. Null: none asked, or written before v2.
            _f("required", STRINGS),
        ]
    ),
)

#: Compliance: one row per member of a pool with an adopted CPU, per collect or
#: import run that probed it, written in that run (so it commits with the data it
#: judges). The states and reasons are ``fleetcpu.contract.states``' closed sets.
COMPLIANCE = TableSpec(
    "compliance",
    2,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("host", pa.string(), False),
            _f("pool", pa.string(), False),
            _f("collected_at", TIME, False),
            _f("adoption_id", pa.string(), False),
            _f("machine_type", pa.string(), False),
            # compliant | non-compliant | undecided | failed | stale | tcg-only
            _f("state", pa.string(), False),
            # non-compliant: machine-type-missing | model-unusable | features-lacking |
            # model-differs | vendor-differs
            _f("reason", pa.string()),
            _f("lacking", STRINGS, False),
            _f("extra", STRINGS, False),
            _f("detail", pa.string()),
            # The host as judged, and as it was at its last compliant run (what changed).
            _f("microcode", pa.string()),
            _f("kernel_release", pa.string()),
            _f("qemu_version", pa.string()),
            _f("last_compliant_run", pa.string()),
            _f("last_compliant_at", TIME),
            _f("last_compliant_microcode", pa.string()),
            _f("last_compliant_kernel", pa.string()),
            _f("last_compliant_qemu", pa.string()),
            # v2: the revision of the judging rule that gave this verdict
            # (``contract.judge.RULE_REVISION``): ``status`` takes a stored verdict as
            # its own only from the same rule. Null: written before v2, never taken.
            _f("rule", pa.int32()),
        ]
    ),
)

#: Headroom: one row per pool with an adopted CPU whose members a collect run probed
#: (``contract.shell.ComplianceRecorder``), written in the run's last part: what
#: today's baseline of those members would gain or lose over the adopted CPU. It is a
#: derived cache, never a record of its own: ``status`` takes it only when the pool's
#: current members are exactly the run's (``members_sha256``, below), the adoption,
#: the headroom's revision and the fleetcpu version match; else it computes the
#: headroom from the stored data, as it did before.
HEADROOM = TableSpec(
    "headroom",
    1,
    pa.schema(
        [
            _f("run_id", pa.string(), False),
            _f("pool", pa.string(), False),
            _f("adoption_id", pa.string(), False),
            # ``contract.shell.HEADROOM_REVISION``: what computing it means.
            _f("revision", pa.int32(), False),
            # sha256 over the sorted names of the members judged current in this run,
            # one per line: the pool's current members must be exactly these.
            _f("members_sha256", pa.string(), False),
            _f("members", pa.int64(), False),
            _f("gain", STRINGS, False),
            _f("lost", STRINGS, False),
            # Today's baseline's -cpu string (null: none could be computed, ``problem`` says why).
            _f("cpu", pa.string()),
            _f("problem", pa.string()),
        ]
    ),
)

#: Accelerators the index keeps a "latest successful data" slot for.
INDEX_ACCELS = Accel.values()

#: The latest-state index: derived data, rebuildable from ``hosts``.
INDEX = TableSpec(
    "index",
    2,
    pa.schema(
        [
            _f("host", pa.string(), False),
            _f("pool", pa.string(), False),
            _f("run_id", pa.string(), False),
            _f("collected_at", TIME, False),
            _f("status", pa.string(), False),
            _f("stage", pa.string()),
            _f("error", pa.string()),
            _f("error_code", pa.string()),
            _f("accel", pa.string()),
            _f("qemu_version", pa.string()),
            _f("cpu_digest", pa.string()),
            _f("detail_run", pa.string()),
            _f("declared_machine_types", STRINGS),
            # One slot per accelerator: kvm_run, kvm_collected_at, ..., tcg_cpu_digest.
            *(
                _f(f"{accel}_{name}", kind)
                for accel in INDEX_ACCELS
                for name, kind in (
                    ("run", pa.string()),
                    ("collected_at", TIME),
                    ("detail_run", pa.string()),
                    ("cpu_digest", pa.string()),
                )
            ),
            # v2: the latest record's ``abi_level`` (hosts schema 3), written at commit, so
            # ``hosts`` shows it from the index. Null in an index written before v2 (until
            # the host's next run), and where the hosts row has none.
            _f("abi_level", pa.string()),
        ]
    ),
)

#: Tables written per run, the commit record (``runs``) last.
DETAIL_TABLES = (MACHINES, FEATURE_WORDS, MODELS, EXPANSION)
RUN_TABLES = (*DETAIL_TABLES, HOSTS, VERIFY, ADOPTIONS, COMPLIANCE, HEADROOM, RUNS)
TABLES = {spec.name: spec for spec in (*RUN_TABLES, INDEX)}
