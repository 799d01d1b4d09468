"""The collector's parts, each on its own and for real where it can be: bundle, bootstrap, quoting,
verdicts, fan-out, retries, host-key policy, progress.

The bootstrap tests run ``bootstrap_host`` exactly as a host would (``/bin/sh -c`` on the remote
command line, the bundle on stdin), under this machine's Pythons: the real probe from memory on
3.9+, a clear "python" verdict on older ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import io
import json
import marshal
import os
import random
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import asyncssh
import pytest

from fleetcpu.collect.probe_reply import interpret
from fleetcpu.errors import InventoryError
from fleetcpu.fleet import bootstrap_host
from fleetcpu.fleet.bootstrap import payload, probe_args, probe_timeout, remote_command
from fleetcpu.fleet.bundle import Bundle, build_bundle, bundle_sources, load_bundle, pyc_name
from fleetcpu.fleet.fanout import RetryPolicy, fan_out, with_retries, within_deadline
from fleetcpu.fleet.hostkeys import HostKeyPolicy, known_hosts_name
from fleetcpu.fleet.inventory import HostSpec, parse_inventory
from fleetcpu.fleet.progress import Progress, Tally
from fleetcpu.fleet.remote_run import HostFailure, RemoteRun
from fleetcpu.outcome import ConnectionSpec, HostOutcome
from fleetcpu.probe.document_decoder import document_from_json

from .conftest import REPO, tricks_only
from .support import misbehaving_qemu
from .support.sshd import GOLDEN

PYENV = Path("/root/.pyenv/versions")


def old_python(tmp_path: Path, version: str) -> str:
    """A real old interpreter when this machine has one (pyenv), else 3.x pretending to be ``version``."""
    real = sorted(PYENV.glob(f"{version}*/bin/python{version[0]}"))
    if real:
        return str(real[0])
    fake = tmp_path / f"python{version}"
    major, minor = (int(x) for x in version.split("."))
    fake.write_text(
        f"#!{sys.executable} -E\n"
        "import sys\n"
        "args = sys.argv[1:]\n"
        "i = args.index('-c')\n"
        "code, sys.argv = args[i + 1], ['-c', *args[i + 2:]]\n"
        f"sys.version_info = ({major}, {minor}, 99, 'final', 0)\n"
        "exec(compile(code, '<string>', 'exec'), {'__name__': '__main__'})\n"
    )
    fake.chmod(0o755)
    return str(fake)


def python39(tmp_path: Path) -> str:
    real = sorted(PYENV.glob("3.9*/bin/python3.9"))
    return str(real[0]) if real else "/usr/bin/python3"


def host(**kw: object) -> HostSpec:
    base: dict[str, object] = {
        "name": "h",
        "address": "h",
        "port": None,
        "user": None,
        "pool": "p",
        "machine_types": (),
        "qemu": None,
        "python": None,
        "accel": "auto",
        "transport": "local",
        "groups": (),
        "source": "t:1",
    }
    base.update(kw)
    return HostSpec(**base)


def run_remote(
    command: str, stdin: bytes, *, tmpdir: Path, timeout: float = 60, eof: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """Run the remote command as a host would, stdin kept open until the command is done.

    Closing stdin early is the orchestrator's "stop" (the bootstrap then SIGTERMs
    itself), so, like the transports, write the payload and wait with stdin open.
    """
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.PIPE, stdout=out, stderr=err, env=env, cwd=tmpdir
        )
        assert proc.stdin is not None
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin)
                proc.stdin.flush()
                if eof:  # the connection dropped after these bytes
                    proc.stdin.close()
            proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())


# ----------------------------------------------------------------- bundle


def test_bundle_is_deterministic_and_holds_exactly_the_probe() -> None:
    sources = [(name, path.read_bytes()) for name, path in bundle_sources()]
    one, two = build_bundle(sources), build_bundle(list(reversed(sources)))
    assert one.data == two.data and one.sha256 == two.sha256
    assert list(one.names) == sorted(one.names)
    assert {
        "fleetcpu/__init__.py",
        "fleetcpu/errors.py",
        "fleetcpu/vocabulary.py",
        "fleetcpu/probe/__main__.py",
        "fleetcpu/probe/run.py",
        "qemu/qmp/__init__.py",
        "qemu/qmp/qmp_client.py",
    } <= set(one.names)
    assert not [n for n in one.names if "pycache" in n or not n.endswith(".py")]
    assert not [n for n in one.names if n.startswith(("fleetcpu/collect", "fleetcpu/store"))]
    with zipfile.ZipFile(io.BytesIO(one.data)) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_bundle_cache_is_reused_and_a_damaged_one_rebuilt(tmp_path: Path) -> None:
    first = load_bundle(tmp_path)
    [cached] = tmp_path.glob("probe-bundle-*.zip")
    assert cached.read_bytes() == first.data
    stamp = cached.stat().st_mtime_ns
    again = load_bundle(tmp_path)
    assert again.sha256 == first.sha256 and cached.stat().st_mtime_ns == stamp
    cached.write_bytes(first.data[: len(first.data) // 2])  # a torn cache file
    assert load_bundle(tmp_path).sha256 == first.sha256
    assert cached.read_bytes() == first.data
    flipped = bytearray(first.data)
    flipped[200] ^= 0xFF  # a flipped bit inside an entry: CRC check, rebuild
    cached.write_bytes(bytes(flipped))
    assert load_bundle(tmp_path).data == first.data
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left"


def test_bundle_cache_that_cannot_be_written_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert load_bundle(blocker / "sub").sha256 == load_bundle(tmp_path).sha256


def test_bundle_carries_each_module_precompiled_for_this_python_the_same_on_every_build(
    tmp_path: Path,
) -> None:
    import pandas  # noqa: F401 - a busy process: marshal's output must not depend on it

    one, two = load_bundle(tmp_path / "a"), load_bundle(tmp_path / "b")
    assert one.data == two.data, "the code is compiled in a fresh process, so the same each time"
    sources = [n for n in one.names if n.endswith(".py")]
    tag = sys.implementation.cache_tag
    assert sorted(sources + [pyc_name(n, tag) for n in sources]) == list(one.names)
    assert not {"qemu/qmp/qmp_shell.py", "qemu/qmp/qmp_tui.py"} & set(sources), "tools stay home"
    with zipfile.ZipFile(io.BytesIO(one.data)) as z:
        pyc = z.read(pyc_name("fleetcpu/probe/run.py", tag))
        source = z.read("fleetcpu/probe/run.py")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER and pyc[8:16] == importlib.util.source_hash(source)
    code = marshal.loads(pyc[16:])  # noqa: S302 - this test built it
    assert code.co_filename == bootstrap_host.ORIGIN + "fleetcpu/probe/run.py"


def _with_main_pyc(
    bundle_data: bytes,
    main_code: str,
    *,
    source: bytes | None = None,
    magic: bytes = importlib.util.MAGIC_NUMBER,
) -> Bundle:
    """The bundle with ``__main__``'s precompiled code swapped for ``main_code``'s, under a header
    claiming ``magic`` and the hash of ``source`` (default: the real source beside it)."""
    name = "fleetcpu/probe/__main__.py"
    target = pyc_name(name, sys.implementation.cache_tag)
    with zipfile.ZipFile(io.BytesIO(bundle_data)) as z:
        entries = [(n, z.read(n)) for n in z.namelist()]
    real = dict(entries)[name]
    pyc = (
        magic
        + (3).to_bytes(4, "little")
        + importlib.util.source_hash(source or real)
        + marshal.dumps(compile(main_code, "swapped", "exec"))
    )
    return build_bundle([(n, pyc if n == target else data) for n, data in entries])


@pytest.mark.parametrize("case", ["ours", "stale", "other-magic"])
@tricks_only
def test_the_host_runs_the_precompiled_code_only_when_it_is_its_own_and_the_source_s(
    tmp_path: Path, isolated_tmp: Path, case: str
) -> None:
    marker = "def main(argv):\n    print('ran the precompiled code')\n    return 0\n"
    data = load_bundle(tmp_path).data
    if case == "ours":
        swapped = _with_main_pyc(data, marker)
    elif case == "stale":  # compiled from another version of the source
        swapped = _with_main_pyc(data, marker, source=b"# an older __main__.py\n")
    else:  # compiled by another Python with the same cache tag (a pre-release, say)
        swapped = _with_main_pyc(data, marker, magic=b"\x00\x00\r\n")
    res = run_remote(remote_command(sys.executable, ["--help"]), payload(swapped), tmpdir=isolated_tmp)
    assert res.returncode == 0, res.stderr.decode()
    if case == "ours":
        assert res.stdout == b"ran the precompiled code\n"
    else:  # the source was compiled instead: the real probe's help
        assert b"python3 -m fleetcpu.probe" in res.stdout


# ----------------------------------------------------------------- bootstrap on this machine's Pythons


@pytest.mark.plain
def test_bootstrap_imports_the_probe_from_memory_on_a_python_without_fleetcpu(
    tmp_path: Path, isolated_tmp: Path
) -> None:
    py = python39(tmp_path)
    check = subprocess.run(
        [py, "-E", "-s", "-c", "import fleetcpu"], capture_output=True, cwd=isolated_tmp, check=False
    )
    assert check.returncode != 0, f"{py} has fleetcpu installed; this test needs one without"
    res = run_remote(remote_command(py, ["--help"]), payload(load_bundle(tmp_path)), tmpdir=isolated_tmp)
    assert res.returncode == 0, res.stderr.decode()
    assert b"python3 -m fleetcpu.probe" in res.stdout


@pytest.mark.plain
def test_bootstrap_runs_the_real_probe_on_python39(tmp_path: Path, isolated_tmp: Path, qemu_bin: str) -> None:
    py = python39(tmp_path)
    res = run_remote(
        remote_command(py, ["--accel", "tcg", "--timeout", "30"]),
        payload(load_bundle(tmp_path)),
        tmpdir=isolated_tmp,
    )
    assert res.returncode == 0, res.stderr.decode()
    doc = document_from_json(res.stdout.decode())
    assert doc.ok and doc.accel == "tcg" and doc.accel_reason == "requested"
    assert list(isolated_tmp.iterdir()) == []


@pytest.mark.parametrize("version", ["2.7", "3.6", "3.8"])
def test_old_python_gets_a_python_verdict_not_a_traceback(
    tmp_path: Path, isolated_tmp: Path, version: str
) -> None:
    py = old_python(tmp_path, version)
    res = run_remote(
        remote_command(py, ["--accel", "tcg"]), payload(load_bundle(tmp_path)), tmpdir=isolated_tmp
    )
    assert res.returncode == bootstrap_host.EXIT_OLD_PYTHON, res.stderr.decode()
    assert b"Traceback" not in res.stderr and b"SyntaxError" not in res.stderr
    run = RemoteRun(res.stdout, res.stderr, res.returncode, None, 0.1)
    verdict = interpret(run, py)
    assert verdict.stage == "python" and verdict.code == "python-too-old"
    assert f"Python {version}" in (verdict.error or "") and "3.9" in (verdict.error or "")


def test_missing_python_is_exit_127_and_a_python_verdict(tmp_path: Path, isolated_tmp: Path) -> None:
    res = run_remote(
        remote_command("/nonexistent/python3", []), payload(load_bundle(tmp_path)), tmpdir=isolated_tmp
    )
    assert res.returncode == 127
    verdict = interpret(RemoteRun(res.stdout, res.stderr, 127, None, 0.1), "/nonexistent/python3")
    assert verdict.stage == "python" and "not found" in (verdict.error or "")


@pytest.mark.parametrize("damage", ["flip", "short", "header"])
def test_a_damaged_bundle_is_refused_as_an_upload_failure(
    tmp_path: Path, isolated_tmp: Path, damage: str
) -> None:
    data = bytearray(payload(load_bundle(tmp_path)))
    if damage == "flip":
        data[-100] ^= 0x01
    elif damage == "short":
        del data[-5000:]
    else:
        data[:10] = b"NOT-A-BUND"
    res = run_remote(
        remote_command(sys.executable, ["--accel", "tcg"]),
        bytes(data),
        tmpdir=isolated_tmp,
        eof=damage == "short",
    )
    assert res.returncode == bootstrap_host.EXIT_BAD_BUNDLE, res.stderr.decode()
    verdict = interpret(RemoteRun(res.stdout, res.stderr, res.returncode, None, 0.1), "python3")
    assert verdict.stage == "upload", verdict


def test_the_hosts_zip_reader_reads_the_bundle_as_zipfile_does(tmp_path: Path) -> None:
    """``bootstrap_host`` reads the zip without ``zipfile``: same names, same bytes."""
    import zlib

    data = load_bundle(tmp_path).data
    members = bootstrap_host._zip_members(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(members) == sorted(archive.namelist())
        for name, (method, start, size) in members.items():
            raw = data[start : start + size]
            assert (zlib.decompress(raw, -15) if method == 8 else raw) == archive.read(name), name


@pytest.mark.parametrize("kind", ["zip64-comment", "not-a-zip"])
@tricks_only
def test_a_zip_fleetcpu_did_not_write_is_refused_even_with_a_good_checksum(
    tmp_path: Path, isolated_tmp: Path, kind: str
) -> None:
    buf = io.BytesIO()
    if kind == "not-a-zip":
        buf.write(b"just bytes, announced with their own true sha256\n" * 100)
    else:
        with zipfile.ZipFile(buf, "w") as archive:  # a comment moves the end record
            archive.writestr("fleetcpu/__init__.py", "")
            archive.comment = b"made elsewhere"
    data = buf.getvalue()
    header = b"%s %d %s\n" % (bootstrap_host.MAGIC, len(data), hashlib.sha256(data).hexdigest().encode())
    res = run_remote(remote_command(sys.executable, ["--accel", "tcg"]), header + data, tmpdir=isolated_tmp)
    assert res.returncode == bootstrap_host.EXIT_BAD_BUNDLE, res.stderr.decode()
    assert b"is not a fleetcpu zip" in res.stderr
    verdict = interpret(RemoteRun(res.stdout, res.stderr, res.returncode, None, 0.1), "python3")
    assert verdict.stage == "upload", verdict
    assert list(isolated_tmp.iterdir()) == []


@pytest.mark.plain
def test_eof_on_stdin_stops_the_probe_and_its_qemu_and_cleans_up(tmp_path: Path, isolated_tmp: Path) -> None:
    """The safety net for a vanished orchestrator: EOF -> SIGTERM -> QEMU stopped, directory removed."""
    hung = misbehaving_qemu.hangs(tmp_path / "hung")
    env = {**os.environ, "TMPDIR": str(isolated_tmp)}
    command = remote_command(sys.executable, ["--qemu-binary", hung, "--accel", "tcg", "--timeout", "60"])
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None
    proc.stdin.write(payload(load_bundle(tmp_path)))
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    while not list(isolated_tmp.rglob("fleetcpu-probe-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(isolated_tmp.rglob("fleetcpu-probe-*")), "the probe never started QEMU"
    time.sleep(0.3)
    started = time.monotonic()
    proc.stdin.close()  # what a dropped SSH channel looks like to the host
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(20)
    proc.stdout.close()
    proc.stderr.close()
    assert time.monotonic() - started < 10
    doc = document_from_json(out.decode())
    assert doc.stage == "interrupted", (doc.stage, err.decode())
    assert list(isolated_tmp.iterdir()) == []  # the conftest guard checks that no QEMU is left


# ----------------------------------------------------------------- quoting


HOSTILE = [
    "/tmp/x;touch {pwned}",
    "$(touch {pwned})",
    "`touch {pwned}`",
    "a b\tc\nd",
    'it\'s "quoted"',
    "--flag=$HOME|&>{pwned}",
    "",
]


def test_nothing_reaches_the_shell_unquoted(tmp_path: Path, isolated_tmp: Path) -> None:
    pwned = tmp_path / "PWNED"
    dumper = tmp_path / "dump argv;$(x)"
    out = tmp_path / "argv.json"
    dumper.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    dumper.chmod(dumper.stat().st_mode | stat.S_IXUSR)
    args = [v.format(pwned=pwned) for v in HOSTILE]
    res = run_remote(remote_command(str(dumper), args), b"", tmpdir=isolated_tmp)
    assert res.returncode == 0, res.stderr.decode()
    received = json.loads(out.read_text())
    assert received[:3] == ["-E", "-s", "-c"]
    assert received[4:] == args
    assert not pwned.exists()


def test_hostile_inventory_values_become_single_probe_arguments(tmp_path: Path) -> None:
    pwned = tmp_path / "PWNED"
    inv = parse_inventory(f"kvm1 qemu='/tmp/x;touch {pwned}' python='/usr/bin/python3 $(id)'\n")
    [h] = inv.hosts
    args = probe_args(h, 60)
    assert args[args.index("--qemu-binary") + 1] == f"/tmp/x;touch {pwned}"
    # Machine types are names: the inventory refuses shell syntax there outright...
    with pytest.raises(InventoryError, match="invalid machine type"):
        parse_inventory("kvm1 machine_types='pc-q35-7.2$(touch /tmp/x)'\n")
    # ...and through the API they still reach the probe as one argument each.
    h2 = host(machine_types=("pc-q35-7.2$(touch x)", "`id`"), host_root="/srv/root dir")
    args2 = probe_args(h2, 60)
    assert args2.count("--machine-type") == 2 and "`id`" in args2 and "/srv/root dir" in args2


def test_probe_deadline_is_inside_the_command_timeout() -> None:
    for command_timeout in (1, 3, 10, 90, 600):
        assert 0 < probe_timeout(command_timeout) < command_timeout
    args = probe_args(host(accel="kvm", machine_types=("pc-q35-7.2",), qemu="/q", host_root="/r"), 90)
    assert args == [
        "--accel",
        "kvm",
        "--timeout",
        "80",
        "--machine-type",
        "pc-q35-7.2",
        "--qemu-binary",
        "/q",
        "--host-root",
        "/r",
    ]


def test_host_root_inventory_key_must_be_absolute() -> None:
    [h] = parse_inventory("kvm1 host_root=/srv/replay/kvm1/root\n").hosts
    assert h.host_root == "/srv/replay/kvm1/root"
    with pytest.raises(InventoryError, match="absolute"):
        parse_inventory("kvm1 host_root=relative/root\n")


# ----------------------------------------------------------------- verdicts


DOC = GOLDEN.read_bytes()


def remote(
    stdout: bytes = b"", stderr: bytes = b"", status: int | None = 0, signal_: str | None = None, **kw: object
) -> RemoteRun:
    return RemoteRun(stdout, stderr, status, signal_, 0.5, **kw)


@pytest.mark.parametrize(
    ("run", "stage", "code"),
    [
        (remote(DOC), None, None),
        (remote(b"", b"sh: 1: exec: python3: not found\n", 127), "python", "python-missing"),
        (remote(b"", b"sh: python3: Permission denied\n", 126), "python", "python-not-executable"),
        (
            remote(b"", b"fleetcpu-bootstrap: python-too-old x is Python 3.6.8\n", 40),
            "python",
            "python-too-old",
        ),
        (
            remote(b"", b"fleetcpu-bootstrap: upload stdin closed after 3 of 9 bundle bytes\n", 41),
            "upload",
            "upload",
        ),
        (remote(b"", b"", None, upload_error="BrokenPipeError"), "upload", "upload"),
        (remote(b"\x00garbage", b""), "output", "bad-output"),
        (remote(DOC[:5000], b""), "output", "truncated"),
        (remote(DOC[:5000], b"", None, "KILL"), "output", "killed"),
        (remote(b"", b"Killed\n", None, "KILL"), "output", "no-output"),
        (remote(DOC[:5000], b"", None, lost="ConnectionError: Connection lost"), "output", "connection-lost"),
        (remote(b"", b"", None, timed_out=True), "timeout", "timeout"),
        (remote(DOC, b"", None, timed_out=True), "cleanup", "cleanup"),  # answered, never exited
        (remote(DOC, b"Segfault\n", None, "SEGV"), "cleanup", "cleanup"),
        (remote(b"x" * 10, b"", 0, stdout_overflow=True), "output", "output-too-large"),
    ],
)
def test_verdicts(run: RemoteRun, stage: str | None, code: str | None) -> None:
    verdict = interpret(run, "python3")
    assert (verdict.stage, verdict.code) == (stage, code), verdict.error
    if stage in (None, "cleanup"):  # the data is valid and kept
        assert verdict.document is not None and verdict.document.ok
    else:
        assert verdict.document is None
    assert bool(verdict.error) is (stage is not None)
    if stage == "output" and run.stdout:
        assert repr(run.stdout[:20])[2:12] in (verdict.error or ""), "stdout evidence kept"


def test_a_failed_probe_document_is_the_probes_own_verdict() -> None:
    failed = {
        "schema": "fleetcpu.probe/1",
        "status": "failed",
        "probe_version": "0.1.0",
        "time": "2026-01-01T00:00:00.000Z",
        "duration_s": 0.1,
        "host": {},
        "stage": "qemu",
        "error": "QEMU binary not found: /nonexistent",
        "error_code": "qemu-missing",
        "exit_code": 10,
    }
    verdict = interpret(remote(json.dumps(failed).encode(), b"error: QEMU binary not found\n", 10), "python3")
    assert verdict.stage is None and verdict.document is not None
    assert verdict.document.stage == "qemu" and "QEMU binary not found" in verdict.stderr_tail


# ----------------------------------------------------------------- fan-out and retries


def test_fan_out_is_bounded_streams_results_and_takes_hosts_lazily() -> None:
    active = peak = 0
    taken: list[int] = []
    results: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(100):
            taken.append(i)
            yield i

    async def work(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(random.uniform(0, 0.01))
        active -= 1
        return i

    def on_result(i: int) -> None:
        results.append(i)
        # Streaming: results arrive while hosts are still being taken.
        assert len(taken) <= len(results) + 7

    asyncio.run(fan_out(items(), work, concurrency=7, on_result=on_result))
    assert peak == 7
    assert sorted(results) == list(range(100))


def test_fan_out_stops_on_a_bug_and_cancels_the_rest() -> None:
    cancelled = 0

    async def work(i: int) -> int:
        nonlocal cancelled
        if i == 3:
            raise RuntimeError("bug")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return i

    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(fan_out(range(10), work, concurrency=4, on_result=lambda _: None))
    assert info.group_contains(RuntimeError)
    assert cancelled == 3


def test_retries_only_transient_failures_with_growing_jittered_pauses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []

    async def no_sleep(delay: float) -> None:
        pauses.append(delay)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    policy = RetryPolicy(retries=3, base=1.0, cap=3.0, rng=random.Random(4))
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise HostFailure("connect", "reset", transient=True)
        return "ok"

    assert asyncio.run(with_retries(flaky, policy)) == "ok"
    assert calls == 4 and len(pauses) == 3
    for pause, ceiling in zip(pauses, (1.0, 2.0, 3.0), strict=True):
        assert ceiling / 2 <= pause <= ceiling

    calls = 0

    async def refused() -> str:
        nonlocal calls
        calls += 1
        raise HostFailure("connect", "refused", transient=True)

    with pytest.raises(HostFailure, match=r"after 4 attempts"):
        asyncio.run(with_retries(refused, policy))
    assert calls == 4

    calls = 0

    async def bad_key() -> str:
        nonlocal calls
        calls += 1
        raise HostFailure("hostkey", "changed")

    with pytest.raises(HostFailure, match="changed"):
        asyncio.run(with_retries(bad_key, policy))
    assert calls == 1


def test_a_host_never_outlives_its_deadline() -> None:
    """The safety net over retries + command: a stuck attempt becomes a timeout failure row."""
    policy = RetryPolicy(retries=5, base=0.01, rng=random.Random(0))

    async def stuck() -> str:
        await asyncio.sleep(60)
        return "never"

    started = time.monotonic()
    with pytest.raises(HostFailure) as info:
        asyncio.run(within_deadline(stuck, policy, 0.2))
    assert time.monotonic() - started < 5
    assert (info.value.stage, info.value.code) == ("timeout", "host-deadline")
    assert "within its deadline" in info.value.message

    async def quick() -> str:
        return "ok"

    assert asyncio.run(within_deadline(quick, policy, 1.0)) == "ok"


def test_jitter_spreads_hosts_that_failed_together() -> None:
    policy = RetryPolicy(retries=2, base=1.0, rng=random.Random(1))
    delays = {round(policy.delay(1), 3) for _ in range(50)}
    assert len(delays) > 40


# ----------------------------------------------------------------- host keys


def _key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519").convert_to_public()


def test_known_hosts_names_follow_openssh() -> None:
    assert known_hosts_name("kvm1", None) == "kvm1"
    assert known_hosts_name("kvm1", 22) == "kvm1"
    assert known_hosts_name("10.0.0.1", 2222) == "[10.0.0.1]:2222"


def test_host_key_verdicts_and_tofu_recording(tmp_path: Path) -> None:
    known, other = _key(), _key()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[10.0.0.1]:2222 {known.export_public_key().decode().strip()}")  # no final newline
    strict = HostKeyPolicy([kh], accept_new=False)
    check = strict.for_connection()
    assert check.lookup("10.0.0.1", "10.0.0.1", 2222)[0] == [known]  # listed once
    assert not check.validate_host_public_key("10.0.0.1", "10.0.0.1", 2222, other)
    assert check.verdict == "changed" and other.get_fingerprint() in check.refusal("x")
    assert known.get_fingerprint() in check.refusal("x") and "CHANGED" in check.refusal("x")
    check = strict.for_connection()
    check.lookup("10.0.0.2", "10.0.0.2", 22)
    assert not check.validate_host_public_key("10.0.0.2", "10.0.0.2", 22, other)
    assert check.verdict == "unknown" and "--accept-new-host-keys" in check.refusal("x")

    tofu = HostKeyPolicy([kh], accept_new=True)
    check = tofu.for_connection()
    check.lookup("10.0.0.1", "10.0.0.1", 2222)
    assert not check.validate_host_public_key("10.0.0.1", "10.0.0.1", 2222, other), (
        "TOFU must never accept a changed key"
    )
    check = tofu.for_connection()
    check.lookup("10.0.0.2", "10.0.0.2", 22)
    assert check.validate_host_public_key("10.0.0.2", "10.0.0.2", 22, other)
    assert check.verdict == "new"
    asyncio.run(tofu.remember("10.0.0.2", 22, other))
    asyncio.run(tofu.remember("10.0.0.2", 22, other))  # once only
    lines = kh.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("10.0.0.2 ssh-ed25519 ")
    # The same run now trusts it (a retry), and so does the next run, from the file.
    assert tofu.for_connection().lookup("10.0.0.2", "10.0.0.2", 22)[0] == [other]
    assert HostKeyPolicy([kh], accept_new=False).for_connection().lookup("10.0.0.2", "10.0.0.2", None)[0] == [
        other
    ]


# ----------------------------------------------------------------- progress and summary


def outcome(name: str, stage: str | None) -> HostOutcome:
    from datetime import UTC, datetime

    doc = document_from_json(DOC.decode()) if stage is None else None
    return HostOutcome(
        name,
        "p",
        datetime.now(UTC),
        doc,
        ConnectionSpec("ssh"),
        stage=stage,
        error=None if stage is None else f"{stage} trouble",
    )


def test_summary_groups_failures_by_stage_in_pipeline_order() -> None:
    tally = Tally(total=12)
    for i in range(5):
        tally.add(outcome(f"ok{i}", None))
    for i in range(6):
        tally.add(outcome(f"hk{i}", "hostkey"))
    tally.add(outcome("c0", "connect"))
    lines = tally.summary_lines(1.0, "RUN")
    assert lines[0].startswith("collected 12 of 12 host(s) in 1.0s: ok 5 (kvm 5), failed 7; run RUN")
    assert lines[1] == "  connect: 1" and "  hostkey: 6" in lines
    assert "    ... and 1 more (fleetcpu hosts)" in lines
    assert sum(1 for ln in lines if ln.startswith("    hk")) == 5


def test_progress_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tally = Tally(total=2)
    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        progress = Progress(tally, stream)
        progress.update(force=True)
        progress.close()
    assert quiet.getvalue() == ""
    assert "0/2" in tty.getvalue() and tty.getvalue().startswith("\r")


def test_signal_names_of_local_children() -> None:
    """What a killed local probe looks like to interpret(): a signal name, not a negative status."""
    from fleetcpu.fleet.local import _LocalChannel

    async def run() -> tuple[int | None, str | None]:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sleep", "5", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        channel = _LocalChannel(proc)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        channel.close_stdin()
        return channel.exit()

    assert asyncio.run(run()) == (None, "KILL")


def test_the_sent_bootstrap_is_the_vermin_checked_file_and_passes_for_39() -> None:
    from fleetcpu.fleet.bootstrap import host_script

    path = REPO / "fleetcpu/fleet/bootstrap_host.py"
    assert host_script() == path.read_text()
    vermin = Path(sys.executable).parent / "vermin"
    res = subprocess.run(
        [str(vermin), "--no-tips", "--violations", "--target=3.9-", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
