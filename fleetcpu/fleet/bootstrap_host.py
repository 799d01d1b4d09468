"""The only code fleetcpu runs on a host before the probe: ``python3 -E -s -c <this file> ARGS``.

Why it exists: the probe must run on hosts where fleetcpu is not installed,
and nothing may be written on a production host. So the orchestrator sends
this file as the ``-c`` argument and the probe bundle (a zip of
``fleetcpu.probe`` and ``qemu.qmp``) on stdin; this file checks the
interpreter, reads and verifies the bundle, imports the probe from memory and
runs it with ARGS. No file is written, nothing is installed.

Why stdin stays open: sshd does not kill a remote command without a pty when
the client goes away, and a dead orchestrator must not leave QEMU running. So
after the bundle, a thread blocks on stdin; at EOF (the orchestrator gave up,
timed out, was killed, or the connection dropped) it sends the probe SIGTERM,
which the probe turns into "stop QEMU, remove the work directory, print an
interrupted document". The orchestrator never closes stdin while it still
wants the answer.

Why two processes: the probe runs in a forked child, and this process stays
a small supervisor. A probe can die without cleaning up (the OOM killer picks
the biggest process, an admin sends SIGKILL, the interpreter crashes); the
supervisor gave it a private ``TMPDIR``, waits for it, removes that directory
whatever happened, then exits the way the probe did (same status, or the
same signal), so the orchestrator's verdict is unchanged. The supervisor
forwards SIGTERM/SIGHUP/SIGINT (sshd's signal requests) to the probe, and the
probe dies with its supervisor (``PR_SET_PDEATHSIG``), so no level can be
orphaned by the death of the other.

Why it is written the way it is: every Python must be able to *parse* this
file, 2.7 included, so that an old interpreter fails with a clear verdict
(exit ``EXIT_OLD_PYTHON`` and a marker line) rather than a SyntaxError. Hence
no annotations (type comments instead), no f-strings, no keyword-only
arguments, and imports beyond ``sys`` happen after the version check.
``vermin --target=3.9-`` checks it; a test runs it under 2.7, 3.6, 3.8 and 3.9.

The protocol on stdin: one header line ``FLEETCPU-BUNDLE/1 <length> <sha256>``,
then exactly ``length`` bytes of zip, then nothing until EOF.
"""
# ruff: noqa: UP031, BLE001, S102, ARG002

import sys

__all__ = [
    "EXIT_BAD_BUNDLE",
    "EXIT_OLD_PYTHON",
    "MAGIC",
    "MARKER",
    "MAX_BUNDLE",
    "MIN_PYTHON",
    "ORIGIN",
    "PLAIN_ENV",
    "UPLOAD_DEADLINE",
    "main",
]

MIN_PYTHON = (3, 9)
#: Exit codes of the bootstrap itself, away from the probe's (1-25) and the shell's (126, 127).
EXIT_OLD_PYTHON = 40
EXIT_BAD_BUNDLE = 41
#: Prefix of the bootstrap's own diagnostic lines on stderr, which the orchestrator parses.
MARKER = "fleetcpu-bootstrap:"
MAGIC = b"FLEETCPU-BUNDLE/1"
#: A bundle is ~150 KB; refuse to buffer more than this from a confused sender.
MAX_BUNDLE = 64 * 1024 * 1024
#: ``fleetcpu.probe.speed.PLAIN_ENV``, spelt again: this file runs before the bundle is importable.
PLAIN_ENV = "FLEETCPU_PLAIN"
#: Where tracebacks say the bundled code lives (there is no file).
ORIGIN = "<fleetcpu-bundle>/"
#: Seconds to receive the bundle. An orchestrator that stalls mid-upload
#: without closing the connection must not leave this process waiting forever;
#: nothing has been started yet, so SIGALRM's default (exit) is the right end.
UPLOAD_DEADLINE = 300


def _say(what, detail):
    # type: (str, str) -> None
    sys.stderr.write("%s %s %s\n" % (MARKER, what, detail))
    sys.stderr.flush()


def _read_bundle(fd):
    # type: (int) -> bytes
    """Header line, then exactly the announced bytes, checked against the announced sha256."""
    import hashlib
    import os

    head = b""
    while b"\n" not in head:
        chunk = os.read(fd, 4096)
        if not chunk:
            _say("upload", "stdin closed after %d bytes, before the bundle header" % len(head))
            sys.exit(EXIT_BAD_BUNDLE)
        head += chunk
        if len(head) > 4096 and b"\n" not in head:
            _say("upload", "no bundle header on stdin")
            sys.exit(EXIT_BAD_BUNDLE)
    line, rest = head.split(b"\n", 1)
    fields = line.split()
    if len(fields) != 3 or fields[0] != MAGIC or not fields[1].isdigit():
        _say("upload", "bad bundle header %r" % line[:80])
        sys.exit(EXIT_BAD_BUNDLE)
    length = int(fields[1])
    digest = fields[2].decode("ascii", "replace")
    if length > MAX_BUNDLE:
        _say("upload", "bundle of %d bytes refused (limit %d)" % (length, MAX_BUNDLE))
        sys.exit(EXIT_BAD_BUNDLE)
    chunks = [rest]
    have = len(rest)
    while have < length:
        chunk = os.read(fd, min(1 << 20, length - have))
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    data = b"".join(chunks)[:length]
    if len(data) < length:
        _say("upload", "stdin closed after %d of %d bundle bytes" % (len(data), length))
        sys.exit(EXIT_BAD_BUNDLE)
    if hashlib.sha256(data).hexdigest() != digest:
        _say("upload", "bundle checksum mismatch (expected %s)" % digest)
        sys.exit(EXIT_BAD_BUNDLE)
    return data


def _zip_members(data):
    # type: (bytes) -> dict[str, tuple[int, int, int]]
    """Name -> (method, data offset, compressed size) of the bundle's zip, from its central directory.

    Why not ``zipfile``: importing it (with the ``pathlib`` it pulls in) and
    ``importlib.abc`` costs a host ~6 ms of CPU on every probe (Debian 12's
    Python 3.11, after the imports the probe needs anyway), to read a zip
    whose every byte the sha256 has already vouched for: fleetcpu wrote it
    (``bundle.build_bundle``: deflate, no zip64, no comment). Anything else
    is refused as a bad bundle.
    """
    import struct

    def bad(why):
        # type: (str) -> None
        _say("upload", "bundle is not a fleetcpu zip: %s" % why)
        sys.exit(EXIT_BAD_BUNDLE)

    end = len(data) - 22
    if end < 0 or data[end : end + 4] != b"PK\x05\x06":
        bad("no end of central directory")
    count, size, offset = struct.unpack_from("<HII", data, end + 10)
    members = {}  # type: dict[str, tuple[int, int, int]]
    pos = offset
    for _ in range(count):
        if data[pos : pos + 4] != b"PK\x01\x02":
            bad("damaged central directory")
        method, csize = struct.unpack_from("<H4xI", data, pos + 10)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        (local,) = struct.unpack_from("<I", data, pos + 42)
        name = data[pos + 46 : pos + 46 + name_len].decode("utf-8")
        pos += 46 + name_len + extra_len + comment_len
        if data[local : local + 4] != b"PK\x03\x04" or method not in (0, 8):
            bad("entry %s" % name)
        lname, lextra = struct.unpack_from("<HH", data, local + 26)
        members[name] = (method, local + 30 + lname + lextra, csize)
    if pos != offset + size:
        bad("central directory size")
    return members


def _install_plain(data):
    # type: (bytes) -> None
    """``FLEETCPU_PLAIN=1``: the bundle the ordinary way, with ``zipfile`` and the path importer.

    Unpacked into the probe's private ``TMPDIR`` (which the supervisor removes
    whatever happens) and put first on ``sys.path``. Not ``zipimport`` on the
    zip itself: it finds no namespace package (``qemu``) in a zip without
    directory entries before Python 3.12.
    """
    import io
    import os
    import zipfile

    where = os.path.join(os.environ["TMPDIR"], "bundle")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(where)
    except (OSError, zipfile.BadZipFile) as exc:
        _say("upload", "bundle is not a zip: %s" % exc)
        sys.exit(EXIT_BAD_BUNDLE)
    sys.path.insert(0, where)


def _install(data):
    # type: (bytes) -> None
    """Make the zip's modules importable from memory, ahead of anything installed on the host.

    First on ``sys.meta_path`` so a host's own ``fleetcpu`` or ``qemu``
    package can never be mixed with the bundled one. A directory without
    ``__init__.py`` (``qemu``, a namespace package) becomes an empty package.
    A module's code comes from its ``__pycache__/NAME.<cache_tag>.pyc`` entry
    when that was compiled by a Python with this one's magic number from the
    very source beside it (PEP 552 source hash), else from compiling the
    source. The importer is a plain finder and loader, not a subclass of
    ``importlib.abc``'s (whose import costs what ``_zip_members`` saves).

    This reader and importer are a speed trick like those of
    ``fleetcpu.probe.speed`` (~6 ms of host CPU per probe, commit 1159d45;
    ``benchmarks/host_bench.py``, *session* row), kept here because they are
    what installs the bundle that module ships in. ``FLEETCPU_PLAIN=1`` turns
    them off as it turns that module's off (``_install_plain``).
    """
    import os

    if os.environ.get(PLAIN_ENV, "") not in ("", "0"):
        _install_plain(data)
        return
    import importlib.machinery
    import importlib.util
    import marshal
    import types  # noqa: F401 - named in type comments
    import zlib

    members = _zip_members(data)

    def read(name):
        # type: (str) -> bytes
        method, start, size = members[name]
        raw = data[start : start + size]
        return zlib.decompress(raw, -15) if method == 8 else raw

    tag = getattr(sys.implementation, "cache_tag", None)  # type: str | None  # None: no caching
    # module name -> (archive path, or None for a namespace directory; is a package)
    modules = {}  # type: dict[str, tuple[str | None, bool]]
    for name in members:
        if not name.endswith(".py"):
            continue
        parts = name[:-3].split("/")
        for i in range(1, len(parts)):
            modules.setdefault(".".join(parts[:i]), (None, True))
        if parts[-1] == "__init__":
            modules[".".join(parts[:-1])] = (name, True)
        else:
            modules[".".join(parts)] = (name, False)

    def precompiled(path, source):
        # type: (str, bytes) -> types.CodeType | None
        if tag is None:
            return None
        directory, _, file = path.rpartition("/")
        pyc = "%s/__pycache__/%s.%s.pyc" % (directory, file[:-3], tag)
        if pyc not in members:
            return None
        blob = read(pyc)
        if blob[:4] != importlib.util.MAGIC_NUMBER or blob[8:16] != importlib.util.source_hash(source):
            return None
        try:
            code = marshal.loads(blob[16:])  # type: types.CodeType  # noqa: S302
        except (ValueError, EOFError, TypeError):
            return None
        return code

    class BundleImporter:
        def find_spec(self, fullname, path=None, target=None):
            # type: (str, object, object) -> importlib.machinery.ModuleSpec | None
            found = modules.get(fullname)
            if found is None:
                return None
            # typeshed wants the legacy load_module too; PEP 451's create/exec is all imports use.
            return importlib.util.spec_from_loader(
                fullname,
                self,  # type: ignore[arg-type]
                origin=ORIGIN + (found[0] or fullname),
                is_package=found[1],
            )

        def create_module(self, spec):
            # type: (importlib.machinery.ModuleSpec) -> None
            return None

        def exec_module(self, module):
            # type: (types.ModuleType) -> None
            exec(self.get_code(module.__name__), module.__dict__)

        def is_package(self, fullname):
            # type: (str) -> bool
            return modules[fullname][1]

        def get_source(self, fullname):
            # type: (str) -> str
            path = modules[fullname][0]
            return "" if path is None else read(path).decode("utf-8")

        def get_code(self, fullname):
            # type: (str) -> types.CodeType
            path = modules[fullname][0]
            if path is None:
                return compile("", ORIGIN + fullname, "exec", dont_inherit=True)
            source = read(path)
            code = precompiled(path, source)
            if code is None:
                code = compile(source.decode("utf-8"), ORIGIN + path, "exec", dont_inherit=True)
            return code

    sys.meta_path.insert(0, BundleImporter())


def _watch_stdin(fd, child):
    # type: (int, int) -> None
    """At EOF on stdin, SIGTERM the probe: it then stops QEMU and cleans up.

    Raw ``os.read``, not ``sys.stdin``: a daemon thread blocked inside a
    buffered reader would hold its lock and abort the interpreter at exit.
    """
    import contextlib
    import os
    import signal
    import threading

    def watch():
        # type: () -> None
        with contextlib.suppress(OSError):
            while os.read(fd, 65536):
                pass
        with contextlib.suppress(OSError):  # already gone
            os.kill(child, signal.SIGTERM)

    thread = threading.Thread(target=watch, name="fleetcpu-stdin-eof")
    thread.daemon = True
    thread.start()


def _die_with_parent(parent):
    # type: (int) -> None
    """SIGTERM this process when its supervisor dies (Linux prctl; best effort elsewhere)."""
    import contextlib
    import ctypes
    import os
    import signal

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(1)


def _run_probe(data, private, parent):
    # type: (bytes, str, int) -> None
    """The child: private TMPDIR, no stdin, the probe from memory; never returns."""
    import importlib
    import os
    import tempfile

    os.environ["TMPDIR"] = private  # for QEMU too
    tempfile.tempdir = private
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the supervisor alone watches stdin
    os.close(devnull)
    _die_with_parent(parent)
    code = 1
    try:
        _install(data)
        probe = importlib.import_module("fleetcpu.probe.__main__")
        code = probe.main(sys.argv[1:])
    except SystemExit as exc:  # argparse on a bad flag
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback  # only now: the probe starts QEMU before it imports what it needs

        traceback.print_exc()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # the orchestrator left: nobody reads our output any more
        code = code or 1
    os._exit(code)


def _supervise(child, private):
    # type: (int, str) -> None
    """Forward signals, wait, clean the private directory, exit as the probe did; never returns."""
    import contextlib
    import os
    import shutil
    import signal

    def forward(signum, _frame):
        # type: (int, object) -> None
        with contextlib.suppress(OSError):
            os.kill(child, signum)

    for forwarded in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(forwarded, forward)
    _watch_stdin(0, child)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
    shutil.rmtree(private, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.WIFSIGNALED(status):
        died_of = os.WTERMSIG(status)
        if died_of not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
            signal.signal(died_of, signal.SIG_DFL)
        os.kill(os.getpid(), died_of)
    # Not sys.exit: the stdin watcher may still be blocked in read().
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main():
    # type: () -> None
    if sys.version_info < MIN_PYTHON:
        major, minor, micro = sys.version_info[:3]
        _say(
            "python-too-old",
            "%s is Python %d.%d.%d, fleetcpu's probe needs %d.%d or newer"
            % (sys.executable or "python", major, minor, micro, MIN_PYTHON[0], MIN_PYTHON[1]),
        )
        sys.exit(EXIT_OLD_PYTHON)
    import os
    import signal
    import tempfile

    signal.alarm(UPLOAD_DEADLINE)
    data = _read_bundle(0)
    signal.alarm(0)
    private = tempfile.mkdtemp(prefix="fleetcpu-host-")
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()  # before any thread exists
    if child == 0:
        _run_probe(data, private, parent)
    _supervise(child, private)


if __name__ == "__main__":
    main()
