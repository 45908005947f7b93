#!/usr/bin/env bash
# The test command (README, CI): installs everything the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "generator,test,ray"
python scripts/gen_protos.py --check
exec python -m pytest -q "$@"
