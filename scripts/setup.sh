#!/usr/bin/env bash
# Install the project with the extras named in $1 (default: generator) into the current Python.
# torch comes first and pinned: a bare "torch" requirement would pull a multi-GB CUDA build on
# CPU machines, while torch==2.13.0 resolves to the CPU build where one is provided locally.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-generator}"
python -m pip install --quiet --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install --quiet "torch==2.13.0"
fi
python -m pip install --quiet -e ".[${extras}]"
