"""A store that cannot be written: found before any host is contacted, exit 4, nothing lost silently.

Real faults, not simulated ones: a read-only bind mount and small tmpfs
mounts, each made in a private mount namespace (``unshare -m``) that holds
only the fleetcpu command under test, so nothing outlives it; ``v1/hosts``
replaced by a file; real SSH hosts (``FakeFleet``) that count every
connection made to them, so "no host contacted" is measured.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import PYTHON, REPO, run_cli
from .support.sshd import FakeFleet, fake_fleet_fixtures
from .test_store_support import ok_document, write_document

FLEET = 300


@functools.cache
def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    res = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    return res.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _namespaces_work(), reason="needs root and unshare -m for real read-only/full mounts"
)


def in_namespace(
    setup: str, *commands: list[str] | str, env: dict[str, str] | None = None, timeout: float = 300
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``setup`` (shell: mounts), then each command (a list: fleetcpu's arguments; a
    string: shell), in one private mount namespace; each command's exit code, stdout and
    stderr come back separately."""
    full = dict(os.environ)
    full.update(env or {})
    scratch = Path(full["FLEETCPU_TEST_SCRATCH"])
    parts = ["set -e", setup, "set +e"]
    for i, args in enumerate(commands):
        cmd = args if isinstance(args, str) else shlex.join([PYTHON, "-m", "fleetcpu", *args])
        parts.append(f"{cmd} >{scratch}/{i}.out 2>{scratch}/{i}.err; echo $? >{scratch}/{i}.rc")
    subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "\n".join(parts)],
        cwd=REPO,
        env=full,
        timeout=timeout,
        check=True,
    )
    return [
        subprocess.CompletedProcess(
            args,
            int((scratch / f"{i}.rc").read_text()),
            (scratch / f"{i}.out").read_text(),
            (scratch / f"{i}.err").read_text(),
        )
        for i, args in enumerate(commands)
    ]


fleet, fresh = fake_fleet_fixtures(FLEET, delay=0.0, net=4)


def _contacted(fleet: FakeFleet) -> int:
    return sum(h.connections for h in fleet.hosts)


def _env(tmp_path: Path) -> dict[str, str]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SSH_AUTH_SOCK": "",
        "FLEETCPU_TEST_SCRATCH": str(scratch),
    }


def _collect(fleet: FakeFleet, inventory: Path, store: Path) -> list[str]:
    return ["collect", str(inventory), "--store", str(store), *fleet.cli_args()]


def _imported_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    doc = write_document(tmp_path / "doc.json", ok_document())
    res = run_cli("import", str(doc), "--store", str(store), "--host", "kvm01", "--pool", "prod")
    assert res.returncode == 0, res.stderr
    return store


@needs_mounts
def test_a_read_only_store_is_exit_4_before_any_host_is_contacted(fresh: FakeFleet, tmp_path: Path) -> None:
    store = _imported_store(tmp_path)
    inventory = fresh.inventory(tmp_path / "inv", [h.name for h in fresh.hosts[:5]])
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    collect, hosts = in_namespace(
        f"mount --bind {store} {store}; mount -o remount,bind,ro {store}",
        _collect(fresh, inventory, store),
        ["hosts", "--store", str(store), "--format", "json"],
        env=_env(tmp_path),
    )
    assert collect.returncode == 4, (collect.stdout, collect.stderr)
    assert "Read-only file system" in collect.stderr and str(store) in collect.stderr
    assert "no host was contacted" in collect.stderr
    assert "Traceback" not in collect.stderr
    assert _contacted(fresh) == 0
    # A reader answers from what is committed.
    assert hosts.returncode == 0, hosts.stderr
    assert [h["host"] for h in json.loads(hosts.stdout)] == ["kvm01"]
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


def test_a_table_folder_that_is_a_file_is_exit_4_before_any_host_is_contacted(
    fresh: FakeFleet, tmp_path: Path
) -> None:
    store = _imported_store(tmp_path)
    shutil.rmtree(store / "v1" / "hosts")
    (store / "v1" / "hosts").write_text("not a folder")
    inventory = fresh.inventory(tmp_path / "inv", [h.name for h in fresh.hosts[:5]])
    res = run_cli(*_collect(fresh, inventory, store), env=_env(tmp_path))
    assert res.returncode == 4, (res.stdout, res.stderr)
    assert str(store / "v1" / "hosts") in res.stderr and "no host was contacted" in res.stderr
    assert _contacted(fresh) == 0


@needs_mounts
def test_a_full_disk_is_exit_4_before_any_host_is_contacted(fresh: FakeFleet, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    inventory = fresh.inventory(tmp_path / "inv", [h.name for h in fresh.hosts[:5]])
    (collect,) = in_namespace(
        f"mount -t tmpfs -o size=256k tmpfs {mnt}",
        _collect(fresh, inventory, mnt / "store"),
        env=_env(tmp_path),
    )
    assert collect.returncode == 4, (collect.stdout, collect.stderr)
    assert "No space left on device" in collect.stderr or "room" in collect.stderr
    assert "no host was contacted" in collect.stderr and "Traceback" not in collect.stderr
    assert _contacted(fresh) == 0


@needs_mounts
def test_a_disk_that_fills_during_the_run_is_exit_4_with_the_summary(
    fresh: FakeFleet, tmp_path: Path
) -> None:
    """Room for the first batch, not for the run: 300 failed hosts' incompressible
    stderr tails (8 KiB each) do not fit in what is left."""
    for host in fresh.hosts:
        host.fault = "noisy"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    store = mnt / "store"
    inventory = fresh.inventory(tmp_path / "inv")
    collect, fsck, temporaries = in_namespace(
        f"mount -t tmpfs -o size=1280k tmpfs {mnt}",
        _collect(fresh, inventory, store),
        ["fsck", "--store", str(store)],
        f"find {mnt} -name '*.tmp'",
        env=_env(tmp_path),
    )
    assert collect.returncode == 4, (collect.stdout, collect.stderr)
    assert "Traceback" not in collect.stderr
    # The summary is printed, and the error says what was stored: nothing of this run.
    assert f"{FLEET} host(s)" in collect.stdout, collect.stdout
    assert "No space left on device" in collect.stderr
    # Nothing half-written is left behind, and the store still opens.
    assert fsck.returncode == 0, (fsck.stdout, fsck.stderr)
    assert temporaries.stdout == ""
    # What was stored is said exactly: nothing of this run, or (when the run took more
    # than 5 s on a loaded machine) the parts committed before the disk filled.
    # The run stops when a part cannot be written (after 5 s on a slow machine, before
    # every host is probed): the error counts the hosts probed, as the summary does.
    summary = re.search(r"collected (\d+) of (\d+) host\(s\)", collect.stdout)
    assert summary is not None and int(summary.group(2)) == FLEET, collect.stdout
    probed = int(summary.group(1))
    part = re.search(r"is stored in part: (\d+) of the (\d+) host\(s\) probed", collect.stderr)
    if part is None:
        assert "not stored" in collect.stderr and f"{probed} host(s) probed" in collect.stderr
        assert "0 committed run(s)" in fsck.stdout
    else:
        assert int(part.group(2)) == probed and 0 < int(part.group(1)) < probed
        assert "1 committed run(s)" in fsck.stdout and "killed" in fsck.stdout


@needs_mounts
def test_readers_answer_from_committed_data_when_they_cannot_write(tmp_path: Path) -> None:
    """A run committed but not yet in the index (killed just after its commit record):
    a reader that may write folds it in; one that cannot (full, read-only) answers anyway."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    store = mnt / "store"
    fill = f"dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null || true"
    env = _env(tmp_path)
    scratch = Path(env["FLEETCPU_TEST_SCRATCH"])
    script = (
        f"mount -t tmpfs -o size=4m tmpfs {mnt}; "
        f"FLEETCPU_TEST_HOOK_KILL_AT=before-index {PYTHON} -c "
        f"{shlex.quote(_KILLED_WRITER)} {store} >{scratch}/w.out 2>&1 || true"
    )
    hosts_args = ["hosts", "--store", str(store), "--format", "json"]
    _, hosts_full, _, hosts_ro, fsck = in_namespace(
        script,
        fill,
        hosts_args,
        f"rm {mnt}/fill; mount -o remount,ro {mnt}",
        hosts_args,
        ["fsck", "--store", str(store)],
        env=env,
    )
    for res in (hosts_full, hosts_ro):
        assert res.returncode == 0, (res.stderr, (scratch / "w.out").read_text())
        assert sorted(h["host"] for h in json.loads(res.stdout)) == ["a000", "a001", "a002"]
    # The run stayed pending (nobody could fold it in), and it is whole.
    assert fsck.returncode == 0, fsck.stdout


_KILLED_WRITER = """
import sys
from fleetcpu.store import Store
from tests.test_store_support import ok_document, outcome
store = Store.create_or_open(sys.argv[1])
with store.run_writer(command="collect") as w:
    for i in range(3):
        w.add(outcome(f"a{i:03d}", ok_document()))
"""


def test_a_lock_timeout_prints_the_summary_and_says_the_run_is_stored(
    fresh: FakeFleet, tmp_path: Path
) -> None:
    store = _imported_store(tmp_path)
    inventory = fresh.inventory(tmp_path / "inv", [h.name for h in fresh.hosts[:5]])
    fd = os.open(store / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another fleetcpu updating the index, for too long
        res = run_cli(
            *_collect(fresh, inventory, store), env={**_env(tmp_path), "FLEETCPU_STORE_LOCK_TIMEOUT": "0.3"}
        )
    finally:
        os.close(fd)
    assert res.returncode == 4, (res.stdout, res.stderr)
    assert "collected 5 of 5 host(s)" in res.stdout
    run_id = res.stdout.split("run ")[-1].split()[0]
    assert "locked" in res.stderr and f"run {run_id} is stored" in res.stderr, res.stderr
    hosts = run_cli("hosts", "--store", str(store), "--format", "json")
    assert len(json.loads(hosts.stdout)) == 6, hosts.stderr
