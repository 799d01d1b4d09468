#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml's ranges:
#   requirements-dev.txt  the whole tree the test command installs: runtime,
#                         the dev extra, and the build backend (setuptools)
#   requirements.txt      the run command's subset, at the same versions
# Each is a universal resolve (every platform, Python >= 3.11) with the sha256
# of every file, in pip's requirements format, and carries the fingerprint of
# the pyproject.toml it was made from, which setup.sh checks.
#   scripts/lock.sh             keep today's pins where they still fit
#   scripts/lock.sh --upgrade   move every pin to the newest version that fits
# Commit both files with the pyproject.toml change that needed them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/uvtool.sh
uv_tool
upgrade=()
[ "${1:-}" = "--upgrade" ] && upgrade=(--upgrade)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/lockcheck.py build-requires >"$work/build-requirements.in"
fp=$(python3 scripts/lockcheck.py fingerprint)
compile() {  # OUT, then the sources and options
  local out=$1; shift
  [ -f "$out" ] && cp "$out" "$work/$out"
  "$UV" pip compile -q --universal --python-version 3.11 --generate-hashes --no-header \
    --no-annotate "${upgrade[@]}" -o "$work/$out" "$@"
  { echo "# Locked by scripts/lock.sh from pyproject.toml: do not edit; pip install --require-hashes -r $out"
    echo "$MARK$fp"
    cat "$work/$out"; } >"$out"
}
MARK="# pyproject-fingerprint: "
compile requirements-dev.txt pyproject.toml --extra dev "$work/build-requirements.in"
compile requirements.txt pyproject.toml "$work/build-requirements.in" -c requirements-dev.txt
echo "lock: requirements-dev.txt ($(grep -c '==' requirements-dev.txt) pins)," \
     "requirements.txt ($(grep -c '==' requirements.txt) pins), fingerprint $fp" >&2
