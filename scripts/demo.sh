#!/usr/bin/env bash
# The README's main command: set up, then run `kreg demo` (embedded registry + local worker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh generator
exec kreg demo "$@"
