#!/usr/bin/env bash
# The operator page's third-party JavaScript, from npm with its lock file (api/ui/package-lock.json):
# htmx and its SSE extension, copied into api/ui/static/vendor/, where the daemon serves them (and
# a built wheel ships them). Nothing is fetched at run time.
#   bash .ci/ui-assets.sh          what the page needs (the daemon's set-up)
#   bash .ci/ui-assets.sh test     and axe-core, which the browser tests inject into the page
# Without npm the page still works, with no live updates; the test set-up fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-runtime}"
dir=api/ui
vendor="$dir/static/vendor"
stamp="$vendor/.installed-$kind"
# Installed for this kind from this lock file, and (for the tests) axe-core still there. A test
# install holds everything a runtime one does: a runtime set-up after it (the benchmark suite's,
# run by the tests) keeps it rather than removing the test tools.
current() { [ -f "$vendor/.installed-$1" ] && [ ! "$dir/package-lock.json" -nt "$vendor/.installed-$1" ]; }
if [ "$kind" = test ] && current test && [ -f "$dir/node_modules/axe-core/axe.min.js" ]; then
    exit 0
fi
if [ "$kind" = runtime ] && { current runtime || current test; }; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$kind" = test ]; then
        echo "ui-assets: npm is missing (.ci/system.sh installs it)" >&2
        exit 1
    fi
    echo "ui-assets: npm is missing: the operator page (/ui) works without live updates (apt-get install npm)" >&2
    exit 0
fi
omit=()
[ "$kind" = test ] || omit=(--omit=dev)
echo "ui-assets: npm ci ($kind) in $dir"
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error "${omit[@]}"
mkdir -p "$vendor"
cp "$dir/node_modules/htmx.org/dist/htmx.min.js" "$dir/node_modules/htmx-ext-sse/dist/sse.min.js" "$vendor/"
rm -f "$vendor"/.installed-*  # npm ci replaced node_modules: only this kind's install stands
touch "$stamp"
