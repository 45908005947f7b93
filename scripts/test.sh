#!/usr/bin/env bash
# The test command (README, CI): installs everything the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[test]'
python scripts/gen_protos.py --check
exec python -m pytest -q "$@"
