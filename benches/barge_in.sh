#!/usr/bin/env bash
# Barge-in latency on the wire: CALLS inbound calls into a release `voxbridge serve` whose
# agent says a long greeting; each SIPp caller starts talking over it at a different point
# (0.6–3.5 s in, rotating recorded answers from "No." to a whole sentence). dumpcap captures
# loopback and benches/barge_in.py measures, per call, the onset of the caller's speech (first
# caller RTP packet with speech) -> the last agent RTP packet with speech before the greeting
# stops. PARALLEL callers run side by side (default 1: the latency of the path itself).
#   [PARALLEL=1] benches/barge_in.sh [CALLS]      (default 20 calls)
# SIPp, dumpcap and the server share this machine's cores; loopback only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLS="${1:-20}"
PARALLEL="${PARALLEL:-1}"
. "$ROOT/benches/common.sh"

GREETING="Good morning, you have reached customer support at Acme. Our lines are open from nine to five, Monday to Friday, and every call is recorded for quality."
CLIPS=(yes_no_02 free_01 yes_no_01 free_03 choice_02 free_05 digits_04 yes_no_06)

HTTP_PORT="$(free_port)"
SIP_PORT="$(free_port)"
KEY="vbk_bench_0123456789abcdef"
bench_config "$WORK/voxbridge.toml" "$((PARALLEL + 1))"
cat >>"$WORK/voxbridge.toml" <<TOML
[[orgs.agents]]
slug = "greeter"
name = "Bench Greeter"
direction = "inbound"
voice = "calm_support"
greeting = "$GREETING"
closing = "Thank you. Goodbye."
[media]
rtp_port_min = 30000
rtp_port_max = 30999
TOML

# One scenario per call: silence, then the caller talks over the greeting.
for i in $(seq 0 $((CALLS - 1))); do
    offset=$(python3 -c "print(0.6 + ($i * 0.37) % 2.9)")
    sox -n -r 8000 -c 1 -e u-law "$WORK/lead$i.wav" trim 0 "$offset"
    sox "$WORK/lead$i.wav" "$ROOT/fixtures/asr/${CLIPS[$((i % ${#CLIPS[@]}))]}.wav" -t raw "$WORK/caller$i.ul"
    agent_scenario "$WORK/caller$i.ul" "$WORK/call$i.xml"
done

start_server "$WORK/voxbridge.toml"
one_call() { # one_call INDEX MEDIA_PORT
    ( cd "$WORK" && sipp "127.0.0.1:$SIP_PORT" -sf "$WORK/call$1.xml" -s +12025550142 -i 127.0.0.1 \
        -mi 127.0.0.1 -mp "$2" -m 1 -nostdin -timeout 60s -timeout_error >/dev/null 2>&1 ) \
        || echo "call $1 failed"
}
one_call 0 44000 # warm-up: the greeting's audio is cached from here on

start_capture

STEAL0="$(steal)"
echo "$CALLS calls, $PARALLEL at a time; load average $(cut -d' ' -f1-3 /proc/loadavg)"
LANES=()
for lane in $(seq 0 $((PARALLEL - 1))); do
    ( for i in $(seq "$lane" "$PARALLEL" $((CALLS - 1))); do one_call "$i" $((45000 + lane * 16)); done ) &
    LANES+=("$!")
done
wait "${LANES[@]}"
STEAL1="$(steal)"
stop_capture

echo "--- on the wire"
python3 "$ROOT/benches/barge_in.py" "$WORK/calls.pcap" "$SIP_PORT"
echo "CPU steal $(( (STEAL1 - STEAL0) / $(getconf CLK_TCK) )) s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
server_metrics 'agent_barge_ins_total'
