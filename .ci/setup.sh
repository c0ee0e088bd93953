#!/usr/bin/env bash
# Python side of the set-up: a virtual environment in .venv with wingman.
#   bash .ci/setup.sh          runtime only (what `.ci/serve.sh` needs to run the daemon)
#   bash .ci/setup.sh test     runtime and the test tools (what `.ci/test.sh` needs)
# Re-runs pip only when pyproject.toml or setup.py changed since the last install of that kind.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-runtime}"
case "$kind" in
    runtime) target='.' ;;
    test) target='.[test]' ;;
    *) echo "setup: unknown kind '$kind' (runtime or test)" >&2; exit 2 ;;
esac

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=".venv/.wingman-installed-$kind"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    echo "setup: installing wingman ($kind) into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$target"
    touch "$stamp"
fi
# The operator page's JavaScript (npm, from its lock file), and for the tests axe-core too.
bash .ci/ui-assets.sh "$kind"
