#!/usr/bin/env bash
# The test command (README, CI): installs everything the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "generator,test,ray"
# A real Prometheus scrapes a live registry and worker in tests/integration/test_prometheus.py.
if ! command -v prometheus >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
fi
python scripts/gen_protos.py --check
exec python -m pytest -q "$@"
