"""The append-only Parquet store: every probe outcome of every run, readable by any engine.

Public surface (the rest of the package is private):

* ``Store.open(path)`` / ``Store.create_or_open(path)``; ``resolve_location``
* writing: ``store.run_writer(command, inventory) -> RunWriter`` (``add``, ``run_id``)
* reading: ``store.latest(pool)``, ``store.pools()``, ``store.snapshots(hosts, accel)``,
  ``store.runs()``, ``store.table(name)``, ``store.reindex()``
* records: ``HostState``, ``AccelLatest``, ``HostSnapshot``, ``RunInfo``

See ``docs/store.md`` for the layout and how to query it with pandas and DuckDB.
"""

from .layout import default_location, resolve_location
from .run_writer import RunWriter
from .schema import TABLES, TableSpec
from .store import Store
from .views import AccelLatest, HostSnapshot, HostState, RunInfo

__all__ = [
    "TABLES",
    "AccelLatest",
    "HostSnapshot",
    "HostState",
    "RunInfo",
    "RunWriter",
    "Store",
    "TableSpec",
    "default_location",
    "resolve_location",
]
