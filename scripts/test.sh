#!/usr/bin/env bash
# The whole suite, as CI runs it: format and lint checks, release build with
# unit and end-to-end tests, the same under ASan+UBSan, then each fuzz target
# for a short time. Prints one closing line "N passed, N failed" (stages).
#   FUZZ_SECONDS=N   seconds per fuzz target (default 30); FUZZ_SEED (default 1)
#   SKIP_ASAN=1, SKIP_FUZZ=1 for quicker local runs
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
passed=0
failed=0
failures=()
t0=$(date +%s)

stage() {
    local name=$1
    shift
    local s
    s=$(date +%s)
    echo "==> $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "==> $name: ok ($(($(date +%s) - s))s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "==> $name: FAILED ($(($(date +%s) - s))s)"
    fi
}

build() {
    local preset=$1 dir=$2
    shift 2
    cmake --preset "$preset" -DLX_WERROR=ON >/dev/null && cmake --build "$dir" -j"$jobs" "$@"
}

unit() {
    ctest --test-dir "$1" -L unit --output-on-failure -j"$jobs"
}

# The unit tests that know PostgreSQL (LX_TEST_PG_URL), against a throw-away
# server; one at a time, because the outage cases stop and restart it.
unit_pg() {
    local tests
    tests=$(grep -l LX_TEST_PG_URL tests/unit/test_*.c | xargs -n1 basename | sed 's/\.c$//' | paste -sd'|')
    [[ -n $tests ]] || return 0
    scripts/pg-test.sh ctest --test-dir "$1" -L unit --output-on-failure -j1 -R "^($tests)\$"
}

fuzz_all() {
    local secs=${FUZZ_SECONDS:-30} ok=0 ran=0 t name tmp
    for t in build-fuzz/fuzz_*; do
        [[ -x $t && -f $t ]] || continue
        ran=$((ran + 1))
        name=$(basename "$t")
        name=${name#fuzz_}
        tmp=$(mktemp -d)
        echo "fuzz $name for ${secs}s"
        local dict=()
        if [[ -f fuzz/dict/$name.dict ]]; then
            dict=(-dict="fuzz/dict/$name.dict")
        fi
        # A fixed seed (FUZZ_SEED) makes a failing run reproducible from its log.
        if ! "$t" -max_total_time="$secs" -seed="${FUZZ_SEED:-1}" -print_final_stats=0 -rss_limit_mb=2048 \
            -artifact_prefix="$tmp/" "${dict[@]}" "$tmp" "fuzz/corpus/$name" >"$tmp/log" 2>&1; then
            tail -n 40 "$tmp/log"
            echo "fuzz $name: FAILED (artifacts in $tmp)"
            ok=1
        else
            grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$tmp/log" | tail -n 1
            rm -rf "$tmp"
        fi
    done
    if ((ran == 0)); then
        echo "fuzz: no fuzz target was built"
        return 1
    fi
    return $ok
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

stage "format" make -s format-check
stage "lint" scripts/lint.sh
stage "release build" build release build
stage "unit tests" unit build
stage "unit tests (postgresql)" unit_pg build
stage "end-to-end tests" scripts/e2e.sh build
if [[ -z ${SKIP_ASAN:-} ]]; then
    stage "asan+ubsan build" build dev build-dev
    stage "unit tests (asan+ubsan)" unit build-dev
    stage "unit tests (postgresql, asan+ubsan)" unit_pg build-dev
    stage "end-to-end tests (asan+ubsan)" env LLMUX_SANITIZED=1 scripts/e2e.sh build-dev
fi
if [[ -z ${SKIP_FUZZ:-} ]]; then
    stage "fuzz build" build fuzz build-fuzz --target fuzz_all
    stage "fuzz runs" fuzz_all
fi

echo
echo "test.sh: $(($(date +%s) - t0))s"
if ((failed)); then
    printf 'failed stage: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
((failed == 0))
