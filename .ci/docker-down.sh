#!/usr/bin/env bash
# Stop the dockerd that .ci/docker.sh started (found by its pid file), and nothing else:
# an engine that was already running before docker.sh is left alone.
set -euo pipefail

PIDFILE="${WINGMAN_DOCKERD_PIDFILE:-/tmp/wingman-dockerd.pid}"

if [ ! -f "$PIDFILE" ]; then
    echo "docker-down.sh: no $PIDFILE; nothing started by docker.sh"
    exit 0
fi
pid="$(cat "$PIDFILE")"
# Only signal the pid if it still is a dockerd (the pid may have been reused since).
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null; then
    echo "docker-down.sh: stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "docker-down.sh: dockerd still up after 30 s; sending SIGKILL"
        kill -KILL "$pid"
    fi
else
    echo "docker-down.sh: pid $pid is not a running dockerd"
fi
rm -f "$PIDFILE"
