#!/usr/bin/env bash
# Run the end-to-end suite (tests/e2e/*.test.mjs, node:test) against the
# binaries of a build directory.
#   scripts/e2e.sh [BUILD_DIR] [TEST_FILE...]     (BUILD_DIR defaults to build)
# Installs tests/e2e/node_modules from the lockfile when it is missing.
# Extra node --test flags can be passed in E2E_NODE_FLAGS (e.g. "--test-reporter=tap").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

build="${1:-build}"
shift || true
case "$build" in
    /*) ;;
    *) build="$root/$build" ;;
esac

export LLMUX_BIN="${LLMUX_BIN:-$build/llmux}"
export LLMUX_MOCK_BIN="${LLMUX_MOCK_BIN:-$build/llmux-mock}"
for bin in "$LLMUX_BIN" "$LLMUX_MOCK_BIN"; do
    if [[ ! -x "$bin" ]]; then
        echo "e2e: $bin not found or not executable (build first: make build)" >&2
        exit 2
    fi
done

if ! command -v node >/dev/null; then
    echo "e2e: node not found (scripts/deps.sh installs it)" >&2
    exit 2
fi

cd "$root/tests/e2e"
if [[ ! -d node_modules ]]; then
    echo "e2e: installing node modules (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
fi

if (($#)); then
    files=("$@")
else
    files=(*.test.mjs)
fi

# shellcheck disable=SC2086 # E2E_NODE_FLAGS is a list of flags
# A test that hangs (a crashed gateway, a lost event) fails after 60 s instead of stalling CI.
exec node --test --test-concurrency=2 --test-timeout=60000 ${E2E_NODE_FLAGS:-} "${files[@]}"
