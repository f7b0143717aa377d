#!/usr/bin/env bash
# Install the Debian packages and npm modules llmux needs to build, test and
# benchmark, skipping what is already there. Safe to run repeatedly.
#   scripts/deps.sh            build + test dependencies
#   scripts/deps.sh --bench    also the benchmark tools (nginx, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config git clang clang-format libclang-rt-14-dev
      libuv1-dev node-llhttp libcurl4-openssl-dev libcjson-dev libyaml-dev libssl-dev
      libsqlite3-dev sqlite3 libpq-dev libhiredis-dev postgresql redis-server procps curl)
if [[ "${1:-}" == "--bench" ]]; then
    pkgs+=(nginx-light wrk valgrind linux-perf)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# Node.js and npm for the end-to-end tests: any node >= 18 on PATH will do
# (Debian's own, or a vendor package that bundles npm).
if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
    missing+=(nodejs)
fi
if ! command -v npm >/dev/null; then
    missing+=(npm)
fi

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ -f tests/e2e/package.json ]]; then
    stamp=tests/e2e/node_modules/.lock-stamp
    if [[ ! -f $stamp ]] || ! cmp -s tests/e2e/package-lock.json "$stamp"; then
        echo "deps: installing npm modules for the end-to-end tests"
        (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
        cp tests/e2e/package-lock.json "$stamp"
    fi
fi
