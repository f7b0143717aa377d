#!/usr/bin/env bash
# make bench: llmux against an nginx reverse proxy on the same hop, in one run.
# Prints one markdown table and writes it to bench/results/<date>-<commit>.md
# (and bench/results/latest.md). See bench/README.md for how to read it.
#
# Environment: BENCH_PORT (base port, default 18400), BENCH_DURATION (seconds
# per measured wrk run, default 4), BENCH_ROUNDS (interleaved rounds, median
# taken, default 3), BENCH_WARMUP (seconds, default 2), BENCH_CONNS (64),
# BENCH_READY_SAMPLES (20), BENCH_TTFB_N (requests per round, 1000),
# BENCH_NO_BUILD=1 (use build/ as is), CORE_PROXY / CORE_LOAD (pinning).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_need wrk nginx node curl taskset ss
bench_raise_nofile
bench_build

BASE="${BENCH_PORT:-18400}"
P_MOCK=$BASE
P_STATIC=$((BASE + 1))
P_NGX_MOCK=$((BASE + 2))
P_NGX_STATIC=$((BASE + 3))
P_NGX_STREAM=$((BASE + 4))
P_LLMUX=$((BASE + 5))
P_READY=$((BASE + 6))
need_ports "$P_MOCK" "$P_STATIC" "$P_NGX_MOCK" "$P_NGX_STATIC" "$P_NGX_STREAM" "$P_LLMUX" "$P_READY"

DURATION="${BENCH_DURATION:-4}"
ROUNDS="${BENCH_ROUNDS:-3}"
WARMUP="${BENCH_WARMUP:-2}"
CONNS="${BENCH_CONNS:-64}"
READY_SAMPLES="${BENCH_READY_SAMPLES:-20}"
TTFB_N="${BENCH_TTFB_N:-1000}"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
STARTED=$(date +%s)

# ---- processes --------------------------------------------------------------
log "pinning: proxies on core $CORE_PROXY; upstreams and load generators on core $CORE_LOAD; nice $BENCH_NICE"
start_mock "$CORE_LOAD" "$P_MOCK" --threads 1
start_nginx static "$CORE_LOAD" "$(nginx_static_server "$P_STATIC")"
NGX_STATIC_PID=$NGINX_PID
PROXY_SERVERS="$(nginx_proxy_server up_mock "$P_NGX_MOCK" "$P_MOCK" on)
$(nginx_proxy_server up_static "$P_NGX_STATIC" "$P_STATIC" on)
$(nginx_proxy_server up_stream "$P_NGX_STREAM" "$P_MOCK" off)"
start_nginx proxy "$CORE_PROXY" "$PROXY_SERVERS"
NGX_PID=$NGINX_PID
wait_port "$P_STATIC"
wait_http "$P_NGX_MOCK" /health

CFG="$BENCH_TMP/llmux.yaml"
write_llmux_config "$CFG" "$P_MOCK" "$P_STATIC"
start_llmux "$CORE_PROXY" "$P_LLMUX" "$CFG"
sleep 0.5
RSS_IDLE_LLMUX=$(proc_kb "$LLMUX_PID" VmRSS)
RSS_IDLE_NGX=$(tree_kb "$NGX_PID" VmRSS)

# Sanity: every target answers the bench request with 200 before we time anything.
for t in "$P_MOCK gpt-4o" "$P_STATIC gpt-4o" "$P_NGX_MOCK gpt-4o" "$P_NGX_STATIC gpt-4o" \
    "$P_LLMUX gpt-4o" "$P_LLMUX gpt-4o-static"; do
    set -- $t
    code=$(curl -s -o "$BENCH_TMP/sanity.out" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench' \
        --data-binary @<(sed "s/\"model\":\"gpt-4o\"/\"model\":\"$2\"/" "$BENCH_DIR/request.json") \
        "http://127.0.0.1:$1/v1/chat/completions")
    [[ "$code" == 200 ]] || die "port $1 model $2 answered $code: $(head -c 300 "$BENCH_TMP/sanity.out")"
done

# ---- measurement helpers ----------------------------------------------------
declare -A VALS   # key -> space-separated per-round values
ERRORS_LLMUX=0
ERRORS_NGX=0
ERRORS_DIRECT=0


count_errors() {
    case "$1" in
    direct) ERRORS_DIRECT=$((ERRORS_DIRECT + $2)) ;;
    nginx) ERRORS_NGX=$((ERRORS_NGX + $2)) ;;
    llmux) ERRORS_LLMUX=$((ERRORS_LLMUX + $2)) ;;
    esac
}

# target NAME UPSTREAM -> "PORT MODEL PID" (PID: the proxy whose CPU we count)
target() {
    case "$1/$2" in
    direct/mock) echo "$P_MOCK gpt-4o -" ;;
    direct/static) echo "$P_STATIC gpt-4o -" ;;
    nginx/mock) echo "$P_NGX_MOCK gpt-4o $NGX_PID" ;;
    nginx/static) echo "$P_NGX_STATIC gpt-4o $NGX_PID" ;;
    llmux/mock) echo "$P_LLMUX gpt-4o $LLMUX_PID" ;;
    llmux/static) echo "$P_LLMUX gpt-4o-static $LLMUX_PID" ;;
    esac
}

TARGETS=(direct nginx llmux)

# ---- throughput and latency (interleaved rounds) ----------------------------
# Modes: thr (64 connections), lat (1 connection), lat1 (1 connection with the
# proxies moved onto the load core: no cross-core wake-ups, so "added over
# direct" is the hop's own work on the critical path).
repin() {
    local p
    for p in $(proc_tree "$NGX_PID") "$LLMUX_PID"; do
        taskset -apc "$1" "$p" >/dev/null
    done
}
for up in mock static; do
    for mode in thr lat lat1; do
        conns=$CONNS
        [[ "$mode" != thr ]] && conns=1
        [[ "$mode" == lat1 ]] && repin "$CORE_LOAD"
        for t in "${TARGETS[@]}"; do
            read -r port model _ <<<"$(target "$t" "$up")"
            log "warm-up $t/$up $mode"
            wrk_run "$port" "$model" "$conns" "$WARMUP"
            count_errors "$t" "$W_ERRS"
        done
        for r in $(seq "$ROUNDS"); do
            for t in "${TARGETS[@]}"; do
                read -r port model pid <<<"$(target "$t" "$up")"
                c0=0
                [[ "$pid" != - ]] && c0=$(tree_ticks "$pid")
                wrk_run "$port" "$model" "$conns" "$DURATION"
                count_errors "$t" "$W_ERRS"
                if [[ "$mode" == thr ]]; then
                    add "rps/$t/$up" "$W_RPS"
                    if [[ "$pid" != - ]]; then
                        c1=$(tree_ticks "$pid")
                        add "cpu/$t/$up" "$(awk -v d=$((c1 - c0)) -v n="$W_REQS" -v hz="$CLK_TCK" 'BEGIN { print d / hz * 1e6 / n }')"
                    fi
                elif [[ "$mode" == lat ]]; then
                    add "p50/$t/$up" "$W_P50"
                    add "p99/$t/$up" "$W_P99"
                else
                    add "p50s/$t/$up" "$W_P50"
                    add "p99s/$t/$up" "$W_P99"
                fi
                log "round $r $t/$up $mode: rps=$W_RPS p50=${W_P50}us p99=${W_P99}us errors=$W_ERRS"
            done
        done
        [[ "$mode" == lat1 ]] && repin "$CORE_PROXY"
    done
done

# ---- streaming time to first event ------------------------------------------
declare -A TTFB_PORT=([direct]=$P_MOCK [nginx]=$P_NGX_STREAM [llmux]=$P_LLMUX)
for r in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        out=$(pin "$CORE_LOAD" node "$BENCH_DIR/ttfb.mjs" "${TTFB_PORT[$t]}" "$TTFB_N" 100 gpt-4o)
        add "ttfb50/$t" "$(node -pe "JSON.parse(process.argv[1]).event_p50_us" "$out")"
        add "ttfb99/$t" "$(node -pe "JSON.parse(process.argv[1]).event_p99_us" "$out")"
        count_errors "$t" "$(node -pe "JSON.parse(process.argv[1]).errors" "$out")"
        log "round $r $t stream: $out"
    done
done

# ---- memory after load ------------------------------------------------------
RSS_LOAD_LLMUX=$(proc_kb "$LLMUX_PID" VmRSS)
HWM_LLMUX=$(proc_kb "$LLMUX_PID" VmHWM)
RSS_LOAD_NGX=$(tree_kb "$NGX_PID" VmRSS)
HWM_NGX=$(tree_kb "$NGX_PID" VmHWM)
kill -0 "$LLMUX_PID" 2>/dev/null || die "llmux died during the run (log: $(tail -5 "$BENCH_TMP/llmux-$P_LLMUX.log"))"

# ---- start-to-ready ---------------------------------------------------------
log "start-to-ready: $READY_SAMPLES samples each"
out=$(pin "$CORE_PROXY" node "$BENCH_DIR/ready.mjs" "$P_READY" "$READY_SAMPLES" -- \
    "$LLMUX" --config "$CFG" --port "$P_READY" --host 127.0.0.1 --num_workers 1)
READY_LLMUX=$(node -pe "JSON.parse(process.argv[1]).median_ms" "$out")
log "llmux ready: $out"
write_nginx_conf ready "$(nginx_proxy_server up_ready "$P_READY" "$P_MOCK" on)"
out=$(pin "$CORE_PROXY" node "$BENCH_DIR/ready.mjs" "$P_READY" "$READY_SAMPLES" -- \
    nginx -e "$BENCH_TMP/ready/error.log" -p "$BENCH_TMP/ready" -c "$BENCH_TMP/ready/nginx.conf" \
    -g "daemon off; pid $BENCH_TMP/ready/nginx.pid;")
READY_NGX=$(node -pe "JSON.parse(process.argv[1]).median_ms" "$out")
log "nginx ready: $out"

# ---- table ------------------------------------------------------------------
M() { median "${VALS[$1]:-}"; }
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit=$(short_commit)"
    echo "cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "ncpu=$NCPU"
    echo "kernel=$(uname -r)"
    echo "load_before=$LOAD_BEFORE"
    echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "core_proxy=$CORE_PROXY"
    echo "core_load=$CORE_LOAD"
    echo "nice=$BENCH_NICE"
    echo "duration=$DURATION"
    echo "rounds=$ROUNDS"
    echo "warmup=$WARMUP"
    echo "conns=$CONNS"
    echo "ttfb_n=$TTFB_N"
    echo "ready_samples=$READY_SAMPLES"
    echo "elapsed=$(($(date +%s) - STARTED))"
    for up in mock static; do
        for t in "${TARGETS[@]}"; do
            echo "rps/$t/$up=$(M "rps/$t/$up")"
            echo "p50/$t/$up=$(M "p50/$t/$up")"
            echo "p99/$t/$up=$(M "p99/$t/$up")"
            echo "p50s/$t/$up=$(M "p50s/$t/$up")"
            echo "p99s/$t/$up=$(M "p99s/$t/$up")"
            [[ "$t" != direct ]] && echo "cpu/$t/$up=$(M "cpu/$t/$up")"
        done
    done
    for t in "${TARGETS[@]}"; do
        echo "ttfb50/$t=$(M "ttfb50/$t")"
        echo "ttfb99/$t=$(M "ttfb99/$t")"
    done
    echo "rss_idle/nginx=$RSS_IDLE_NGX"
    echo "rss_idle/llmux=$RSS_IDLE_LLMUX"
    echo "rss_load/nginx=$RSS_LOAD_NGX"
    echo "rss_load/llmux=$RSS_LOAD_LLMUX"
    echo "hwm/nginx=$HWM_NGX"
    echo "hwm/llmux=$HWM_LLMUX"
    echo "ready/nginx=$READY_NGX"
    echo "ready/llmux=$READY_LLMUX"
    echo "errors/direct=$ERRORS_DIRECT"
    echo "errors/nginx=$ERRORS_NGX"
    echo "errors/llmux=$ERRORS_LLMUX"
    for k in "${!VALS[@]}"; do
        echo "rounds/$k=${VALS[$k]# }"
    done
} >"$BENCH_TMP/results.env"

mkdir -p "$BENCH_DIR/results"
name="$(date -u +%Y-%m-%d)-$(short_commit).md"
node "$BENCH_DIR/table.mjs" "$BENCH_TMP/results.env" >"$BENCH_DIR/results/$name"
cp "$BENCH_DIR/results/$name" "$BENCH_DIR/results/latest.md"
cat "$BENCH_DIR/results/$name"
log "written to bench/results/$name and bench/results/latest.md"
