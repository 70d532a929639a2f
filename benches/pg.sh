#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for a benchmark and prints nothing; source it, then use
# $PG_URL. Default durability settings (fsync, synchronous_commit on): production-like.
#   . benches/pg.sh "$WORK"        # WORK: a temp dir the caller removes; adds the pid to PIDS
pg_start() {
    local work="$1"
    local pgbin port
    pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    local run=()
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$work"; run=(runuser -u postgres --); fi
    "${run[@]}" "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust >/dev/null
    "${run[@]}" "$pgbin/postgres" -D "$work/pg" -p "$port" -k "$work" -c listen_addresses=127.0.0.1 \
        -c max_connections=200 -c shared_buffers=256MB >"$work/pg.log" 2>&1 &
    PIDS+=($!)
    until "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.2; done
    "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE bench" >/dev/null
    PG_URL="postgres://postgres@127.0.0.1:$port/bench"
}
pg_start "$1"
