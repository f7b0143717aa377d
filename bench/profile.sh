#!/usr/bin/env bash
# Profile llmux over a fixed number of requests and print the top functions.
# Uses `perf record -g` when the CPU's instruction counter is available
# (`perf stat -e instructions true` counts), else valgrind's callgrind, whose
# instruction counts are exact and machine-independent (but ~50x slower).
#
# Environment: PROFILE_TOOL (auto|perf|callgrind), PROFILE_REQUESTS (plain
# requests, 5000), PROFILE_STREAMS (streamed requests, 1000), PROFILE_CONC
# (client connections, 8), PROFILE_TOP (rows, 30), BENCH_PORT (base, 18700),
# BENCH_NO_BUILD=1, CORE_PROXY / CORE_LOAD. The raw profile is kept in
# bench/results/profile.* (callgrind.out / perf.data are not committed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_need node taskset ss curl
bench_build

TOOL="${PROFILE_TOOL:-auto}"
if [[ "$TOOL" == auto ]]; then
    if perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9]'; then
        TOOL=perf
    else
        TOOL=callgrind
    fi
fi
bench_need "$([[ "$TOOL" == perf ]] && echo perf || echo valgrind)"
NREQ="${PROFILE_REQUESTS:-5000}"
NSTREAM="${PROFILE_STREAMS:-1000}"
CONC="${PROFILE_CONC:-8}"
TOP="${PROFILE_TOP:-30}"
BASE="${BENCH_PORT:-18700}"
P_MOCK=$BASE
P_LLMUX=$((BASE + 1))
need_ports "$P_MOCK" "$P_LLMUX"
OUTDIR="$BENCH_DIR/results"
mkdir -p "$OUTDIR"

start_mock "$CORE_LOAD" "$P_MOCK" --threads 1
CFG="$BENCH_TMP/llmux.yaml"
write_llmux_config "$CFG" "$P_MOCK" "$P_MOCK"
ARGS=(--config "$CFG" --port "$P_LLMUX" --host 127.0.0.1 --num_workers 1)

load() {
    pin "$CORE_LOAD" node "$BENCH_DIR/mixed.mjs" "$P_LLMUX" plain "$CONC" --requests "$NREQ"
    pin "$CORE_LOAD" node "$BENCH_DIR/mixed.mjs" "$P_LLMUX" stream "$CONC" --requests "$NSTREAM"
}

REPORT="$OUTDIR/profile-$TOOL.txt"
# The report pipelines end in head: SIGPIPE upstream of it is expected.
set +o pipefail
if [[ "$TOOL" == callgrind ]]; then
    CG="$OUTDIR/callgrind.out"
    # Instrumentation starts only once llmux is ready, so start-up is not in the profile.
    nice -n "$BENCH_NICE" taskset -c "$CORE_PROXY" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$CG" "$LLMUX" "${ARGS[@]}" >"$BENCH_TMP/llmux.log" 2>&1 &
    LLMUX_PID=$!
    BENCH_PIDS+=("$LLMUX_PID")
    wait_http "$P_LLMUX" /health
    # One request outside the profile warms the connection pool and lazy init.
    pin "$CORE_LOAD" node "$BENCH_DIR/mixed.mjs" "$P_LLMUX" plain 1 --requests 20 >/dev/null
    callgrind_control -i on "$LLMUX_PID" >/dev/null
    log "callgrind: $NREQ plain + $NSTREAM streamed requests, $CONC connections"
    load
    callgrind_control -i off "$LLMUX_PID" >/dev/null
    kill -TERM "$LLMUX_PID"
    wait "$LLMUX_PID" || true
    TOTAL=$(callgrind_annotate "$CG" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(/,/, "", $1); t = $1 } END { print t }')
    {
        echo "# llmux profile (callgrind) — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(short_commit)"
        echo
        echo "$NREQ plain + $NSTREAM streamed chat requests over $CONC connections, 1 worker, log_level WARNING."
        echo "Instructions (Ir) in llmux, all threads: $TOTAL, i.e. $(awk -v t="$TOTAL" -v n=$((NREQ + NSTREAM)) 'BEGIN { printf "%.0f", t / n }') per request."
        echo
        echo "## Top $TOP functions by self instructions"
        echo
        echo '```'
        callgrind_annotate --threshold=100 "$CG" 2>/dev/null | sed -n '/^Ir/,$p' | grep -v '^-' | head -n $((TOP + 3))
        echo '```'
        echo
        echo "## Top $TOP functions by inclusive instructions"
        echo
        echo '```'
        callgrind_annotate --inclusive=yes --threshold=100 "$CG" 2>/dev/null | sed -n '/^Ir/,$p' | grep -v '^-' | head -n $((TOP + 3))
        echo '```'
    } >"$REPORT"
else
    nice -n "$BENCH_NICE" taskset -c "$CORE_PROXY" "$LLMUX" "${ARGS[@]}" >"$BENCH_TMP/llmux.log" 2>&1 &
    LLMUX_PID=$!
    BENCH_PIDS+=("$LLMUX_PID")
    wait_http "$P_LLMUX" /health
    pin "$CORE_LOAD" node "$BENCH_DIR/mixed.mjs" "$P_LLMUX" plain 1 --requests 20 >/dev/null
    PD="$OUTDIR/perf.data"
    perf record -g -o "$PD" -p "$LLMUX_PID" >/dev/null 2>&1 &
    PERF_PID=$!
    BENCH_PIDS+=("$PERF_PID")
    sleep 0.5
    log "perf: $NREQ plain + $NSTREAM streamed requests, $CONC connections"
    load
    kill -INT "$PERF_PID"
    wait "$PERF_PID" || true
    {
        echo "# llmux profile (perf) — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(short_commit)"
        echo
        echo "$NREQ plain + $NSTREAM streamed chat requests over $CONC connections, 1 worker, log_level WARNING."
        echo
        echo '```'
        perf report -i "$PD" --no-children --stdio --sort dso,symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n "$TOP"
        echo '```'
    } >"$REPORT"
fi
cat "$REPORT"
log "written to ${REPORT#"$ROOT"/}"
