# Shared helpers for the bench scripts (sourced, not run). See bench/README.md.
#
# Every process a script starts is recorded in BENCH_PIDS and killed by pid
# in the EXIT trap; nginx runs from a private prefix in a temp dir that the
# trap removes. Nothing here touches processes it did not start.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
LLMUX="$BUILD_DIR/llmux"
MOCK="$BUILD_DIR/llmux-mock"

# Pinning: the proxy under test gets a core of its own; the load generator and
# the upstream share the other. Override with CORE_PROXY / CORE_LOAD.
NCPU="$(nproc)"
if [[ "$NCPU" -ge 2 ]]; then
    CORE_PROXY="${CORE_PROXY:-0}"
    CORE_LOAD="${CORE_LOAD:-1}"
else
    CORE_PROXY="${CORE_PROXY:-0}"
    CORE_LOAD="${CORE_LOAD:-0}"
fi

# Background jobs on a shared box (builds, fuzzers) perturb microsecond
# measurements; when allowed (root), bench processes run at a higher priority.
BENCH_NICE="${BENCH_NICE:--10}"
if ! nice -n "$BENCH_NICE" true 2>/dev/null; then
    BENCH_NICE=0
fi

BENCH_PIDS=()
BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/llmux-bench.XXXXXX")"

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] error: %s\n' "$*" >&2
    exit 1
}

# Run pinned to a core at the bench priority: pin CORE cmd args... (foreground only:
# to start a server in the background write the nice/taskset line out, so $! is its pid)
pin() {
    local core="$1"
    shift
    nice -n "$BENCH_NICE" taskset -c "$core" "$@"
}

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Build the release binaries (or verify them with BENCH_NO_BUILD=1).
bench_build() {
    if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
        log "building release binaries (cmake --preset release)"
        (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build build -j"$NCPU" >/dev/null) ||
            die "release build failed"
    fi
    [[ -x "$LLMUX" && -x "$MOCK" ]] || die "missing $LLMUX or $MOCK"
}

bench_need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "'$t' not found (make bench runs scripts/deps.sh --bench)"
    done
}

# Raise the open-file limit as far as the hard limit allows.
bench_raise_nofile() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

port_free() {
    ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# Fail early if a port we are about to use is taken.
need_ports() {
    local p
    for p in "$@"; do
        port_free "$p" || die "port $p is in use; set BENCH_PORT to another base"
    done
}

# Wait until "GET PATH" on PORT answers 200 (default /health), up to ~10 s.
wait_http() {
    local port="$1" path="${2:-/health}" i
    for i in $(seq 1000); do
        if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port$path" 2>/dev/null; then
            return 0
        fi
        sleep 0.01
    done
    die "nothing answered on 127.0.0.1:$port$path"
}

# Wait until something accepts TCP connections on PORT.
wait_port() {
    local port="$1" i
    for i in $(seq 1000); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.01
    done
    die "nothing listening on 127.0.0.1:$port"
}

# start_mock CORE PORT [mock args...] -> sets MOCK_PID
start_mock() {
    local core="$1" port="$2"
    shift 2
    # not via pin(): a backgrounded function would be a subshell and $! its pid
    nice -n "$BENCH_NICE" taskset -c "$core" "$MOCK" --port "$port" --quiet "$@" >"$BENCH_TMP/mock-$port.log" 2>&1 &
    MOCK_PID=$!
    BENCH_PIDS+=("$MOCK_PID")
    wait_port "$port"
}

# write_llmux_config FILE MOCK_PORT STATIC_PORT
# Deployments: gpt-4o -> llmux-mock, gpt-4o-static -> nginx static upstream,
# plus fault-injecting ones (mock directives in api_base) used by the soak.
write_llmux_config() {
    local file="$1" mock="$2" static="${3:-0}"
    cat >"$file" <<EOF
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$mock/v1
      api_key: sk-upstream
  - model_name: gpt-4o-static
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$static/v1
      api_key: sk-upstream
  - model_name: gpt-4o-slow
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$mock/mock/chunks=20,interval_ms=10/v1
      api_key: sk-upstream
  - model_name: gpt-4o-500
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$mock/mock/status=500/v1
      api_key: sk-upstream
  - model_name: gpt-4o-429
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$mock/mock/status=429,retry_after=1/v1
      api_key: sk-upstream
  - model_name: gpt-4o-reset
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$mock/mock/chunks=20,interval_ms=5,reset_after=5/v1
      api_key: sk-upstream
  - model_name: gpt-4o-10k
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:$mock/mock/chunks=${CONC_CHUNKS:-120},interval_ms=${CONC_INTERVAL_MS:-100}/v1
      api_key: sk-upstream

general_settings:
  master_key: sk-bench
  # WARNING: per-request access logs would otherwise dominate the profile.
  log_level: WARNING
  # --- full pipeline: add here as the features land --------------------------
  # virtual keys:  database_url + keys created with /key/generate (then send
  #                the virtual key instead of the master key from chat.lua)
  # rate limits:   rpm/tpm on the key or the deployment (set high enough that
  #                the bench never hits them; the check itself is what we time)
  # spend logging: the spend journal / store, on by default once it exists
  # ---------------------------------------------------------------------------

litellm_settings:
  json_logs: false
EOF
}

# start_llmux CORE PORT CONFIG [extra args] -> sets LLMUX_PID
start_llmux() {
    local core="$1" port="$2" cfg="$3"
    shift 3
    nice -n "$BENCH_NICE" taskset -c "$core" "$LLMUX" --config "$cfg" --port "$port" --host 127.0.0.1 --num_workers 1 "$@" \
        >"$BENCH_TMP/llmux-$port.log" 2>&1 &
    LLMUX_PID=$!
    BENCH_PIDS+=("$LLMUX_PID")
    wait_http "$port" /health
}

# kB of a /proc/PID/status field (VmRSS, VmHWM).
proc_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# utime+stime of PID in clock ticks.
proc_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# The pid and its children (nginx master + workers).
proc_tree() {
    echo "$1"
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

tree_kb() {
    local sum=0 p
    for p in $(proc_tree "$1"); do
        sum=$((sum + $(proc_kb "$p" "$2")))
    done
    echo "$sum"
}

tree_ticks() {
    local sum=0 p
    for p in $(proc_tree "$1"); do
        sum=$((sum + $(proc_ticks "$p")))
    done
    echo "$sum"
}

CLK_TCK="$(getconf CLK_TCK)"

short_commit() {
    local c
    c="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)"
    if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
        c="$c-dirty"
    fi
    echo "$c"
}

# The fixed answer of the nginx static upstream: the mock's plain answer, byte
# for byte the same size, so both upstreams send the same response.
STATIC_BODY='{"id":"chatcmpl-1ee3360a9e2368b1c157da30","object":"chat.completion","created":1795240505,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is llmux-mock.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}'

# write_nginx_conf NAME SERVERS_SNIPPET: a private prefix BENCH_TMP/NAME with nginx.conf,
# running as the current user (root: user root).
write_nginx_conf() {
    local name="$1" servers="$2" dir="$BENCH_TMP/$1" user=""
    mkdir -p "$dir"
    [[ "$(id -u)" == 0 ]] && user="user root;"
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
error_log $dir/error.log crit;
events {
    worker_connections 4096;
    multi_accept on;
}
http {
    access_log off;
    default_type application/json;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
$servers
}
EOF
}

# start_nginx NAME CORE SERVERS_SNIPPET -> sets NGINX_PID (the master)
start_nginx() {
    local name="$1" core="$2" dir="$BENCH_TMP/$1"
    write_nginx_conf "$name" "$3"
    nice -n "$BENCH_NICE" taskset -c "$core" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" \
        -g "daemon off; pid $dir/nginx.pid;" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    BENCH_PIDS+=("$NGINX_PID")
}

# nginx server block: a static upstream answering every path with STATIC_BODY.
nginx_static_server() {
    cat <<EOF
    server {
        listen 127.0.0.1:$1 reuseport backlog=4096;
        location / {
            return 200 '$STATIC_BODY';
        }
    }
EOF
}

# nginx server block: reverse proxy on PORT to 127.0.0.1:UPSTREAM_PORT.
# nginx_proxy_server NAME PORT UPSTREAM_PORT BUFFERING(on|off)
nginx_proxy_server() {
    cat <<EOF
    upstream $1 {
        server 127.0.0.1:$3;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$2 reuseport backlog=4096;
        location = /health {
            return 200 '{"status":"healthy"}';
        }
        location / {
            proxy_pass http://$1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering $4;
        }
    }
EOF
}

# Per-round values: add KEY VALUE appends to VALS[KEY] (the caller declares -A VALS);
# median "VALUES" prints their median.
add() { VALS[$1]="${VALS[$1]:-} $2"; }

median() {
    tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# wrk latency "123.45us" / "1.23ms" / "1.00s" -> microseconds
to_us() {
    awk -v s="$1" 'BEGIN {
        if (s ~ /us$/) { sub(/us$/, "", s); print s + 0 }
        else if (s ~ /ms$/) { sub(/ms$/, "", s); print s * 1000 }
        else if (s ~ /s$/) { sub(/s$/, "", s); print s * 1000000 }
        else print "nan" }'
}

# wrk_run PORT MODEL CONNS SECONDS -> sets W_RPS W_P50 W_P99 W_REQS W_ERRS
# (BENCH_KEY in the environment: the bearer key chat.lua sends; default sk-bench)
wrk_run() {
    local out
    out=$(BENCH_MODEL="$2" BENCH_BODY="$BENCH_DIR/request.json" \
        pin "$CORE_LOAD" wrk -t1 -c"$3" -d"$4"s --latency -s "$BENCH_DIR/chat.lua" \
        "http://127.0.0.1:$1/v1/chat/completions" 2>&1) || die "wrk failed: $out"
    W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    W_P50=$(to_us "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    W_P99=$(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    W_REQS=$(awk '/requests in/ { print $1 }' <<<"$out")
    W_ERRS=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/[^0-9 ]/, " "); n += $1 + $2 + $3 + $4 } END { print n + 0 }' <<<"$out")
}
