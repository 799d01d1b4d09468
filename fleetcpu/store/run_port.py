"""What a run writer may use of its store: the narrow port between ``Store`` and ``RunWriter``.

Why a port: the writer used to hold the whole ``Store`` and call two of its
private methods (the known digests and the index fold), so the two modules
imported each other and either could grow into the other. The store now
hands the writer this one value, built in ``Store.run_writer``: where the
files go, which layout to write, the CPU data already stored (so unchanged
hosts point at it rather than rewrite it), and how to fold a committed run
into the index. The writer imports nothing of ``store.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .layout import Layout

__all__ = ["RunPort"]


@dataclass(frozen=True)
class RunPort:
    """One store, as one run writer sees it."""

    #: The store root, named in error messages.
    root: Path
    layout: Layout
    #: The layout the run is written in: 2 commits parts, 1 one file per table.
    layout_version: int
    #: (host, cpu_digest) -> the committed run already holding that CPU data.
    known_digests: Mapping[tuple[str, str], str]
    #: Fold a just-committed run into the index: (run id, whether it wrote hosts rows).
    index_run: Callable[[str, bool], None]
