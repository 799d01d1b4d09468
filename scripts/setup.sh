#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine: Debian packages (only those
# missing), then a virtualenv in .venv holding exactly what the lock
# (requirements.txt, or requirements-dev.txt with --dev) pins, with fleetcpu
# installed into it (editable).
#   scripts/setup.sh          what `fleetcpu` itself needs (QEMU, libvirt's cpu_map)
#   scripts/setup.sh --dev    plus what the test suite needs (sshd, virsh, dev tools)
#   scripts/setup.sh --latest like --dev, but into .venv-latest with the newest
#                             versions pyproject.toml allows, ignoring the lock
# Re-running is cheap: apt is skipped when everything is there, the install
# when the lock, pyproject.toml and the pinned uv have not changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0 latest=0
case "${1:-}" in
  --dev) dev=1 ;;
  --latest) dev=1 latest=1 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--dev|--latest]" >&2; exit 2 ;;
esac

# libvirt0: its /usr/share/libvirt/cpu_map is what --format libvirt, nova and
# kubevirt translate feature names with (they exit 3 without it).
# ca-certificates: the trust store pip and uv check PyPI's certificate with
# (a minbase root has none; scripts/uvtool.sh makes uv use it).
pkgs=(qemu-system-x86 qemu-utils python3-venv libvirt0 ca-certificates)
if [ $dev = 1 ]; then
  # openssh-server: the end-to-end tests run a real sshd on 127.0.0.x.
  # libvirt-clients: `virsh -c test:///default` is the independent oracle.
  # strace: a test counts the processes an import starts.
  # libvirt-daemon, libvirt-daemon-driver-qemu: the consumer tests' private libvirtd
  # (not libvirt-daemon-system, which starts a service); python3-libvirt: Nova's binding.
  pkgs+=(openssh-server openssh-client libvirt-clients util-linux procps strace libvirt-daemon libvirt-daemon-driver-qemu python3-libvirt)
fi
. scripts/uvtool.sh  # quietly, uv_tool

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  # apt's chatter (debconf's "delaying package configuration" on a minimal
  # root) goes to a log, shown only if apt fails: the first thing a new
  # operator reads should be fleetcpu's answer, not apt's notes.
  apt=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get)
  quietly .setup-apt.log "apt-get update" "${apt[@]}" update -qq || exit 1
  quietly .setup-apt.log "apt-get install ${missing[*]}" "${apt[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}" || exit 1
  rm -f .setup-apt.log
fi

uv_tool
PY=${PYTHON:-python3}

lock=requirements.txt
[ $dev = 1 ] && lock=requirements-dev.txt
venv=.venv
if [ $latest = 1 ]; then
  # Outside CI only: what `pip install fleetcpu` resolves today, unlocked.
  venv=.venv-latest
fi
if [ $latest = 0 ]; then
  # The lock must be made from this pyproject.toml, or the install would not
  # be what the code was tested with: refuse in one line, with the fix.
  "$PY" scripts/lockcheck.py check requirements.txt requirements-dev.txt
fi
# "pyc": venvs installed before the bytecode below are installed again.
stamp="$venv/.fleetcpu-installed-$(cat "$lock" pyproject.toml scripts/uv-requirements.txt \
  | sha256sum | cut -c1-16)-$dev-$latest-pyc"
if [ $latest = 1 ] || [ ! -f "$stamp" ]; then
  [ -x $venv/bin/python ] || "$UV" venv -q --python "$PY" $venv
  log=.venv-uv/install.log
  export VIRTUAL_ENV=$PWD/$venv
  if [ $latest = 1 ]; then
    steps=("$UV pip install --compile-bytecode --upgrade --refresh -e .[dev]")
  else
    # Exactly the lock, every file checked against its sha256; then fleetcpu
    # itself, built with the locked setuptools (no unpinned build env).
    # --compile-bytecode, as pip does: uv writes no .pyc, and where
    # PYTHONDONTWRITEBYTECODE is set (CI images, this machine) every command
    # then compiled asyncssh, pyarrow and click again: +0.5 s CPU per process.
    steps=("$UV pip sync --compile-bytecode --require-hashes $lock"
           "$UV pip install --no-deps --no-build-isolation -e .")
  fi
  for step in "${steps[@]}"; do
    # shellcheck disable=SC2086 # each step is a command line, split on purpose
    quietly "$log" "'$step'" $step || exit 1
  done
  unset VIRTUAL_ENV
  [ $latest = 1 ] && "$UV" pip list --python $venv/bin/python --format freeze >$venv/versions.txt
  rm -f $venv/.fleetcpu-installed-*
  touch "$stamp"
fi
# An editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set
# (as on some machines) every command would compile ~30 modules again
# (40-90 ms each time): compile once here, as pip does for a regular install.
$venv/bin/python -m compileall -q fleetcpu >/dev/null
