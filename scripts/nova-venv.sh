#!/usr/bin/env bash
# Nova in a venv of its own (.venv-nova), for the consumer tests only: they load
# --format nova through Nova's own option definitions and let Nova's
# LibvirtDriver build the guest <cpu> against a private libvirtd.
#   scripts/nova-venv.sh         create or refresh .venv-nova from tests/nova/requirements.txt
#   scripts/nova-venv.sh --lock  re-lock tests/nova/requirements.txt from requirements.in
# Exactly the lock, every file checked against its sha256 (as setup.sh does for
# .venv). Nova needs libvirt's Python binding, which is not on PyPI as a wheel
# (a build needs libvirt-dev and a compiler): Debian's python3-libvirt (setup.sh
# --dev installs it) is made visible through a .pth naming a directory that
# holds links to its four files, and nothing else from Debian's Python.
# Cost, measured on the 2-CPU machine: ~4 s with uv's cache warm, 135 packages,
# ~245 MiB; re-running with an unchanged lock is a stamp check.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/uvtool.sh  # quietly, uv_tool
uv_tool
lock=tests/nova/requirements.txt
if [ "${1:-}" = "--lock" ]; then
  "$UV" pip compile -q --python-version 3.11 --generate-hashes --no-header --no-annotate \
    tests/nova/requirements.in -o "$lock"
  exit 0
fi
venv=.venv-nova
stamp="$venv/.installed-$(cat "$lock" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x $venv/bin/python ] || "$UV" venv -q --python "${PYTHON:-python3}" $venv
  VIRTUAL_ENV=$PWD/$venv quietly .venv-uv/nova-install.log "installing Nova's lock" \
    "$UV" pip sync -q --require-hashes "$lock" || exit 1
  links=$PWD/$venv/debian-libvirt
  mkdir -p "$links"
  for f in libvirt.py libvirt_qemu.py libvirtmod.cpython-311-x86_64-linux-gnu.so \
           libvirtmod_qemu.cpython-311-x86_64-linux-gnu.so; do
    [ -e "/usr/lib/python3/dist-packages/$f" ] || {
      echo "nova-venv: /usr/lib/python3/dist-packages/$f missing: install python3-libvirt" >&2
      exit 1; }
    ln -sfn "/usr/lib/python3/dist-packages/$f" "$links/$f"
  done
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$links" >"$site/debian-libvirt.pth"
  rm -f $venv/.installed-*
  touch "$stamp"
fi
