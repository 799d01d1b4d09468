"""The probe against the real QEMU of this machine, through the real CLI.

Every path the issue names: KVM and TCG, two machine types that disagree, the
fallback chain (forced by wrappers, not only by this host's MSR quirk), the
deadline, each failure with its exit code and one-line error, signals, and
nothing left running or written afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fleetcpu.probe.document import ProbeDocument
from fleetcpu.probe.document_decoder import document_from_json

from .conftest import PYTHON, REPO, run_cli
from .support import misbehaving_qemu
from .support.qemuguard import qemu_pids


def probe(*args: str, tmpdir: Path, timeout: float = 120) -> tuple[int, ProbeDocument, str]:
    res = run_cli("probe", *args, env={"TMPDIR": str(tmpdir)}, timeout=timeout)
    doc = parsed(res)
    assert doc.exit_code == res.returncode
    return res.returncode, doc, res.stderr


def parsed(res: subprocess.CompletedProcess[str]) -> ProbeDocument:
    """The probe's document; when there is none, fail with the probe's own stderr, the evidence."""
    try:
        return document_from_json(res.stdout, "probe stdout")
    except ValueError as exc:
        pytest.fail(f"no probe document ({exc}); exit {res.returncode}, stderr: {res.stderr.strip()}")


def assert_clean(tmpdir: Path) -> None:
    assert list(tmpdir.iterdir()) == [], "the probe left files behind"


def qemus_of(parent: int) -> set[int]:
    """The guests ``parent`` launched: not a ``-version`` run, nor a QEMU other work started."""
    out = set()
    for pid in qemu_pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"-version" not in cmd:
            out.add(pid)
    return out


@pytest.mark.plain
def test_probe_default_machine_resolves_q35(accel: str, isolated_tmp: Path) -> None:
    rc, doc, err = probe("--accel", accel, tmpdir=isolated_tmp)
    assert rc == 0, err
    assert doc.ok and doc.accel == accel
    [mp] = doc.machine_types
    assert mp.requested == "q35"
    assert mp.machine_type.startswith("pc-q35-") and mp.machine_type != "q35"
    assert mp.accel == accel
    assert mp.cpu.startswith("host" if accel == "kvm" else "max")
    assert doc.qemu is not None and doc.qemu.kvm_enabled is (accel == "kvm")
    assert any(m.alias == "q35" and m.name == mp.machine_type for m in doc.qemu.machines)
    # The model list, expansions and the realized vCPU are all there.
    assert len(mp.models) > 50
    assert any(m.usable for m in mp.models)
    assert mp.static_expansion is not None and mp.full_expansion is not None
    assert mp.static_expansion.enabled(), "a vCPU with no features"
    assert mp.feature_words and all(w.register in ("eax", "ebx", "ecx", "edx") for w in mp.feature_words)
    leaf1 = {(w.leaf, w.register): w.bits for w in mp.feature_words}
    assert leaf1[(1, "edx")] & 1, "fpu (CPUID[1].EDX bit 0) must be on"
    assert mp.vcpu.level and mp.vcpu.xlevel and mp.vcpu.phys_bits
    assert mp.errors == ()
    # Attempts: launches only (the guest's QMP greeting proved QEMU: no -version run),
    # the one that worked last.
    assert doc.attempts and all(a.machine_type and "-version" not in a.argv for a in doc.attempts)
    assert doc.attempts[-1].outcome == "ok" and doc.attempts[-1].cpu == mp.cpu
    assert doc.host.cpu.vendor in ("GenuineIntel", "AuthenticAMD", "HygonGenuine")
    assert_clean(isolated_tmp)


def test_two_machine_types_differ(accel: str, isolated_tmp: Path) -> None:
    rc, doc, err = probe(
        "--accel",
        accel,
        "--machine-type",
        "pc-q35-7.2",
        "--machine-type",
        "pc-i440fx-2.0",
        tmpdir=isolated_tmp,
    )
    assert rc == 0, err
    new, old = doc.machine_types
    assert (new.machine_type, old.machine_type) == ("pc-q35-7.2", "pc-i440fx-2.0")
    new_models = {m.name: m.unavailable_features for m in new.models}
    old_models = {m.name: m.unavailable_features for m in old.models}
    assert new_models.keys() == old_models.keys()
    differ = [n for n in new_models if new_models[n] != old_models[n]]
    assert differ, "pc-i440fx-2.0 and pc-q35-7.2 must disagree on some model"
    # One launch per machine type (plus the failed variants of this host).
    launches = [a for a in doc.attempts if a.machine_type]
    assert [a.machine_type for a in launches if a.outcome == "ok"] == ["pc-q35-7.2", "pc-i440fx-2.0"]


def test_alias_and_its_target_are_probed_once(isolated_tmp: Path) -> None:
    rc, doc, _ = probe(
        "--accel", "tcg", "--machine-type", "q35", "--machine-type", "pc-q35-7.2", tmpdir=isolated_tmp
    )
    assert rc == 0
    assert [m.machine_type for m in doc.machine_types] == ["pc-q35-7.2"]
    assert len([a for a in doc.attempts if a.machine_type]) == 1


@pytest.mark.kvm
def test_fallback_chain_host_refused(qemu_bin: str, tmp_path: Path, isolated_tmp: Path) -> None:
    """A wrapper makes plain ``-cpu host`` die: the probe must go on to the next variant."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("KVM variants need /dev/kvm; the TCG fallback is tested below")
    fake = misbehaving_qemu.refuse_cpu(tmp_path / "bin", qemu_bin, "host")
    rc, doc, err = probe("--qemu-binary", fake, tmpdir=isolated_tmp)
    assert rc == 0, err
    launches = [a for a in doc.attempts if a.machine_type]
    assert launches[0].cpu == "host" and launches[0].outcome == "died"
    assert "wrapper refuses -cpu host" in launches[0].stderr_tail
    assert launches[0].exit_status == 1
    assert doc.machine_types[0].cpu == "host,arch-capabilities=off"
    assert doc.machine_types[0].accel == "kvm"
    # The expansion was asked for the CPU that ran, so the disabled feature is not offered.
    static = doc.machine_types[0].static_expansion
    assert static is not None and static.features.get("arch-capabilities") is not True


def test_fallback_to_tcg_when_kvm_fails(qemu_bin: str, tmp_path: Path, isolated_tmp: Path) -> None:
    fake = misbehaving_qemu.refuse_kvm(tmp_path / "bin", qemu_bin)
    rc, doc, err = probe("--qemu-binary", fake, tmpdir=isolated_tmp)
    assert rc == 0, err
    assert doc.accel == "tcg"
    assert doc.machine_types[0].cpu == "max"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert doc.accel_reason is not None
        assert doc.accel_reason.startswith("KVM failed: ")
        assert "failed to initialize kvm" in doc.accel_reason
        assert [a.outcome for a in doc.attempts if a.machine_type] == ["died", "died", "ok"]
    else:
        assert doc.accel_reason in ("no /dev/kvm", "/dev/kvm is not accessible to this user")


def test_tcg_when_dev_kvm_not_accessible(tmp_path: Path) -> None:
    """Run the probe as an unprivileged user: /dev/kvm (root-only here) is refused -> TCG.

    The probe runs from a copy of exactly the files the bundle ships, in a
    directory the user can read, as it does on a host: the checkout itself may
    sit under a home directory that user cannot enter.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    if not os.path.exists("/dev/kvm") or os.stat("/dev/kvm").st_mode & 0o006:
        pytest.skip("/dev/kvm is missing or world-accessible here")
    from fleetcpu.fleet.bundle import bundle_sources

    # The host's own Python, as on a host (the venv's may live under a private home too).
    host_python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else PYTHON
    # tmp_path's ancestors are private to root: a world-readable directory of our own,
    # removed at the end, holds the copy and the probe's TMPDIR.
    shared = Path(tempfile.mkdtemp(prefix="fleetcpu-test-unpriv-"))
    try:
        shared.chmod(0o755)
        for name, path in bundle_sources():
            target = shared / "code" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        for d in [shared / "code", *(shared / "code").rglob("*")]:
            d.chmod(0o755 if d.is_dir() else 0o644)
        work = shared / "tmp"
        work.mkdir(mode=0o777)
        work.chmod(0o777)
        res = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                host_python,
                "-S",
                "-m",
                "fleetcpu.probe",
                "--accel",
                "auto",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=shared / "code",
            env={
                "PATH": os.environ["PATH"],
                "PYTHONPATH": str(shared / "code"),
                "TMPDIR": str(work),
                "HOME": str(work),
            },
            check=False,
        )
        doc = parsed(res)
        assert res.returncode == 0, res.stderr
        assert doc.accel == "tcg" and doc.host.dev_kvm == "no-permission"
        assert doc.accel_reason == "/dev/kvm is not accessible to this user"
        assert list(work.iterdir()) == [], "the probe left files behind"
    finally:
        shutil.rmtree(shared)


def test_missing_qemu(isolated_tmp: Path) -> None:
    rc, doc, err = probe("--qemu-binary", "/nonexistent/qemu-system-x86_64", tmpdir=isolated_tmp)
    assert rc == 10
    assert doc.status == "failed" and doc.error_code == "qemu-missing" and doc.stage == "qemu"
    assert err.count("\n") == 1 and "not found" in err


def test_not_qemu(tmp_path: Path, isolated_tmp: Path) -> None:
    rc, doc, err = probe("--qemu-binary", misbehaving_qemu.not_qemu(tmp_path / "bin"), tmpdir=isolated_tmp)
    assert rc == 11 and doc.error_code == "not-qemu"
    assert "is not QEMU" in err and err.count("\n") == 1
    # No launch greeted, so -version was asked, last: its answer is the evidence.
    *launches, version = doc.attempts
    assert launches and all(a.machine_type and a.outcome == "died" for a in launches)
    assert version.argv[-1] == "-version" and "GNU coreutils pretend" in err
    assert_clean(isolated_tmp)


def test_not_executable_is_not_qemu(tmp_path: Path, isolated_tmp: Path) -> None:
    plain = tmp_path / "qemu.txt"
    plain.write_text("not a program")
    rc, doc, _ = probe("--qemu-binary", str(plain), tmpdir=isolated_tmp)
    assert rc == 11 and doc.error_code == "not-qemu"


def test_qemu_dies_at_start(qemu_bin: str, tmp_path: Path, isolated_tmp: Path) -> None:
    fake = misbehaving_qemu.dies_at_start(tmp_path / "bin", qemu_bin)
    rc, doc, err = probe("--qemu-binary", fake, tmpdir=isolated_tmp)
    assert rc == 12 and doc.error_code == "qemu-died" and doc.stage == "qemu"
    assert "could not open /dev/fake" in err and err.count("\n") == 1
    launches = [a for a in doc.attempts if a.machine_type]
    assert launches and all(a.outcome == "died" for a in launches)
    assert all("could not open /dev/fake" in a.stderr_tail for a in launches)
    # Every launch died before greeting: the banner then proved it is QEMU after all.
    assert doc.attempts[-1].argv[-1] == "-version" and doc.attempts[-1].outcome == "ok"
    assert_clean(isolated_tmp)


def test_unknown_machine_type(isolated_tmp: Path) -> None:
    rc, doc, err = probe("--accel", "tcg", "--machine-type", "pc-bogus-9.9", tmpdir=isolated_tmp)
    assert rc == 13 and doc.error_code == "unknown-machine-type"
    assert "pc-bogus-9.9" in err and err.count("\n") == 1


def test_unknown_second_machine_type_needs_no_launch(isolated_tmp: Path) -> None:
    rc, doc, err = probe(
        "--accel", "tcg", "--machine-type", "q35", "--machine-type", "pc-nope", tmpdir=isolated_tmp
    )
    assert rc == 13 and "pc-nope" in err
    assert len([a for a in doc.attempts if a.machine_type]) == 1


def test_qmp_garbage(tmp_path: Path, isolated_tmp: Path) -> None:
    fake = misbehaving_qemu.garbage_qmp(tmp_path / "bin")
    rc, doc, err = probe("--qemu-binary", fake, "--accel", "tcg", "--timeout", "20", tmpdir=isolated_tmp)
    assert rc == 14 and doc.error_code == "qmp" and doc.stage == "qmp"
    assert "QMP failure" in err and err.count("\n") == 1
    assert doc.attempts[-1].outcome == "qmp-error" and doc.attempts[-1].exit_status == -9


@pytest.mark.plain
def test_timeout_kills_hung_qemu(tmp_path: Path, isolated_tmp: Path) -> None:
    fake = misbehaving_qemu.hangs(tmp_path / "bin")
    started = time.monotonic()
    rc, doc, err = probe("--qemu-binary", fake, "--accel", "tcg", "--timeout", "1.5", tmpdir=isolated_tmp)
    assert time.monotonic() - started < 15
    assert rc == 15 and doc.error_code == "timeout" and doc.stage == "timeout"
    assert "timed out" in err
    assert doc.attempts[-1].outcome == "timeout" and doc.attempts[-1].exit_status == -9
    assert_clean(isolated_tmp)


@pytest.mark.plain
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_stops_qemu(sig: signal.Signals, tmp_path: Path, isolated_tmp: Path) -> None:
    fake = misbehaving_qemu.hangs(tmp_path / "bin")
    proc = subprocess.Popen(
        [PYTHON, "-m", "fleetcpu", "probe", "--qemu-binary", fake, "--accel", "tcg"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(isolated_tmp)},
    )
    deadline = time.monotonic() + 20
    while not qemus_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert qemus_of(proc.pid), "the fake QEMU never started"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    doc = document_from_json(out)
    assert doc.stage == "interrupted" and doc.attempts[-1].outcome == "interrupted"
    assert_clean(isolated_tmp)


def test_sigkill_of_probe_takes_qemu_down(tmp_path: Path, isolated_tmp: Path) -> None:
    """Nothing can clean up after SIGKILL, so QEMU must die with its parent (PDEATHSIG)."""
    fake = misbehaving_qemu.hangs(tmp_path / "bin")
    proc = subprocess.Popen(
        [PYTHON, "-m", "fleetcpu.probe", "--qemu-binary", fake, "--accel", "tcg"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(isolated_tmp)},
    )
    deadline = time.monotonic() + 20
    while not (started := qemus_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started, "the fake QEMU never started"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while qemu_pids() & started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not qemu_pids() & started, "QEMU outlived a SIGKILLed probe"


@pytest.mark.plain
def test_stdlib_main_matches_cli(isolated_tmp: Path) -> None:
    """``python3 -m fleetcpu.probe`` (what ships to hosts) speaks the same flags and schema."""
    res = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", "--accel", "tcg", "--machine-type", "pc-i440fx-7.2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    doc = document_from_json(res.stdout)
    assert doc.machine_types[0].machine_type == "pc-i440fx-7.2"
    bad = subprocess.run(
        [PYTHON, "-m", "fleetcpu.probe", "--accel", "warp"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert bad.returncode == 2


def test_cli_usage_error_exit_2() -> None:
    res = run_cli("probe", "--timeout", "-1")
    assert res.returncode == 2


def test_probe_never_imports_heavy_modules() -> None:
    """``fleetcpu probe`` runs on hosts and in loops: pandas/pyarrow/asyncssh must stay out."""
    code = (
        "import os, sys, runpy\n"
        "def no_teardown_skip(status):\n"  # entry() ends with os._exit: return here instead
        "    raise SystemExit(status)\n"
        "os._exit = no_teardown_skip\n"
        "sys.argv = ['fleetcpu', 'probe', '--qemu-binary', '/nonexistent']\n"
        "try:\n"
        "    runpy.run_module('fleetcpu', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'pyarrow', 'asyncssh', 'numpy', 'duckdb'))\n"
        "print(heavy, file=sys.stderr)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    res = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, check=False, timeout=60
    )
    assert res.returncode == 0, res.stderr


def test_probe_package_is_stdlib_plus_qmp() -> None:
    """Importing every probe module pulls in nothing beyond the stdlib, qemu.qmp and fleetcpu."""
    code = (
        "import sys\n"
        "base = set(sys.modules)\n"
        "import fleetcpu.probe.run, fleetcpu.probe.__main__, fleetcpu.probe.qmp_decode\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - base}\n"
        "bad = sorted(new - set(sys.stdlib_module_names) - {'qemu', 'fleetcpu', '_cffi_backend'})\n"
        "print(bad, file=sys.stderr)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, check=False, timeout=60
    )
    assert res.returncode == 0, res.stderr


def test_probe_runs_on_python39(tmp_path: Path) -> None:
    """The hosts' Python: run the probe package under a real 3.9 interpreter when one exists."""
    candidates = [os.path.expanduser("~/.pyenv/versions/3.9.18/bin/python3.9"), "/usr/bin/python3.9"]
    py39 = next((c for c in candidates if os.path.exists(c)), None)
    if py39 is None:
        pytest.skip("no Python 3.9 on this machine; vermin --target=3.9 still runs in the gate")
    import qemu.qmp

    site = tmp_path / "site"
    site.mkdir()
    os.symlink(REPO / "fleetcpu", site / "fleetcpu")
    os.symlink(Path(qemu.qmp.__file__).parent.parent, site / "qemu")
    res = subprocess.run(
        [py39, "-m", "fleetcpu.probe", "--accel", "tcg"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(site)},
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "ok"
    assert sys.version_info >= (3, 11)
