"""Small stand-ins for QEMU that misbehave on purpose, for the probe's failure paths.

Each is an executable named ``qemu-system-x86_64`` in its own directory (so
the orphan guard sees it), answering ``-version`` like QEMU where the case
needs the probe to get past the banner. Shell wrappers ``exec`` so that the
process the probe starts *is* the one it must stop.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

BANNER = "QEMU emulator version 7.2.22 (fake)\nCopyright (c) 2003-2022 Fabrice Bellard\n"


def _write(directory: Path, body: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "qemu-system-x86_64"
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def _refuse(directory: Path, real: str, flag: str, value: str, message: str) -> str:
    """Real QEMU, except that ``flag value`` (exactly) dies at start with ``message``."""
    return _write(
        directory,
        f"""#!/bin/bash
prev=
for a in "$@"; do
  if [ "$prev" = "{flag}" ] && [ "$a" = "{value}" ]; then
    echo "qemu-system-x86_64: error: {message}" >&2
    exit 1
  fi
  prev=$a
done
exec {real} "$@"
""",
    )


def refuse_cpu(directory: Path, real: str, refused: str = "host") -> str:
    """``-cpu <refused>`` dies at start, like a broken host."""
    return _refuse(directory, real, "-cpu", refused, f"wrapper refuses -cpu {refused}")


def refuse_kvm(directory: Path, real: str) -> str:
    """KVM always fails, as on a host with a broken kvm module."""
    return _refuse(directory, real, "-accel", "kvm", "failed to initialize kvm: Permission denied")


def dies_at_start(directory: Path, real: str) -> str:
    """Answers -version like QEMU, then every launch dies after printing an error."""
    return _write(
        directory,
        f"""#!/bin/bash
if [ "$1" = "-version" ]; then exec {real} -version; fi
echo "qemu-system-x86_64: -machine foo: could not open /dev/fake: No such device" >&2
exit 1
""",
    )


def not_qemu(directory: Path) -> str:
    return _write(directory, "#!/bin/sh\necho 'GNU coreutils pretend 9.1'\nexit 0\n")


def hangs(directory: Path) -> str:
    """Says it is QEMU, then never greets on QMP: the probe's deadline must stop it."""
    return _write(
        directory,
        f"""#!/bin/bash
if [ "$1" = "-version" ]; then printf '%s' "{BANNER}"; exit 0; fi
exec -a qemu-system-x86_64-hung sleep 600
""",
    )


def garbage_qmp(directory: Path) -> str:
    """Says it is QEMU, then writes garbage on the QMP socket and stays alive."""
    return _write(
        directory,
        f"""#!{sys.executable}
import os, re, sys, time
if sys.argv[1:] == ["-version"]:
    sys.stdout.write({BANNER!r}); sys.exit(0)
fd = None
for a in sys.argv:
    m = re.match(r"socket,id=qmp,fd=(\\d+)", a)
    if m:
        fd = int(m.group(1))
os.write(fd, b'{{"this is": "not QMP"}}\\nHTTP/1.1 400 Bad Request\\n')
time.sleep(600)
""",
    )
