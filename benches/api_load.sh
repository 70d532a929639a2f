#!/usr/bin/env bash
# Load on POST /v1/calls/outbound: a release server on loopback, wrk with 64 connections.
#   benches/api_load.sh sqlite|postgres [DURATION_SECONDS]
# For postgres the script starts its own server (initdb in a temp dir, default durability
# settings: fsync and synchronous_commit on). wrk and the server share this machine's cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DB="${1:-sqlite}"
DURATION="${2:-20}"
CONNECTIONS="${CONNECTIONS:-64}"
. "$ROOT/benches/common.sh"

case "$DB" in
    sqlite) URL="sqlite://$WORK/voxbridge.db" ;;
    postgres) . "$ROOT/benches/pg.sh" "$WORK"; URL="$PG_URL" ;;
    *) echo "usage: $0 sqlite|postgres [seconds]" >&2; exit 2 ;;
esac

HTTP_PORT="$(free_port)"
cat >"$WORK/voxbridge.toml" <<TOML
[http]
listen = "127.0.0.1:$HTTP_PORT"
[sip]
listen = "127.0.0.1:0"
[database]
url = "$URL"
max_connections = 16
[[orgs]]
slug = "bench"
name = "Bench"
minutes_included = 1000000
api_keys = ["vbk_bench_0123456789abcdef"]
[[orgs.agents]]
slug = "caller"
name = "Bench Caller"
direction = "outbound"
TOML

start_server "$WORK/voxbridge.toml"

# Warm up, then measure.
wrk -t2 -c"$CONNECTIONS" -d3s -s "$ROOT/benches/post_call.lua" "http://127.0.0.1:$HTTP_PORT" >/dev/null
CPU0=$(cpu_ticks)
echo "== $DB, $CONNECTIONS connections, ${DURATION}s"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$ROOT/benches/post_call.lua" "http://127.0.0.1:$HTTP_PORT" \
    | tee "$WORK/wrk.txt" | grep -E "Requests/sec|Latency|p50_ms|Non-2xx|Socket errors" || true
CPU1=$(cpu_ticks)
TICKS=$(getconf CLK_TCK)
RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
awk -v c=$((CPU1-CPU0)) -v t="$TICKS" -v d="$DURATION" -v r="$RPS" \
    'BEGIN { printf "server CPU: %.2f cores busy, %.0f us CPU per request\n", c/t/d, (c/t)/(r*d)*1e6 }'
