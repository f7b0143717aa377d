#!/usr/bin/env bash
# Run a command against a throw-away PostgreSQL 15 cluster:
#   scripts/pg-test.sh COMMAND [ARGS...]
# initdb in a temp dir owned by an unprivileged user (PostgreSQL refuses
# root), listening on 127.0.0.1 on a free port with password (scram) auth;
# exports
#   LX_TEST_PG_URL   postgresql://llmux:PASSWORD@127.0.0.1:PORT/postgres
#   LX_TEST_PG_CTL   a command taking "stop" (immediate, like a crash) or
#                    "start" (same data dir and port), for outage tests
#   LX_TEST_PG_ADMIN a psql command line (as the superuser) for set-up
# runs the command, then stops the cluster and deletes it whatever happens,
# and exits with the command's status. Tests that change shared objects
# should use a database of their own (CREATE DATABASE) so that several test
# binaries can share the cluster; the outage tests stop the whole server, so
# run the binaries one at a time (ctest -j1) under this script.
set -euo pipefail

if (($# == 0)); then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

pgbin=${PGBIN:-}
if [[ -z $pgbin ]]; then
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb ]] && pgbin=$d
    done
fi
if [[ -z $pgbin || ! -x $pgbin/initdb ]]; then
    echo "pg-test: PostgreSQL server binaries not found (apt-get install postgresql, or set PGBIN)" >&2
    exit 2
fi

dir=$(mktemp -d /tmp/llmux-pg.XXXXXX)
chmod 755 "$dir"
as_user=()
if [[ $(id -u) -eq 0 ]]; then
    chown nobody:nogroup "$dir"
    as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

port=$(free_port)
password="pw-$RANDOM$RANDOM"

cleanup() {
    local rc=$?
    if [[ -f $dir/data/postmaster.pid ]]; then
        "${as_user[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%s\n' "$password" >"$dir/pwfile"
chmod 600 "$dir/pwfile"
[[ ${#as_user[@]} -gt 0 ]] && chown nobody:nogroup "$dir/pwfile"
"${as_user[@]}" "$pgbin/initdb" -D "$dir/data" -U llmux -E UTF8 --no-locale --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$dir/pwfile" >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
}
rm -f "$dir/pwfile"
cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 50
logging_collector = off
EOF

# The control script outage tests call; it outlives nothing (deleted with $dir).
cat >"$dir/ctl" <<EOF
#!/usr/bin/env bash
set -e
case "\$1" in
stop) ${as_user[*]} "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop ;;
start) ${as_user[*]} "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start ;;
*) echo "usage: \$0 stop|start" >&2; exit 2 ;;
esac
EOF
chmod 755 "$dir/ctl"

if ! "$dir/ctl" start >/dev/null 2>&1; then
    echo "pg-test: PostgreSQL did not start:" >&2
    cat "$dir/log" >&2 || true
    exit 1
fi

export LX_TEST_PG_URL="postgresql://llmux:$password@127.0.0.1:$port/postgres"
export LX_TEST_PG_CTL="$dir/ctl"
export LX_TEST_PG_ADMIN="$pgbin/psql -h $dir -p $port -U llmux -d postgres -X -q"
echo "pg-test: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)"
set +e
"$@"
status=$?
set -e
exit $status
