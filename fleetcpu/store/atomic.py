"""Files that appear whole or not at all, and the store lock.

Every file is written under a hidden temporary name beside its target
(``.<name>.tmp``), fsynced, renamed, and its directory fsynced: a crash,
Ctrl-C or SIGKILL leaves at most a hidden temporary, which pyarrow's dataset
discovery and DuckDB's ``*.parquet`` glob never see, and never a visible
file without its Parquet footer. A later writer removes a run's temporaries
once that run's lease proves its writer dead (``lease.py``), never by age.

The lock serialises only the read-merge-replace of shared files (the
index); data files have unique names per run and need none.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import StoreLockedError
from .layout import is_temporary, temporary
from .schema import TableSpec

__all__ = [
    "COMPRESSION",
    "STALE_AFTER_S",
    "ParquetSink",
    "fsync_dir",
    "locked",
    "publish",
    "remove_temporaries",
    "write_bytes",
    "write_table",
]

STALE_AFTER_S = 3600.0
COMPRESSION: Final = "zstd"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Make a fully written, fsynced temporary visible under its final name."""
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_bytes(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write ``path`` atomically; with ``exclusive``, never replace an existing file
    (returns False then): how two processes creating one store agree on its marker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{time.monotonic_ns()}.tmp")
    with open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            fsync_dir(path.parent)
        else:
            publish(tmp, path)
            return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return True


class ParquetSink:
    """One Parquet file being written row group by row group under its temporary name."""

    def __init__(self, final: Path, spec: TableSpec, *, unique_tmp: bool = False) -> None:
        self.final = final
        self.spec = spec
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary(final)
        if unique_tmp:
            self.tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        self._file: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 - closed in close/discard
        try:
            self._writer = pq.ParquetWriter(
                self._file,
                spec.with_metadata,
                compression=COMPRESSION,
                write_statistics=True,
            )
        except BaseException:
            # A full disk can fail the header write: no sink exists yet for the caller
            # to discard, so the temporary is removed here or it would be left stray.
            self._file.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            raise
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Footer, fsync; the file is complete but still hidden."""
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def publish(self) -> None:
        publish(self.tmp, self.final)

    def digest(self) -> tuple[int, str]:
        """(bytes, sha256) of the closed file, for the commit record: read back from the
        page cache, so a first run of 10,000 hosts pays tens of milliseconds."""
        h = hashlib.sha256()
        size = 0
        with open(self.tmp, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
        return size, h.hexdigest()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def write_table(final: Path, spec: TableSpec, table: pa.Table) -> None:
    """A whole small file at once (the index, a runs row), atomically."""
    sink = ParquetSink(final, spec, unique_tmp=True)
    try:
        sink.write(table)
        sink.close()
        sink.publish()
    except BaseException:
        sink.discard()
        raise


def remove_temporaries(directory: Path) -> int:
    """Delete every hidden temporary in ``directory``: only for a directory whose writers
    are known to be gone (the index, under the lock). Returns how many went."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if is_temporary(entry.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


@contextlib.contextmanager
def locked(path: Path, timeout: float) -> Iterator[None]:
    """Hold ``flock`` on ``path``, waiting at most ``timeout`` seconds, else StoreLockedError."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"{path}: store locked by another fleetcpu process for {timeout:g} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
