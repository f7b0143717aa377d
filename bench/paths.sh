#!/usr/bin/env bash
# make bench (second part): what each stage of the request path costs.
# One llmux, one llmux-mock upstream, pinned as in run.sh; three configs:
#   bare     master key, no database (run.sh's set-up)
#   store    + database_url (SQLite): every call journaled and written to spend logs
#   vkey     + a virtual key with rpm/tpm limits and a budget (auth cache, limits,
#            budget check, cost, journal): the production path
# Prints a markdown table and writes bench/results/<date>-<commit>-paths.md
# (and bench/results/latest-paths.md).
# Environment: BENCH_PORT (base port, default 18420), BENCH_DURATION (4),
# BENCH_ROUNDS (3), BENCH_WARMUP (2), BENCH_CONNS (64), BENCH_NO_BUILD=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_need wrk node curl taskset ss sqlite3
bench_raise_nofile
bench_build

BASE="${BENCH_PORT:-18420}"
P_MOCK=$BASE
P_LLMUX=$((BASE + 1))
need_ports "$P_MOCK" "$P_LLMUX"
DURATION="${BENCH_DURATION:-4}"
ROUNDS="${BENCH_ROUNDS:-3}"
WARMUP="${BENCH_WARMUP:-2}"
CONNS="${BENCH_CONNS:-64}"

start_mock "$CORE_LOAD" "$P_MOCK" --threads 1

declare -A VALS
ERRORS=0
# run CONNS SECONDS KEY -> W_RPS W_P50 W_P99 W_REQS (errors summed in ERRORS)
run() {
    BENCH_KEY="$3" wrk_run "$P_LLMUX" gpt-4o "$1" "$2"
    ERRORS=$((ERRORS + W_ERRS))
}

measure() { # NAME KEY
    local name="$1" key="$2" c0 c1
    run "$CONNS" "$WARMUP" "$key"
    for r in $(seq "$ROUNDS"); do
        c0=$(proc_ticks "$LLMUX_PID")
        run "$CONNS" "$DURATION" "$key"
        c1=$(proc_ticks "$LLMUX_PID")
        add "rps/$name" "$W_RPS"
        add "cpu/$name" "$(awk -v d=$((c1 - c0)) -v n="$W_REQS" -v hz="$(getconf CLK_TCK)" 'BEGIN { print d / hz * 1e6 / n }')"
        run 1 "$DURATION" "$key"
        add "p50/$name" "$W_P50"
        add "p99/$name" "$W_P99"
        log "round $r $name: rps=$(median "${VALS[rps/$name]}") p50=${W_P50}us"
    done
}

config() { # FILE [database lines]
    cat >"$1" <<YAML
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$P_MOCK/v1
      api_key: sk-upstream
general_settings:
  master_key: sk-bench
  log_level: WARNING
$2
YAML
}

stop_llmux() {
    kill -TERM "$LLMUX_PID"
    for _ in $(seq 100); do kill -0 "$LLMUX_PID" 2>/dev/null || break; sleep 0.1; done
}

# bare
config "$BENCH_TMP/bare.yaml" ""
start_llmux "$CORE_PROXY" "$P_LLMUX" "$BENCH_TMP/bare.yaml"
measure bare sk-bench
stop_llmux

# store: SQLite, spend journal, spend logs
DB="$BENCH_TMP/bench.db"
config "$BENCH_TMP/store.yaml" "  database_url: sqlite:///$DB"
start_llmux "$CORE_PROXY" "$P_LLMUX" "$BENCH_TMP/store.yaml"
measure store sk-bench

# vkey: the same gateway, a virtual key with limits the bench never reaches and a budget
KEY=$(curl -s -X POST "http://127.0.0.1:$P_LLMUX/key/generate" -H 'Authorization: Bearer sk-bench' \
    -H 'Content-Type: application/json' \
    -d '{"rpm_limit":100000000,"tpm_limit":100000000000,"max_budget":1000000,"models":["gpt-4o"]}' |
    node -pe 'JSON.parse(require("fs").readFileSync(0)).key')
[[ "$KEY" == sk-* ]] || die "could not create a virtual key"
measure vkey "$KEY"
stop_llmux
ROWS=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM lx_spend_logs')
log "spend rows written: $ROWS"

row() { # LABEL METRIC UNIT
    local b s v
    b=$(median "${VALS[$2/bare]}")
    s=$(median "${VALS[$2/store]}")
    v=$(median "${VALS[$2/vkey]}")
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$b" "$s" "$v" "$(awk -v b="$b" -v v="$v" 'BEGIN { printf "%.2f", v / b }')"
}
mkdir -p "$BENCH_DIR/results"
name="$(date -u +%Y-%m-%d)-$(short_commit)-paths.md"
{
    echo "# llmux request-path stages — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(short_commit)"
    echo
    echo "1 worker on core $CORE_PROXY; llmux-mock and wrk on core $CORE_LOAD; median of $ROUNDS rounds of ${DURATION}s."
    echo "bare = master key, no database; store = + SQLite spend journal and spend logs;"
    echo "vkey = + virtual key with rpm/tpm limits and a budget (auth cache, limits, budget, cost)."
    echo
    echo "| metric | bare | store | vkey | vkey / bare |"
    echo "|---|---:|---:|---:|---:|"
    row "Throughput, $CONNS conns (req/s)" rps
    row "Proxy CPU per request (µs)" cpu
    row "Latency p50, 1 conn (µs)" p50
    row "Latency p99, 1 conn (µs)" p99
    echo
    echo "Errors (non-2xx, socket): $ERRORS. Spend rows written: $ROWS."
} >"$BENCH_DIR/results/$name"
cp "$BENCH_DIR/results/$name" "$BENCH_DIR/results/latest-paths.md"
cat "$BENCH_DIR/results/$name"
