"""Where things live in a store, what run ids look like, and which store a command means.

Why run ids are ``YYYYMMDDTHHMMSS.fffZ-<8 hex>``: sorting them as strings
sorts runs by time (the orchestrator's UTC clock, or an imported document's
time), which is what "the newest run" means everywhere; the random suffix
keeps two writers started in the same millisecond apart. The date partition
of every file of a run is taken from its id, so a run's file paths are
computed, never searched for.

Pure except ``default_location``, which reads the environment it is given.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..vocabulary import rfc3339 as spell_rfc3339
from .schema import LAYOUT_DIR

__all__ = [
    "INDEX_DIR",
    "INDEX_FILE",
    "LEASE_DIR",
    "LOCK",
    "MARKER",
    "MARKER_FORMAT",
    "PART_DIGITS",
    "PENDING_DIR",
    "Layout",
    "default_location",
    "is_run_id",
    "is_temporary",
    "new_run_id",
    "parse_rfc3339",
    "part_name",
    "resolve_location",
    "rfc3339",
    "run_file_name",
    "run_time",
    "temporary",
    "utc",
]

MARKER = "fleetcpu-store.json"
MARKER_FORMAT = "fleetcpu.store"
LOCK = ".lock"
INDEX_DIR = "index"
INDEX_FILE = "latest.parquet"
#: Journal of runs being committed (see ``journal.py``).
PENDING_DIR = "pending"
#: One lease per live run writer (see ``lease.py``).
LEASE_DIR = "leases"

_RUN_ID = re.compile(r"^(\d{8}T\d{6}\.\d{3}Z)-([0-9a-f]{8})$")
_RUN_TIME = "%Y%m%dT%H%M%S.%f"


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is a bug (whose clock?), so it is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the store needs timezone-aware UTC times")
    return moment.astimezone(UTC)


def new_run_id(moment: datetime, suffix: str | None = None) -> str:
    moment = utc(moment)
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{suffix if suffix is not None else secrets.token_hex(4)}"


def is_run_id(text: str) -> bool:
    return _RUN_ID.match(text) is not None


def run_time(run_id: str) -> datetime:
    match = _RUN_ID.match(run_id)
    if match is None:
        raise ValueError(f"not a fleetcpu run id: {run_id!r}")
    return datetime.strptime(match.group(1)[:-1] + "000", _RUN_TIME).replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """``2026-11-26T10:13:36.578Z``: how every stored time is shown (a naive one is refused)."""
    return spell_rfc3339(utc(moment))


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` included) -> aware UTC; ValueError otherwise.

    (A document's time is untrusted: ``0001-01-01T00:00:00+14:00`` is valid ISO
    but has no UTC instant, and its OverflowError must not escape as a crash.)
    """
    try:
        return utc(datetime.fromisoformat(text))
    except OverflowError as exc:
        raise ValueError(f"{text!r} is out of the representable range") from exc


@dataclass(frozen=True)
class Layout:
    """The paths of one store root. Temporary files are ``.<name>.tmp`` beside their target,
    which pyarrow's dataset discovery (dot-files) and DuckDB's ``*.parquet`` glob both skip."""

    root: Path

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def data(self) -> Path:
        return self.root / LAYOUT_DIR

    def table_dir(self, table: str) -> Path:
        return self.data / table

    def run_file(self, table: str, run_id: str) -> Path:
        """The run's one file of ``table`` in layout 1 (and where its parts sit in 2)."""
        day = run_time(run_id).strftime("%Y-%m-%d")
        return self.table_dir(table) / f"date={day}" / f"run-{run_id}.parquet"

    def part_file(self, table: str, run_id: str, part: int) -> Path:
        """Part ``part`` (1, 2, ...) of the run's ``table`` in layout 2."""
        return self.run_file(table, run_id).with_name(part_name(run_id, part))

    @property
    def index_dir(self) -> Path:
        return self.data / INDEX_DIR

    @property
    def index_file(self) -> Path:
        return self.index_dir / INDEX_FILE

    @property
    def pending_dir(self) -> Path:
        return self.index_dir / PENDING_DIR

    def pending_file(self, run_id: str) -> Path:
        return self.pending_dir / run_id

    @property
    def lease_dir(self) -> Path:
        return self.data / LEASE_DIR

    def lease_file(self, run_id: str) -> Path:
        return self.lease_dir / run_id


#: ``run-<id>-00001.parquet``: parts are zero-padded to this width (more digits past it).
PART_DIGITS = 5


def part_name(run_id: str, part: int) -> str:
    if part < 1:
        raise ValueError(f"parts count from 1, not {part}")
    return f"run-{run_id}-{part:0{PART_DIGITS}d}.parquet"


def run_file_name(name: str) -> tuple[str, int | None] | None:
    """(run id, part) of a file name a run writes (part None: a layout 1 whole-run
    file), else None. Only the canonical spelling counts: ``-1`` or ``-000001`` is not
    a part's name, so a renamed copy is never mistaken for one."""
    if not (name.startswith("run-") and name.endswith(".parquet")):
        return None
    stem = name[4:-8]
    if is_run_id(stem):
        return stem, None
    head, _, digits = stem.rpartition("-")
    if is_run_id(head) and digits.isdigit() and digits.isascii():
        part = int(digits)
        if part >= 1 and part_name(head, part) == name:
            return head, part
    return None


def temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def default_location(env: Mapping[str, str] | None = None) -> Path:
    """``$FLEETCPU_STORE``, else ``$XDG_DATA_HOME/fleetcpu``, else ``~/.local/share/fleetcpu``."""
    env = os.environ if env is None else env
    if env.get("FLEETCPU_STORE"):
        return Path(env["FLEETCPU_STORE"]).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path(env.get("HOME", "~")).expanduser() / ".local/share"
    return base / "fleetcpu"


def resolve_location(option: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """``--store DIR`` wins over the environment."""
    if option is not None and str(option) != "":
        return Path(option).expanduser()
    return default_location(env)
