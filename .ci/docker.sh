#!/usr/bin/env bash
# Bring up a Docker engine and the test image `local/busybox:test` for the docker tests.
# Idempotent: each step runs only when its result is missing, and says what it did.
# No image registry is reachable from CI machines, so the test image is built locally with
# `docker import` from the static busybox binary.
set -euo pipefail

IMAGE="${WINGMAN_TEST_IMAGE:-local/busybox:test}"
LOG=/tmp/wingman-dockerd.log
PIDFILE="${WINGMAN_DOCKERD_PIDFILE:-/tmp/wingman-dockerd.pid}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

say() { echo "docker.sh: $*"; }

apt_install() {
    # The caller normally ran `apt-get update` once; if the lists are empty the install fails,
    # so update once and retry rather than failing the whole run.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; then
        say "apt-get install $* failed; running apt-get update and retrying"
        $SUDO apt-get update
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    fi
}

if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd missing: installing docker.io"
    apt_install docker.io
else
    say "dockerd present: $(command -v dockerd)"
fi

# The static binary is what goes into the image: a dynamic busybox would need its libc inside.
# Debian's busybox-static ships it as /bin/busybox (the `busybox` package is the dynamic one).
static_busybox() {
    dpkg -s busybox-static >/dev/null 2>&1 || return 1
    dpkg -L busybox-static | grep -E '/busybox$' | head -n1
}
if BUSYBOX="$(static_busybox)" && [ -x "$BUSYBOX" ]; then
    say "static busybox present: $BUSYBOX"
else
    say "static busybox missing: installing busybox-static"
    apt_install busybox-static
    BUSYBOX="$(static_busybox)"
fi

if docker info >/dev/null 2>&1; then
    say "engine answers (server $(docker info -f '{{.ServerVersion}}' 2>/dev/null))"
elif [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix:///var/run/docker.sock" ]; then
    # A dockerd started here would listen on the default socket, not on $DOCKER_HOST.
    say "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local dockerd for it"; exit 1
elif [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "dockerd from an earlier run (pid $(cat "$PIDFILE")) is running but does not answer; see $LOG"; exit 1
else
    say "engine not answering: starting dockerd (log $LOG, pid file $PIDFILE)"
    # No iptables and no default bridge: test containers run with network_mode=none, and this
    # works on machines without netfilter modules.
    nohup $SUDO dockerd --iptables=false --bridge=none >"$LOG" 2>&1 &
    pid=$!
    for _ in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited; last lines of $LOG:"; tail -n 30 "$LOG" >&2; exit 1
        fi
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        say "dockerd did not answer within 60 s; stopping it; last lines of $LOG:"; tail -n 30 "$LOG" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    # Written only once it answers, so docker-down.sh never stops an engine it did not start.
    echo "$pid" >"$PIDFILE"
    say "dockerd up (pid $pid)"
fi

# Bumped when the image's content changes, so a machine that kept an older build rebuilds it.
IMAGE_REVISION=2  # 2: /tmp is 1777, as in real images (servers run as unprivileged users)
if [ "$(docker image inspect -f '{{index .Config.Labels "wingman.test-image"}}' "$IMAGE" 2>/dev/null)" = "$IMAGE_REVISION" ]; then
    say "image $IMAGE present (revision $IMAGE_REVISION)"
else
    say "building $IMAGE from $BUSYBOX"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/root/bin" "$work/root/tmp" "$work/root/home/container"
    chmod 1777 "$work/root/tmp"
    cp "$BUSYBOX" "$work/root/bin/busybox"
    # `busybox --list` includes `busybox` itself: linking it would replace the binary by a loop.
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = "busybox" ] && continue
        ln -s busybox "$work/root/bin/$applet"
    done
    tar -C "$work/root" -cf "$work/rootfs.tar" .
    # An imported image has no environment: without PATH no command is found.
    docker import --change 'ENV PATH=/bin' --change 'WORKDIR /home/container' \
        --change "LABEL wingman.test-image=$IMAGE_REVISION" \
        "$work/rootfs.tar" "$IMAGE" >/dev/null
    say "built $IMAGE"
fi
