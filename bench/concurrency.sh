#!/usr/bin/env bash
# N concurrent streams held open through llmux against a slow-streaming
# llmux-mock (one event every CONC_INTERVAL_MS for CONC_CHUNKS events); reports
# llmux RSS and CPU per stream and the errors. See bench/README.md.
#
# Environment: CONC_STREAMS (default 10000), CONC_CHUNKS (120),
# CONC_INTERVAL_MS (100), CONC_BATCH (connections opened per step, 100),
# CONC_BATCH_MS (10), CONC_WORKERS (llmux --num_workers, 1), BENCH_PORT
# (base port, default 18500), BENCH_NO_BUILD=1, CORE_PROXY / CORE_LOAD.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_need node taskset ss curl
bench_raise_nofile
bench_build

N="${CONC_STREAMS:-10000}"
CHUNKS="${CONC_CHUNKS:-120}"
INTERVAL="${CONC_INTERVAL_MS:-100}"
WORKERS="${CONC_WORKERS:-1}"
BASE="${BENCH_PORT:-18500}"
P_MOCK=$BASE
P_LLMUX=$((BASE + 1))
need_ports "$P_MOCK" "$P_LLMUX"

# llmux holds two descriptors per stream (client and upstream socket) and
# inherits this shell's limit; the client and the mock need one each.
NOFILE="$(ulimit -n)"
if ((2 * N + 64 > NOFILE)); then
    log "warning: open-file limit is $NOFILE (hard $(ulimit -Hn)); llmux needs ~$((2 * N + 64)) for $N streams," \
        "so about $(((NOFILE - 64) / 2)) streams fit. Running $N anyway: expect accept/connect errors."
fi

start_mock "$CORE_LOAD" "$P_MOCK" --threads 1 --chunks "$CHUNKS" --interval-ms "$INTERVAL"
CFG="$BENCH_TMP/llmux.yaml"
write_llmux_config "$CFG" "$P_MOCK" "$P_MOCK"
nice -n "$BENCH_NICE" taskset -c "$CORE_PROXY" "$LLMUX" --config "$CFG" --port "$P_LLMUX" \
    --host 127.0.0.1 --num_workers "$WORKERS" >"$BENCH_TMP/llmux.log" 2>&1 &
LLMUX_PID=$!
BENCH_PIDS+=("$LLMUX_PID")
wait_http "$P_LLMUX" /health
sleep 0.5

log "$N streams, $CHUNKS events each every $INTERVAL ms; llmux on core $CORE_PROXY ($WORKERS worker), mock + client on core $CORE_LOAD"
out=$(pin "$CORE_LOAD" node "$BENCH_DIR/streams.mjs" "$P_LLMUX" "$LLMUX_PID" "$N" gpt-4o \
    "${CONC_BATCH:-100}" "${CONC_BATCH_MS:-10}")
alive=yes
kill -0 "$LLMUX_PID" 2>/dev/null || alive="**no — llmux exited** ($(tail -3 "$BENCH_TMP/llmux.log" | tr '\n' ' '))"

j() { node -pe "const r = JSON.parse(process.argv[1]); $1" "$out"; }
mkdir -p "$BENCH_DIR/results"
name="$(date -u +%Y-%m-%d)-$(short_commit)-concurrency-$N.md"
{
    echo "# llmux concurrency — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(short_commit)"
    echo
    echo "| metric | value | bar | met |"
    echo "|---|---:|---|---|"
    echo "| streams requested | $N | | |"
    echo "| streams completed ([DONE] received) | $(j r.done) | | |"
    echo "| peak concurrent streams (first event received, not finished) | $(j r.peak_concurrent) | | |"
    echo "| errors | $(j r.errors) $(j "Object.keys(r.error_kinds).length ? '(' + JSON.stringify(r.error_kinds).replace(/[{}\"]/g, '').replace(/,/g, ', ') + ')' : ''") | 0 | $(j "r.errors === 0 ? 'yes' : '**no**'") |"
    echo "| events per completed stream (min / max) | $(j r.events_per_stream_min) / $(j r.events_per_stream_max) | | |"
    echo "| llmux RSS idle (MiB) | $(j "(r.rss_idle_kb / 1024).toFixed(1)") | | |"
    echo "| llmux RSS peak under load (MiB) | $(j "(r.rss_peak_kb / 1024).toFixed(1)") | ≤ 150 MiB at 10,000 | $(j "r.rss_peak_kb / 1024 <= 150 && r.streams >= 10000 && r.errors === 0 ? 'yes' : '**no**'") |"
    echo "| llmux RSS per stream, (peak − idle) / N (KiB) | $(j "r.rss_per_stream_kb.toFixed(2)") | | |"
    echo "| llmux RSS extrapolated to 10,000 streams, idle + 10,000 × per stream (MiB) | $(j "((r.rss_idle_kb + 10000 * r.rss_per_stream_kb) / 1024).toFixed(1)") | ≤ 150 MiB | $(j "(r.rss_idle_kb + 10000 * r.rss_per_stream_kb) / 1024 <= 150 ? 'yes' : '**no**'") |"
    echo "| llmux RSS after the streams ended (MiB) | $(j "(r.rss_after_kb / 1024).toFixed(1)") | | |"
    echo "| llmux CPU, all streams (s) | $(j "r.cpu_s.toFixed(2)") | | |"
    echo "| llmux CPU per stream (ms) | $(j "r.cpu_per_stream_ms.toFixed(3)") | | |"
    echo "| llmux CPU per relayed event (µs) | $(j "(r.cpu_s / Math.max(1, r.events) * 1e6).toFixed(2)") | | |"
    echo "| wall time (s) | $(j "r.wall_s.toFixed(1)") | | |"
    echo "| llmux alive afterwards | $alive | | |"
    echo
    echo "- llmux: 1 worker pinned to core $CORE_PROXY, log_level WARNING; llmux-mock (1 thread) and the node"
    echo "  raw-socket client pinned to core $CORE_LOAD; nice $BENCH_NICE. Open-file limit $NOFILE."
    echo "- Each stream: POST /v1/chat/completions with \"stream\": true; the mock sends $CHUNKS content"
    echo "  events, one every $INTERVAL ms (plus the role and finish events). Streams are opened"
    echo "  ${CONC_BATCH:-100} at a time every ${CONC_BATCH_MS:-10} ms."
    echo "- RSS from /proc/PID/status sampled every second; CPU = utime+stime from /proc/PID/stat."
    echo
    echo "Raw: \`$out\`"
} >"$BENCH_DIR/results/$name"
cat "$BENCH_DIR/results/$name"
log "written to bench/results/$name"
