"""The probe bundle: the exact code a host runs, as one deterministic zip.

Why a zip built from the *installed* packages: the orchestrator and the hosts
must run the same probe, and the host has neither fleetcpu nor qemu.qmp. The
zip holds ``fleetcpu/__init__.py``, ``fleetcpu/errors.py``,
``fleetcpu/probe/*.py`` and ``qemu/qmp/*.py``; ``bootstrap_host`` imports it
from memory.

Why deterministic (sorted entries, fixed timestamps and modes, one
compression level): the bundle's sha256 then names its content, so two runs
of one fleetcpu version ship byte-identical bundles, the host can verify what
it received, and a cached file can be trusted by its name.

Why cached under ``$XDG_CACHE_HOME/fleetcpu/``: building costs a few tens of
milliseconds of compression, and the cached file is what an operator can
inspect (``unzip -l``) when asking "what exactly ran on my hosts?". The cache
key is a hash of the source files, so editing the probe makes a new bundle; a
cache file is written to a temporary name and renamed, so two concurrent runs
never see half a file, and a cache that cannot be written is not an error.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Bundle", "build_bundle", "bundle_sources", "cache_dir", "load_bundle"]

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


def bundle_sources() -> list[tuple[str, Path]]:
    """(archive name, file) for every file the probe needs on a host, sorted by archive name."""
    fleetcpu_dir = _package_dir("fleetcpu")
    qmp_dir = _package_dir("qemu.qmp")
    files = [
        ("fleetcpu/__init__.py", fleetcpu_dir / "__init__.py"),
        ("fleetcpu/errors.py", fleetcpu_dir / "errors.py"),
    ]
    files += [(f"fleetcpu/probe/{p.name}", p) for p in (fleetcpu_dir / "probe").glob("*.py")]
    files += [(f"qemu/qmp/{p.name}", p) for p in qmp_dir.glob("*.py")]
    return sorted(files)


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
    h = hashlib.sha256()
    for name, content in sources:
        h.update(name.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return h.hexdigest()


def load_bundle(directory: Path | None = None) -> Bundle:
    """The bundle of the installed probe: from the cache when it holds this exact source, else built."""
    sources = [(name, path.read_bytes()) for name, path in bundle_sources()]
    where = cache_dir() if directory is None else directory
    cached = where / f"probe-bundle-{_source_key(sources)[:32]}.zip"
    try:
        data = cached.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = tuple(archive.namelist())
            intact = archive.testzip() is None  # every entry's CRC: a damaged cache is rebuilt
    except (OSError, zipfile.BadZipFile):
        pass
    else:
        if intact and names == tuple(name for name, _ in sources):
            return Bundle(data, hashlib.sha256(data).hexdigest(), names)
    bundle = build_bundle(sources)
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
