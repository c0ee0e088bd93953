#!/usr/bin/env bash
# Set up the Python environment and run the daemon on its embedded defaults (SQLite, local
# processes, a demo server). The first run writes ./wingman.yml and prints the node token.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
exec .venv/bin/wingman serve "$@"
