#!/usr/bin/env bash
# Set up, then run fleetcpu's main job on its embedded default, this host:
# probe it (inventories/local.txt: localhost, transport=local, pool=local),
# store the result, and print the pool's CPU model.
# The store is the default one ($FLEETCPU_STORE, else ~/.local/share/fleetcpu):
# every run appends to its history.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
set -x
fleetcpu collect inventories/local.txt
fleetcpu hosts --pool local
fleetcpu baseline --pool local
