#!/usr/bin/env bash
# Set up, then run the whole gate: ruff (check and format), mypy (--strict on the package; the
# tests too, less strictly), import-linter (the layering), vermin (the
# probe's Python 3.9 promise) and the test suite, then (without extra arguments) its
# `plain` subset with FLEETCPU_PLAIN=1. Extra arguments go to pytest.
#   scripts/test.sh [PYTEST ARGS]           against the lock (what CI runs)
#   scripts/test.sh --latest [PYTEST ARGS]  against the newest versions that
#       pyproject.toml allows, unlocked, in .venv-latest: outside CI, to find
#       out before users do what the next release of a dependency breaks
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
if [ "${1:-}" = "--latest" ]; then
  shift
  [ -z "${CI:-}" ] || { echo "test.sh: --latest is not for CI (it is unlocked)" >&2; exit 2; }
  scripts/setup.sh --latest
  venv=.venv-latest
  echo "== unlocked: versions in $venv/versions.txt" >&2
else
  scripts/setup.sh --dev
fi
export PATH="$PWD/$venv/bin:$PATH"
echo "== ruff" >&2
ruff check fleetcpu tests benchmarks notebooks scripts
ruff format --check fleetcpu tests benchmarks notebooks scripts
echo "== mypy --strict" >&2
mypy --strict fleetcpu
echo "== mypy tests (pyproject's override: not strict)" >&2
mypy tests
echo "== import-linter (the layering in pyproject.toml)" >&2
lint-imports --no-cache
echo "== vermin --target=3.9- (what ships to hosts)" >&2
vermin --no-tips --violations --target=3.9- --eval-annotations fleetcpu/probe fleetcpu/errors.py fleetcpu/vocabulary.py fleetcpu/__init__.py
echo "== pytest" >&2
pytest -q -p no:cacheprovider "$@"
if [ $# -eq 0 ]; then
  # The subset marked plain, again with every speed trick off (fleetcpu/speed.py,
  # fleetcpu/probe/speed.py): a bug that is the trick's shows as a difference. < 60 s.
  echo "== pytest -m plain, FLEETCPU_PLAIN=1" >&2
  FLEETCPU_PLAIN=1 exec pytest -q -p no:cacheprovider -m plain
fi
