#!/usr/bin/env bash
# Set everything up and run the whole test suite: system packages, the Docker engine and test
# image, the Python environment, then pytest. Cleans up the dockerd it started.
# pytest's "no tests ran" (exit 5) is a failure here, not a pass.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/system.sh
bash .ci/setup.sh test
# A pid file of this run's own: at the end, stop only a dockerd that this run started.
WINGMAN_DOCKERD_PIDFILE="$(mktemp -d)/dockerd.pid"
export WINGMAN_DOCKERD_PIDFILE
trap 'bash .ci/docker-down.sh || true; rm -rf "$(dirname "$WINGMAN_DOCKERD_PIDFILE")"' EXIT
bash .ci/docker.sh

set +e
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; failing" >&2
    exit 1
fi
exit "$rc"
