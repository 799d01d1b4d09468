"""Per-run leases: the proof that a run is dead before anyone deletes its files.

Why not an age: a run flushes its files every 500 hosts, so a slow run can
leave them untouched for hours while it lives; judging its temporaries
stale by their mtime deleted a live run's data. Instead every run writer
holds, from before its first file until after its last, an exclusive
``flock`` on ``v1/leases/<run_id>``. The kernel drops the lock when the
process dies in any way (SIGKILL included), so "I could take the lock" is a
proof that the writer is gone; nothing is guessed from time.

The lease file is created under a hidden name, locked, and only then renamed
into place: nobody can see an unlocked lease of a live writer. A run's files
are all named after its run id, so a dead lease tells a sweeper exactly which
temporaries (and, before the commit record, which published files) are
garbage, on any date.

On an object store (no flock) the same file becomes an object the writer
rewrites every heartbeat; see docs/store.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from .atomic import fsync_dir
from .layout import Layout, is_run_id

__all__ = ["Lease", "dead_runs", "drop", "has_lease", "is_live", "temporaries_of"]


class Lease:
    """The held lease of one live run; ``release`` it once the run left no temporaries."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def take(cls, layout: Layout, run_id: str) -> Lease:
        directory = layout.lease_dir
        directory.mkdir(parents=True, exist_ok=True)
        hidden = directory / f".{run_id}.tmp"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
            # For a human looking at a stuck store; nobody trusts it as proof.
            holder = {"pid": os.getpid(), "host": socket.gethostname()}
            os.write(fd, (json.dumps(holder) + "\n").encode())
            os.fsync(fd)
            final = layout.lease_file(run_id)
            os.replace(hidden, final)
            fsync_dir(directory)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(hidden)
            raise
        return cls(final, fd)

    def release(self) -> None:
        """Delete the lease, then drop the lock: a sweeper that finds it free finds it gone."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def has_lease(layout: Layout, run_id: str) -> bool:
    return layout.lease_file(run_id).exists()


@contextlib.contextmanager
def _probe(path: Path) -> Iterator[bool]:
    """True while we hold the lock of a lease nobody holds (its writer is dead)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def dead_runs(layout: Layout) -> list[str]:
    """Runs whose lease exists and is held by no process: their writers are gone."""
    try:
        names = sorted(e.name for e in os.scandir(layout.lease_dir))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not is_run_id(name):
            continue
        with _probe(layout.lease_file(name)) as dead:
            if dead:
                out.append(name)
    return out


def is_live(layout: Layout, run_id: str) -> bool:
    """A writer holds this run's lease right now."""
    path = layout.lease_file(run_id)
    if not path.exists():
        return False
    with _probe(path) as dead:
        return not dead and path.exists()


def drop(layout: Layout, run_id: str) -> None:
    """Forget a dead run's lease, once its files are dealt with."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layout.lease_file(run_id))


def temporaries_of(layout: Layout, run_id: str, tables: tuple[str, ...]) -> list[Path]:
    """Every hidden temporary a run's writer may have left, in its date folders:
    ``.run-<id>.parquet...tmp`` (layout 1, the room probe) or ``.run-<id>-<part>...tmp``."""
    prefix = f".run-{run_id}"
    out = []
    for table in tables:
        day = layout.run_file(table, run_id).parent
        try:
            entries = list(os.scandir(day))
        except FileNotFoundError:
            continue
        out += [
            Path(e.path)
            for e in entries
            if e.name.startswith(prefix)
            and e.name[len(prefix) :][:1] in (".", "-")
            and e.name.endswith(".tmp")
        ]
    return out
