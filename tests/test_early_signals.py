"""Ctrl-C or SIGTERM at any moment of a command's life: 130 with an interrupted run, or no trace.

A scheduler (systemd, cron's timeout, a CI job) may stop fleetcpu at any
instant, including while Python is still importing it. The real CLI is
started on a slow local host (a QEMU that hangs) and signalled after a
range of delays covering start-up; whatever the moment, it must never print
a traceback or click's ``Aborted!``, and it either exits 130 having recorded
the run as interrupted, or leaves nothing (killed by the signal before it
wrote anything, or interrupted before it opened a run). The one exception is
CPython's own start-up before any fleetcpu code runs (importing ``site``):
a SIGINT there is the interpreter's fatal error, exit 1, and nothing written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fleetcpu.store import Store

from .conftest import PYTHON, REPO, run_cli
from .support import misbehaving_qemu
from .test_collect_local import assert_nothing_left, cli_env

#: From the end of CPython's own start-up (~30-50 ms here: importing ``site``) on.
DELAYS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0, 1.5)


@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGINT,
        signal.SIGTERM,
    ],
)
def test_a_signal_at_any_moment_is_130_with_a_recorded_run_or_no_trace(
    tmp_path: Path, isolated_tmp: Path, sig: signal.Signals
) -> None:
    inv = tmp_path / "hosts.txt"
    inv.write_text(f"slow transport=local qemu={misbehaving_qemu.hangs(tmp_path / 'h')} accel=tcg\n")
    env = {**os.environ, **cli_env(tmp_path, isolated_tmp)}
    seen = []
    for i, delay in enumerate(DELAYS):
        store = tmp_path / f"store{i}"
        proc = subprocess.Popen(
            [PYTHON, "-m", "fleetcpu", "collect", str(inv), "--store", str(store), "--timeout", "60"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        rc = proc.returncode
        seen.append((delay, rc))
        if rc == 1 and err.startswith("Fatal Python error: init_import_site"):
            # CPython's own start-up (importing site, before the first line of fleetcpu
            # runs) was interrupted: beyond any program's reach, and it wrote nothing.
            assert not store.exists(), err
            continue
        assert "Traceback" not in err and "Aborted!" not in err, (delay, rc, err)
        assert rc in (130, -sig), (delay, rc, out, err)
        runs = Store.open(store).runs() if (store / "fleetcpu-store.json").exists() else []
        if runs:
            assert rc == 130 and [r.status for r in runs] == ["interrupted"], (delay, runs)
            assert "recorded as interrupted" in err
        else:  # no trace: nothing a reader or fsck would see
            assert not store.exists() or run_cli("fsck", "--store", str(store)).returncode in (0, 21), (
                delay,
                rc,
                err,
            )
    assert_nothing_left(isolated_tmp)
    print(sig.name, seen)


def test_an_interrupt_python_wraps_is_still_130() -> None:
    """A SIGTERM inside a descriptor's ``__set_name__`` (a class being created during a lazy
    import) reaches the error edge as ``RuntimeError``, its cause the KeyboardInterrupt: it
    is an interruption (130), not an internal error (1)."""
    from fleetcpu import cli

    class Field:
        def __set_name__(self, owner: type, name: str) -> None:
            raise KeyboardInterrupt

    def creates_a_class() -> None:
        type("Attempt", (), {"exit_status": Field()})

    with pytest.raises(SystemExit) as ended:
        cli._mapped(creates_a_class)
    assert ended.value.code == 130

    def a_bug() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(SystemExit) as ended:
        cli._mapped(a_bug)
    assert ended.value.code == 1
