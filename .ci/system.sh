#!/usr/bin/env bash
# System packages the test suite needs: a Docker engine and static busybox (the docker tests),
# PostgreSQL 15 server binaries (the PostgreSQL store tests), wrk (the benchmark suite's HTTP load
# generator, which its smoke run in the tests uses), setpriv and the system's python3 (servers run as
# users of their own). `apt-get update` runs once, and only when
# something is missing.
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)  # tests create their databases with psql
command -v mount >/dev/null 2>&1 || need+=(mount)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# Game servers run as users of their own: setpriv drops root for them, and the tests' stand-in
# servers run on the system's Python (a venv under a private home is out of those users' reach).
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
[ -x /usr/bin/python3 ] || need+=(python3)
# A test builds a shared library a hostile server plants in its folder (its LD_PRELOAD).
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/include/stdio.h ] || need+=(libc6-dev)
command -v chattr >/dev/null 2>&1 || need+=(e2fsprogs)  # a delete test makes a file immutable
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)  # verifies deploy/wingman.service
# The image pull tests push the test image to a real registry of their own on 127.0.0.1 (Docker
# pulls from loopback registries without TLS), one of them behind htpasswd credentials.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
# The metrics tests: promtool checks the exposition and the alerting rules, and a real Prometheus
# scrapes a daemon (tests/system/test_prometheus.py).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The operator page: its JavaScript comes from npm (.ci/ui-assets.sh), and Playwright drives
# Debian's Chromium through it (tests/system/test_ui_browser.py).
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
    echo "system: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
    echo "system: docker.io, busybox-static, postgresql, wrk, docker-registry, prometheus, npm, chromium and the rest are present"
fi
