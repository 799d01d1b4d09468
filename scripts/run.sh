#!/usr/bin/env bash
# Set up, then run fleetcpu's main job on its embedded default: this host.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
set -x
fleetcpu probe --indent 2
