#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine: Debian packages (only those
# missing), a virtualenv in .venv, and fleetcpu installed into it.
#   scripts/setup.sh          what `fleetcpu` itself needs (QEMU)
#   scripts/setup.sh --dev    plus what the test suite needs (sshd, virsh, dev tools)
# Re-running is cheap: apt is skipped when everything is there, pip when
# pyproject.toml has not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

pkgs=(qemu-system-x86 qemu-utils python3-venv)
if [ $dev = 1 ]; then
  # openssh-server: the end-to-end tests run a real sshd on 127.0.0.x.
  # libvirt-clients: `virsh -c test:///default` is the independent oracle.
  # strace: a test counts the processes an import starts.
  pkgs+=(openssh-server openssh-client libvirt-clients util-linux procps strace)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extra="."
[ $dev = 1 ] && extra=".[dev]"
stamp=".venv/.fleetcpu-installed-$(sha256sum pyproject.toml | cut -c1-16)-$dev"
if [ ! -f "$stamp" ]; then
  log=.venv/pip-install.log
  if ! .venv/bin/python -m pip install -q -e "$extra" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install failed (log above, also in $log)" >&2
    exit 1
  fi
  rm -f .venv/.fleetcpu-installed-*
  touch "$stamp"
fi
# An editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set
# (as on some machines) every command would compile ~30 modules again
# (40-90 ms each time): compile once here, as pip does for a regular install.
.venv/bin/python -m compileall -q fleetcpu >/dev/null
