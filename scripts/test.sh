#!/usr/bin/env bash
# Set up, then run the whole gate: ruff, mypy --strict, vermin (the probe's
# Python 3.9 promise) and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" >&2
ruff check fleetcpu tests benchmarks notebooks
echo "== mypy --strict" >&2
mypy --strict fleetcpu
echo "== vermin --target=3.9- (what ships to hosts)" >&2
vermin --no-tips --violations --target=3.9- --eval-annotations fleetcpu/probe fleetcpu/errors.py fleetcpu/__init__.py
echo "== pytest" >&2
exec pytest -q -p no:cacheprovider "$@"
