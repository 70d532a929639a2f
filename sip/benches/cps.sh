#!/usr/bin/env bash
# Signalling-only calls per second against a UAS, RFC 7502 style: SIPp's built-in uac
# scenario (INVITE / 200+SDP / ACK / BYE / 200) at stepped rates, each step a fixed duration,
# both ends with -buff_size 4194304. A step is clean when SIPp reports 0 failed calls and
# retransmissions stay at or below 0.1 % of calls. Reports per step: calls, failures,
# retransmissions, mean setup time, UAS CPU (% of one core and per 1,000 CPS) and RSS.
#
# Usage:
#   sip/benches/cps.sh                       # our uas_bench (built here, release)
#   UAS_CMD="/path/to/other_uas --port 5080" UAS_NAME=other sip/benches/cps.sh
# Env: RATES (default "2000 4000 6000 8000 10000 12000 14000"), DURATION (s, default 20),
#      PORT (default 5080), SIPP_PORT (default 5090).
set -euo pipefail

RATES=${RATES:-"2000 4000 6000 8000 10000 12000 14000"}
DURATION=${DURATION:-20}
PORT=${PORT:-5080}
SIPP_PORT=${SIPP_PORT:-5090}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z "${UAS_CMD:-}" ]]; then
  (cd "$HERE" && cargo build --release -q -p voxbridge-sip --example uas_bench)
  TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
  UAS_CMD="$TARGET_DIR/release/examples/uas_bench 127.0.0.1:$PORT"
  UAS_NAME=${UAS_NAME:-voxbridge}
fi
UAS_NAME=${UAS_NAME:-uas}
WORK=$(mktemp -d)
TICK=$(getconf CLK_TCK)

$UAS_CMD > "$WORK/uas.log" 2>&1 &
UAS_PID=$!
trap 'kill $UAS_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 1

cpu_ticks() { awk '{print $14 + $15}' "/proc/$UAS_PID/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$UAS_PID/status"; }
# "HH:MM:SS:uuuuuu" -> milliseconds
to_ms() { awk -F: '{printf "%.1f", ($1*3600 + $2*60 + $3) * 1000 + $4 / 1000}' <<<"$1"; }

printf "%-10s %6s %8s %7s %8s %9s %7s %11s %9s\n" uas rate calls failed retrans setup_ms cpu_% cpu%/1kcps rss_MiB
best=0
for rate in $RATES; do
  calls=$((rate * DURATION))
  before=$(cpu_ticks)
  t0=$(date +%s.%N)
  set +e
  sipp -sn uac "127.0.0.1:$PORT" -i 127.0.0.1 -p "$SIPP_PORT" -r "$rate" -m "$calls" \
    -l $((rate * 4)) -buff_size 4194304 -timeout $((DURATION * 3))s -nostdin \
    -trace_stat -stf "$WORK/stat.csv" -fd 1 > "$WORK/sipp.out" 2>&1
  set -e
  t1=$(date +%s.%N)
  after=$(cpu_ticks)
  last=$(tail -1 "$WORK/stat.csv")
  field() { awk -F';' -v n="$1" '{print $n}' <<<"$last"; }
  ok=$(field 16); failed=$(field 18); retrans=$(field 58); setup=$(to_ms "$(field 70)")
  elapsed=$(echo "$t1 - $t0" | bc -l)
  cpu=$(echo "($after - $before) / $TICK / $elapsed * 100" | bc -l)
  per_k=$(echo "$cpu / ($rate / 1000)" | bc -l)
  printf "%-10s %6d %8d %7d %8d %9s %7.1f %11.2f %9.0f\n" "$UAS_NAME" "$rate" "$ok" "$failed" "$retrans" "$setup" "$cpu" "$per_k" "$(($(rss_kib) / 1024))"
  if [[ "$failed" == 0 && "$ok" == "$calls" ]] && (( retrans * 1000 <= calls )); then
    best=$rate
  else
    break
  fi
  sleep 3
done
echo "highest clean rate for $UAS_NAME: $best CPS"
