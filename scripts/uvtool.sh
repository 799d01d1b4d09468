# Sourced by setup.sh and lock.sh: puts the pinned uv (scripts/uv-requirements.txt)
# in .venv-uv/ and exports UV, the path of its binary.
#
# Why a venv of its own: `uv pip sync` makes .venv exactly what the lock says
# and would remove a uv installed there; .venv-uv/ holds only the pinned tool.
# Why pip with --require-hashes: pip comes with python3-venv, so the only
# thing fetched before the lock can be checked is the tool, and its bytes are
# checked too.
# quietly LOG WHAT COMMAND...: COMMAND's output goes to LOG, shown (with WHAT
# failed) only if it fails, so a working setup prints fleetcpu's lines alone.
quietly() {
  local log=$1 what=$2
  shift 2
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: $what failed (log above, also in $log)" >&2
    return 1
  fi
}

uv_tool() {
  local want stamp
  want=$(sha256sum scripts/uv-requirements.txt | cut -c1-16)
  stamp=".venv-uv/.installed-$want"
  if [ ! -f "$stamp" ]; then
    rm -rf .venv-uv
    "${PYTHON:-python3}" -m venv .venv-uv
    quietly .venv-uv.log "installing the pinned uv" .venv-uv/bin/python -m pip install -q \
      --disable-pip-version-check --require-hashes --no-deps -r scripts/uv-requirements.txt \
      || return 1
    rm -f .venv-uv.log
    touch "$stamp"
  fi
  UV="$PWD/.venv-uv/bin/uv"
  export UV
  # uv may not download interpreters: the venv is built on the machine's python3.
  export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
  # uv trusts what this machine trusts (Debian's ca-certificates, plus any
  # local CA an operator added, e.g. a TLS-inspecting proxy's), as apt and
  # pip do; its built-in roots alone refused such a proxy in a pristine root.
  export UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS:-1}
}
