#!/usr/bin/env bash
# Dispatch at scale: one or two release `voxbridge serve` nodes on one PostgreSQL dial a batch
# of CALLS calls, all due at the same moment, through a SIPp carrier on loopback that answers
# each call and hangs up 300 ms later. The carrier's message trace (every INVITE, with its
# X-VoxBridge-Call-Id and the sending node's Via) is the ground truth: INVITEs per second,
# calls dialled twice, calls never dialled or never completed.
#   benches/dispatch_scale.sh [CALLS] [NODES]
#   RATE=50       the carrier's cap in INVITEs per second; each node gets RATE / NODES
#   KILL_AFTER=N  with two nodes: kill -9 the second once N calls have been dialled
#   LEASE=10      [telephony] lease_seconds (how soon a killed node's calls are taken over)
# Loopback only; the nodes, PostgreSQL and SIPp share this machine's cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLS="${1:-10000}"
NODES="${2:-1}"
RATE="${RATE:-50}"
LEASE="${LEASE:-10}"
KEY="vbk_bench_0123456789abcdef"
. "$ROOT/benches/common.sh"
. "$ROOT/benches/pg.sh" "$WORK"
PSQL=(psql -qtA "$PG_URL")

CARRIER_PORT="$(free_port)"
sed 's/<pause milliseconds="2000"\/>/<pause milliseconds="300"\/>/' \
    "$ROOT/tests/sipp/carrier_hangup.xml" >"$WORK/carrier.xml"
( cd "$WORK" && exec sipp -sf "$WORK/carrier.xml" -i 127.0.0.1 -p "$CARRIER_PORT" -mi 127.0.0.1 \
    -mp 47000 -nostdin -trace_msg -message_file "$WORK/carrier.log" >/dev/null 2>&1 ) &
PIDS+=($!)

node_config() { # node_config FILE HTTP_PORT RTP_BASE
    cat >"$1" <<TOML
[http]
listen = "127.0.0.1:$2"
[sip]
listen = "127.0.0.1:$(free_port)"
[database]
url = "$PG_URL"
max_connections = 16
[telephony]
enabled = true
outbound_trunk = "carrier"
calls_per_second = $(( RATE / NODES ))
max_concurrent_calls = 500
lease_seconds = $LEASE
[media]
rtp_port_min = $3
rtp_port_max = $(( $3 + 1999 ))
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = $CARRIER_PORT
from_number = "+12025550100"
[[orgs]]
slug = "bench"
name = "Bench"
minutes_included = 100000000
api_keys = ["$KEY"]
[[orgs.agents]]
slug = "caller"
name = "Bench Caller"
direction = "outbound"
default = true
TOML
}

NODE_PIDS=()
BASES=()
for n in $(seq 1 "$NODES"); do
    HTTP_PORT="$(free_port)"
    node_config "$WORK/node$n.toml" "$HTTP_PORT" $(( 30000 + 2000 * n ))
    start_server "$WORK/node$n.toml"
    NODE_PIDS+=("$SERVER")
    BASES+=("http://127.0.0.1:$HTTP_PORT")
done

DUE_IN=30
DUE="$(python3 "$ROOT/benches/dispatch_scale.py" queue "${BASES[0]}" "$KEY" "$CALLS" "$DUE_IN")"
echo "queued $CALLS calls, due at $DUE"
STEAL0="$(steal)"; LOAD0="$(cut -d' ' -f1 /proc/loadavg)"
finished() { "${PSQL[@]}" -c "SELECT count(*) FROM calls WHERE status IN ('completed', 'failed')"; }
dialled() { "${PSQL[@]}" -c "SELECT count(*) FROM calls WHERE attempts > 0"; }
KILLED_AT=""
LIMIT=$(( DUE_IN + CALLS * NODES / RATE + 300 ))
for _ in $(seq 1 $(( LIMIT * 2 ))); do
    if [[ -n "${KILL_AFTER:-}" && -z "$KILLED_AT" && "$NODES" -ge 2 ]] && (( $(dialled) >= KILL_AFTER )); then
        kill -9 "${NODE_PIDS[1]}"
        KILLED_AT="$(date +%s.%N)"
        echo "killed node 2 (kill -9) after $(dialled) calls had been dialled"
    fi
    (( $(finished) >= CALLS )) && break
    sleep 0.5
done
STEAL1="$(steal)"; LOAD1="$(cut -d' ' -f1 /proc/loadavg)"
sleep 2   # the carrier's last lines
"${PSQL[@]}" -F ' ' -c "SELECT id, status, attempts FROM calls" >"$WORK/calls.txt"
python3 "$ROOT/benches/dispatch_scale.py" report "$WORK/carrier.log" "$WORK/calls.txt" "$RATE" "${KILLED_AT:-0}"
TICKS="$(getconf CLK_TCK)"
echo "load average $LOAD0 -> $LOAD1; CPU steal during the run $(( (STEAL1 - STEAL0) / TICKS )) s"
