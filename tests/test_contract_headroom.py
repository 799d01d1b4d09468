"""The headroom a collect stores, and ``status`` taking it only where computing gives it.

A real collect (the local transport, replayed real CPUs: tests/support/replay)
of a whole pool stores, in its last part, what today's baseline of its members
would gain or lose over the adopted CPU (the ``headroom`` table). ``status``
takes that row in place of reading one record per distinct CPU from the store,
and every case below holds it to computing the headroom from the stored data
(``reuse=False``): equal, or the row is not taken.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetcpu.contract import headroom as hr
from fleetcpu.contract import shell
from fleetcpu.store import Store

from .conftest import invoke
from .support import contract_fleet as cf
from .support.replay.hosts import make_replay_host

#: The issue's pool of four real Intel servers, and a weaker real CPU to replace one.
POOL = dict(zip(("kvm01", "kvm02", "kvm03", "kvm04"), cf.POOL, strict=True))
WEAKER = "Xeon-E5-2609-v3"
LINE = "{} transport=local accel=kvm qemu={} host_root={}\n"


@pytest.fixture
def site(tmp_path: Path) -> Any:
    """A store and an inventory writer over replay hosts made once per (host, CPU)."""
    store = tmp_path / "store"
    made: dict[tuple[str, str], Any] = {}

    def collect(cpus: dict[str, str]) -> Any:
        lines = []
        for host, cpu in cpus.items():
            if (host, cpu) not in made:
                made[(host, cpu)] = make_replay_host(tmp_path / f"r-{cpu}", cpu, hostname=host)
            r = made[(host, cpu)]
            lines.append(LINE.format(host, r.binary, r.root))
        inv = tmp_path / "hosts.txt"
        inv.write_text("[prod]\n" + "".join(lines))
        return invoke("collect", str(inv), "--timeout", "60", "--store", str(store))

    def run(*args: str) -> Any:
        return invoke(*args, "--store", str(store))

    return collect, run, store


def _statuses(
    store: Path, reuse: bool, max_age: timedelta = timedelta(days=7), now: datetime | None = None
) -> Any:
    return shell._pool_statuses(Store.open(store), None, max_age, now or datetime.now(UTC), reuse=reuse)


def _taken(store: Path) -> bool:
    """Whether ``status`` takes the stored headroom (it then never computes one). The spy
    lives in a context of its own: it must not undo a caller's patches."""
    computed: list[object] = []
    real = hr.headroom_from_store

    def spy(*args: Any) -> Any:
        computed.append(args)
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shell, "headroom_from_store", spy)
        _statuses(store, True)
    return not computed


def test_a_whole_pool_collect_stores_the_headroom_status_takes(
    site: Any,
) -> None:
    collect, run, store = site
    assert collect(POOL).returncode == 0
    assert run("adopt", "--pool", "prod", "--yes").returncode == 0
    # Before any judged collect: nothing stored, status computes it.
    assert not Store.open(store).table("headroom").num_rows
    assert not _taken(store)
    res = collect(POOL)
    assert res.returncode == 0, res.stdout + res.stderr
    [row] = Store.open(store).table("headroom").to_pylist()
    assert row["pool"] == "prod" and row["members"] == 4 and row["revision"] == hr.HEADROOM_REVISION
    assert row["members_sha256"] == hr.members_sha256(POOL)
    assert row["gain"] == [] and row["lost"] == [] and row["problem"] is None
    assert _taken(store)
    taken, computed = _statuses(store, True), _statuses(store, False)
    assert taken == computed
    assert taken[0].headroom.cpu == computed[0].headroom.cpu is not None

    # kvm04 replaced by a weaker real CPU: the run's headroom loses what it lacks.
    res = collect({**POOL, "kvm04": WEAKER})
    assert res.returncode == 26, res.stdout + res.stderr
    assert _taken(store)
    taken, computed = _statuses(store, True), _statuses(store, False)
    assert taken == computed and taken[0].headroom.lost, taken[0].headroom
    assert set(taken[0].headroom.lost) <= set(Store.open(store).table("adoptions")["features"][0].as_py())


def test_the_stored_headroom_is_not_taken_for_other_members(
    site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect, run, store = site
    assert collect(POOL).returncode == 0
    assert run("adopt", "--pool", "prod", "--yes").returncode == 0
    assert collect(POOL).returncode == 0
    assert _taken(store)
    # Another fleetcpu's row is computed again.
    monkeypatch.setattr(shell, "__version__", "0.0.0+other")
    assert not _taken(store)
    monkeypatch.undo()
    assert _taken(store)
    # So is another revision's.
    monkeypatch.setattr(hr, "HEADROOM_REVISION", hr.HEADROOM_REVISION + 1)
    assert not _taken(store)
    monkeypatch.undo()
    # Stale members: the current set is no longer the run's.
    now, tiny = datetime.now(UTC), timedelta(microseconds=1)
    stale = _statuses(store, True, tiny, now)
    assert stale == _statuses(store, False, tiny, now)
    assert stale[0].headroom.problem and stale[0].headroom.cpu is None
    # A collect of part of the pool: its members are not the pool's current ones.
    assert collect({"kvm01": POOL["kvm01"], "kvm02": POOL["kvm02"]}).returncode == 0
    [_, part] = Store.open(store).table("headroom").to_pylist()
    assert part["members"] == 2
    assert not _taken(store)
    assert _statuses(store, True) == _statuses(store, False)
    # The whole pool again, then a new adoption: the run's row was against the old one.
    assert collect(POOL).returncode == 0
    assert _taken(store)
    assert run("adopt", "--pool", "prod", "--yes", "--note", "again").returncode == 0
    assert not _taken(store)
    assert _statuses(store, True) == _statuses(store, False)


def test_an_import_run_stores_no_headroom(site: Any, tmp_path: Path) -> None:
    """An import is one host per run: its members are never a pool's (collect alone writes the row)."""
    collect, run, store = site
    assert collect(POOL).returncode == 0
    assert run("adopt", "--pool", "prod", "--yes").returncode == 0
    doc = cf.write_doc(tmp_path / "kvm05.json", cf.document(cf.POOL[0]))
    assert run("import", "--pool", "prod", "--host", "kvm05", str(doc)).returncode == 0
    assert not Store.open(store).table("headroom").num_rows
