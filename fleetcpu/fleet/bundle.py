"""The probe bundle: the exact code a host runs, as one deterministic zip.

Why a zip built from the *installed* packages: the orchestrator and the hosts
must run the same probe, and the host has neither fleetcpu nor qemu.qmp. The
zip holds ``fleetcpu/__init__.py``, ``fleetcpu/errors.py``,
``fleetcpu/vocabulary.py``, ``fleetcpu/probe/*.py`` and ``qemu/qmp/*.py`` (less its interactive tools),
each with its precompiled code; ``bootstrap_host`` imports it from memory.

Why precompiled code beside the source: a host whose Python has the
orchestrator's bytecode magic (the common case: hosts and orchestrator of one
distribution release) would otherwise compile the probe on every run: a
quarter of the instructions the host's Python spends from its start until
the probe's modules are imported (callgrind: 421 M without, 309 M with),
~20 ms of CPU per host, paid 16 times at once when 2 cores probe 16 hosts.
Each ``x.py`` gets ``__pycache__/x.<cache_tag>.pyc``, in CPython's own
hash-based format (PEP 552): magic, flags, the source's hash, marshalled
code. The host uses it only when magic and source hash match its own
interpreter and the source beside it, and compiles the source otherwise, so
any Python >= 3.9 still runs the bundle; the source stays what an operator
reads. The code is compiled in a fresh ``python -I -S`` because marshal's
output depends on what else the compiling process has loaded (it marks
objects shared by reference count); a fresh process makes it the same on
every run of one interpreter build.

Why deterministic (sorted entries, fixed timestamps and modes, one
compression level, the code compiled in a fresh process): the bundle's
sha256 then names its content, so two runs of one fleetcpu version on one
Python ship byte-identical bundles, the host can verify what it received,
and a cached file can be trusted by its name.

Why cached under ``$XDG_CACHE_HOME/fleetcpu/``: building costs a fresh
Python compiling the probe and tens of milliseconds of compression, and the
cached file is what an operator can inspect (``unzip -l``) when asking "what
exactly ran on my hosts?". The cache key is a hash of the source files and
of the interpreter, so editing the probe or changing Python makes a new
bundle; a cache file is written to a temporary name and renamed, so two
concurrent runs never see half a file, and a cache that cannot be written is
not an error.
"""

from __future__ import annotations

import hashlib
import io
import marshal
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .bootstrap_host import ORIGIN

__all__ = [
    "Bundle",
    "build_bundle",
    "bundle_sources",
    "cache_dir",
    "load_bundle",
    "precompile",
    "pyc_name",
]

#: Zip's epoch: every entry carries it, so the bytes do not depend on file mtimes.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_MODE = 0o644 << 16
_LEVEL = 9


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    #: Archive names, sorted (for the "what ran on my hosts?" question and for tests).
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.data)


def _package_dir(name: str) -> Path:
    import importlib

    module = importlib.import_module(name)
    paths = list(getattr(module, "__path__", []))
    if not paths:
        raise RuntimeError(f"{name} is not a package")
    return Path(paths[0])


#: qemu.qmp's tools for people at a terminal (qmp-shell, qmp-tui and the synchronous wrapper
#: they use): the probe never imports them, and they were a fifth of the bundle (52 of 279 KB).
_QMP_TOOLS = frozenset({"legacy.py", "qmp_shell.py", "qmp_tui.py"})


def bundle_sources() -> list[tuple[str, Path]]:
    """(archive name, file) for every file the probe needs on a host, sorted by archive name."""
    fleetcpu_dir = _package_dir("fleetcpu")
    qmp_dir = _package_dir("qemu.qmp")
    files = [
        ("fleetcpu/__init__.py", fleetcpu_dir / "__init__.py"),
        ("fleetcpu/errors.py", fleetcpu_dir / "errors.py"),
        ("fleetcpu/vocabulary.py", fleetcpu_dir / "vocabulary.py"),
    ]
    files += [(f"fleetcpu/probe/{p.name}", p) for p in (fleetcpu_dir / "probe").glob("*.py")]
    files += [(f"qemu/qmp/{p.name}", p) for p in qmp_dir.glob("*.py") if p.name not in _QMP_TOOLS]
    return sorted(files)


#: Run as ``python -I -S -c THIS ORIGIN``: marshalled ``[(name, source)]`` on stdin, marshalled
#: ``(cache_tag, [pyc bytes])`` on stdout. File names as the host's own compile would give
#: them (tracebacks name ``<fleetcpu-bundle>/...``). Flags 3: hash-based, checked (PEP 552).
_COMPILER = """
import importlib.util, marshal, sys
out = []
for name, source in marshal.loads(sys.stdin.buffer.read()):
    code = compile(source, sys.argv[1] + name, "exec", dont_inherit=True, optimize=0)
    out.append(importlib.util.MAGIC_NUMBER + (3).to_bytes(4, "little")
               + importlib.util.source_hash(source) + marshal.dumps(code))
sys.stdout.buffer.write(marshal.dumps((sys.implementation.cache_tag, out)))
"""


def pyc_name(source_name: str, cache_tag: str) -> str:
    """Where CPython would cache ``source_name``'s code: ``a/b.py`` -> ``a/__pycache__/b.TAG.pyc``."""
    directory, _, file = source_name.rpartition("/")
    return f"{directory}/__pycache__/{file.removesuffix('.py')}.{cache_tag}.pyc"


def precompile(sources: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``(pyc name, pyc)`` for each source, compiled by this interpreter; [] if that fails.

    Failing is not an error: the host then compiles the source, as on a host
    whose Python differs from this one.
    """
    if not sys.executable or sys.implementation.cache_tag is None:
        return []
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _COMPILER, ORIGIN],
            input=marshal.dumps(sources),
            capture_output=True,
            timeout=60,
            check=True,
        )
        tag, pycs = marshal.loads(done.stdout)  # noqa: S302 - our own child's answer
    except (OSError, subprocess.SubprocessError, ValueError, EOFError, TypeError):
        return []
    if tag != sys.implementation.cache_tag or len(pycs) != len(sources):
        return []
    return [(pyc_name(name, tag), pyc) for (name, _), pyc in zip(sources, pycs, strict=True)]


def build_bundle(sources: list[tuple[str, bytes]]) -> Bundle:
    """Zip ``(archive name, content)`` pairs deterministically."""
    buf = io.BytesIO()
    ordered = sorted(sources)
    with zipfile.ZipFile(buf, "w") as archive:
        for name, content in ordered:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = _MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the orchestrator runs on
            archive.writestr(info, content, compresslevel=_LEVEL)
    data = buf.getvalue()
    return Bundle(data, hashlib.sha256(data).hexdigest(), tuple(name for name, _ in ordered))


def cache_dir(env: dict[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleetcpu"


def _source_key(sources: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256(f"{sys.implementation.cache_tag}\0{sys.version}\0".encode())
    for name, content in sources:
        h.update(name.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return h.hexdigest()


def load_bundle(directory: Path | None = None) -> Bundle:
    """The bundle of the installed probe: from the cache when it holds this exact source, else built."""
    sources = [(name, path.read_bytes()) for name, path in bundle_sources()]
    where = cache_dir() if directory is None else directory
    cached = where / f"probe-bundle-{_source_key(sources)[:32]}.zip"
    tag = sys.implementation.cache_tag
    complete = sorted(
        [name for name, _ in sources] + ([pyc_name(name, tag) for name, _ in sources] if tag else [])
    )
    try:
        data = cached.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = tuple(archive.namelist())
            intact = archive.testzip() is None  # every entry's CRC: a damaged cache is rebuilt
    except (OSError, zipfile.BadZipFile):
        pass
    else:
        if intact and list(names) == complete:
            return Bundle(data, hashlib.sha256(data).hexdigest(), names)
    bundle = build_bundle(sources + precompile(sources))
    if list(bundle.names) == complete:  # a bundle without its code is rebuilt next time
        _write_atomically(cached, bundle.data)
    return bundle


def _write_atomically(path: Path, data: bytes) -> None:
    """Best effort: a read-only home must not stop a collection, it only costs a rebuild."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
