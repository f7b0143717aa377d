#!/usr/bin/env bash
# Soak: mixed load through llmux for SOAK_SECONDS (default 600) while sampling
# llmux RSS every 5 s; prints the samples and the RSS slope after warm-up.
# Flat (no leak) means the slope stays near zero. See bench/README.md.
#
# Environment: SOAK_SECONDS (600), SOAK_CONC (concurrent client loops, 32),
# SOAK_WARMUP (seconds excluded from the slope, default a quarter of the run,
# at most 120), SOAK_INTERVAL (sampling period, 5), BENCH_PORT (base, 18600),
# BENCH_NO_BUILD=1, CORE_PROXY / CORE_LOAD.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_need node taskset ss curl
bench_raise_nofile
bench_build

SECONDS_TOTAL="${SOAK_SECONDS:-600}"
CONC="${SOAK_CONC:-32}"
INTERVAL="${SOAK_INTERVAL:-5}"
WARM="${SOAK_WARMUP:-$((SECONDS_TOTAL / 4 > 120 ? 120 : SECONDS_TOTAL / 4))}"
BASE="${BENCH_PORT:-18600}"
P_MOCK=$BASE
P_LLMUX=$((BASE + 1))
need_ports "$P_MOCK" "$P_LLMUX"

start_mock "$CORE_LOAD" "$P_MOCK" --threads 1
CFG="$BENCH_TMP/llmux.yaml"
write_llmux_config "$CFG" "$P_MOCK" "$P_MOCK"
start_llmux "$CORE_PROXY" "$P_LLMUX" "$CFG"
sleep 0.5
IDLE=$(proc_kb "$LLMUX_PID" VmRSS)

log "soak: ${SECONDS_TOTAL}s, $CONC client loops, RSS every ${INTERVAL}s, slope after ${WARM}s"
nice -n "$BENCH_NICE" taskset -c "$CORE_LOAD" node "$BENCH_DIR/mixed.mjs" "$P_LLMUX" soak "$CONC" \
    --seconds "$SECONDS_TOTAL" >"$BENCH_TMP/mixed.json" 2>"$BENCH_TMP/mixed.err" &
CLIENT_PID=$!
BENCH_PIDS+=("$CLIENT_PID")

SAMPLES="$BENCH_TMP/samples.tsv"
t0=$(date +%s.%N)
c0=$(proc_ticks "$LLMUX_PID")
printf '0\t%s\n' "$IDLE" >"$SAMPLES"
while kill -0 "$CLIENT_PID" 2>/dev/null; do
    sleep "$INTERVAL"
    kill -0 "$LLMUX_PID" 2>/dev/null || die "llmux exited during the soak: $(tail -5 "$BENCH_TMP/llmux-$P_LLMUX.log")"
    t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    rss=$(proc_kb "$LLMUX_PID" VmRSS)
    printf '%s\t%s\n' "$t" "$rss" >>"$SAMPLES"
    log "t=${t}s rss=${rss} KiB"
done
wait "$CLIENT_PID" || die "load client failed: $(cat "$BENCH_TMP/mixed.err")"
c1=$(proc_ticks "$LLMUX_PID")
HWM=$(proc_kb "$LLMUX_PID" VmHWM)
sleep 2
END_RSS=$(proc_kb "$LLMUX_PID" VmRSS)
LOAD="$(cat "$BENCH_TMP/mixed.json")"

# Least-squares slope of RSS (KiB) over minutes, samples after the warm-up only.
read -r SLOPE FIRST LAST NS < <(awk -v w="$WARM" '$1 >= w {
        n++; x = $1 / 60; sx += x; sy += $2; sxx += x * x; sxy += x * $2
        if (n == 1) first = $2; last = $2 }
    END { if (n < 2) { print "nan 0 0 " n; exit }
          print (n * sxy - sx * sy) / (n * sxx - sx * sx), first, last, n }' "$SAMPLES")
FLAT=$(awk -v s="$SLOPE" -v f="$FIRST" -v l="$LAST" 'BEGIN {
    # flat: under 64 KiB/min, or the post-warm-up growth under 1% of RSS
    print (s == "nan" ? "n/a" : (s < 64 || (l - f) <= 0.01 * f) ? "yes" : "**no**") }')

mkdir -p "$BENCH_DIR/results"
name="$(date -u +%Y-%m-%d)-$(short_commit)-soak.md"
{
    echo "# llmux soak — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(short_commit)"
    echo
    echo "| metric | value | bar | met |"
    echo "|---|---:|---|---|"
    echo "| duration (s) / client loops | $SECONDS_TOTAL / $CONC | | |"
    echo "| requests sent | $(node -pe 'JSON.parse(process.argv[1]).sent' "$LOAD") | | |"
    echo "| unexpected outcomes | $(node -pe 'JSON.parse(process.argv[1]).unexpected' "$LOAD") | 0 | $(node -pe 'JSON.parse(process.argv[1]).unexpected === 0 ? "yes" : "**no**"' "$LOAD") |"
    echo "| RSS idle before load (KiB) | $IDLE | | |"
    echo "| RSS at warm-up end → last sample (KiB) | $FIRST → $LAST | | |"
    echo "| RSS slope after ${WARM}s warm-up, $NS samples (KiB/min) | $(printf '%.1f' "$SLOPE") | flat | $FLAT |"
    echo "| VmHWM (KiB) | $HWM | | |"
    echo "| RSS 2 s after the load stopped (KiB) | $END_RSS | | |"
    echo "| llmux CPU (s) | $(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", d / hz }') | | |"
    echo
    echo "- Mix (bench/mixed.mjs soak): 35% plain, 20% streamed, 10% slow streams (20 events × 10 ms),"
    echo "  8% upstream 500, 7% upstream 429 (streaming request), 5% upstream reset after 5 events,"
    echo "  10% client disconnect after 1–3 events of a slow stream, 3% wrong key, 2% unknown model."
    echo "- llmux: 1 worker on core $CORE_PROXY, log_level WARNING; mock and client on core $CORE_LOAD."
    echo "- Flat means a least-squares slope under 64 KiB/min, or growth after warm-up under 1% of RSS."
    echo
    echo "Outcomes: \`$(node -pe 'JSON.stringify(JSON.parse(process.argv[1]).counts)' "$LOAD")\`"
    echo
    echo "RSS samples (seconds, KiB):"
    echo
    echo '```'
    awk '{ printf "%5ss %8s\n", $1, $2 }' "$SAMPLES"
    echo '```'
} >"$BENCH_DIR/results/$name"
cat "$BENCH_DIR/results/$name"
log "written to bench/results/$name"
