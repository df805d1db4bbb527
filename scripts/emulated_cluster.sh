#!/usr/bin/env bash
# An emulated multi-node Ray cluster on this machine (network namespaces, tbf-shaped links): see
# orchestrator/running/emulated.py. Needs root and `make setup` (the project's .venv).
#   scripts/emulated_cluster.sh up --nodes 3 --rate 300mbit    then: eval "$(scripts/emulated_cluster.sh env)"
#   scripts/emulated_cluster.sh shape --rate 1gbit | cut --node 1 | restore --node 1 | status | down
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$here/.venv/bin/python"
if [ ! -x "$python" ]; then
  echo "emulated cluster: error: $here/.venv is missing; run 'make setup' first" >&2
  exit 2
fi
cd "$here"
exec "$python" -m orchestrator.running.emulated "$@"
