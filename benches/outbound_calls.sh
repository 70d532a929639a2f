#!/usr/bin/env bash
# Outbound reminder calls end to end: a release `voxbridge serve` dials through a SIPp carrier
# (tests/sipp/carrier_answer.xml) that answers every call and streams the callee's line back
# (room noise at about -40 dBFS: audio to decode and run through the VAD, but no speech that
# would interrupt the agent); the agent ("reminder": a spoken message of about 13 s, no
# questions, then goodbye) talks and hangs up. Speech recognition is off: this measures
# dialing and media.
#   1. SINGLES calls (default 20) queued 400 ms apart, while capacity is free: due time ->
#      INVITE on the wire (the INVITE's X-VoxBridge-Call-Id names the call).
#   2. CALLS calls (default 200) queued at once ([telephony] calls_per_second = 50, so they are
#      all up together for a few seconds): failed calls, peak concurrent calls, server CPU per
#      call, and the pacing of the server's RTP (wire gap minus RTP-timestamp gap, per packet).
#   [RT_PRIORITY=50] benches/outbound_calls.sh [CALLS] [SINGLES]
# RT_PRIORITY: [media] realtime_priority for the media threads (needs CAP_SYS_NICE).
# SIPp, dumpcap and the server share this machine's cores; loopback only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLS="${1:-200}"
SINGLES="${2:-20}"
. "$ROOT/benches/common.sh"

MESSAGE="Hello, this is Acme Dental with a reminder of your appointment tomorrow morning at nine \
thirty with doctor Smith. Please bring your insurance card and arrive ten minutes early. If you \
need to change the time, call us back at any time during office hours."
HTTP_PORT="$(free_port)"
SIP_PORT="$(free_port)"
CARRIER_PORT="$(free_port)"
KEY="vbk_bench_0123456789abcdef"
bench_config "$WORK/voxbridge.toml" 0
cat >>"$WORK/voxbridge.toml" <<TOML
[[orgs.agents]]
slug = "reminder"
name = "Bench Reminder Agent"
direction = "outbound"
voice = "friendly"
greeting = "$MESSAGE"
closing = "Goodbye."
default = true
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = $CARRIER_PORT
from_number = "+12025550100"
[telephony]
enabled = true
outbound_trunk = "carrier"
calls_per_second = 50
max_concurrent_calls = $(( CALLS + SINGLES ))
[media]
rtp_port_min = 30000
rtp_port_max = 30999
TOML
if [[ -n "${RT_PRIORITY:-}" ]]; then echo "realtime_priority = $RT_PRIORITY" >>"$WORK/voxbridge.toml"; fi

# The callee's line, looped, from the port its SDP answer names.
sox -n -t raw -r 8000 -c 1 -e u-law "$WORK/callee.ul" synth 10 pinknoise vol 0.01
python3 - "$ROOT/tests/sipp/carrier_answer.xml" "$WORK/carrier.xml" "$WORK/callee.ul" <<'PY'
import sys
template, dst, audio = sys.argv[1:]
xml = open(template).read()
xml = xml.replace("@CHALLENGE@", "").replace("@ANSWER_PT@", "0 96")
xml = xml.replace("@CALLEE@", f'<nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>')
open(dst, "w").write(xml.replace("@PORT@", "[rtpstream_audio_port]"))
PY
( cd "$WORK" && sipp -sf "$WORK/carrier.xml" -i 127.0.0.1 -p "$CARRIER_PORT" -mi 127.0.0.1 \
    -mp 46000 -m $(( CALLS + SINGLES + 1 )) -nostdin -timeout 600s -timeout_error \
    -trace_err -error_file "$WORK/carrier_errors.log" >/dev/null 2>&1; echo $? >"$WORK/carrier.rc" ) &
PIDS+=($!)

start_server "$WORK/voxbridge.toml"
queue() {
    curl -sf "http://127.0.0.1:$HTTP_PORT/v1/calls/outbound" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' -d '{"to": "+12025550199"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
# finished: outbound calls completed or failed so far.
finished() {
    python3 "$ROOT/benches/outbound_calls.py" count "http://127.0.0.1:$HTTP_PORT" "$KEY"
}
wait_done() { # wait_done N: until N calls are completed or failed (at most 300 s)
    for _ in $(seq 1 600); do (( $(finished) >= $1 )) && return 0; sleep 0.5; done
    echo "only $(finished) of $1 calls finished" >&2
}

queue >/dev/null        # warm-up: the prompt cache, the carrier's first call
wait_done 1
start_capture

for _ in $(seq 1 "$SINGLES"); do queue >>"$WORK/singles.txt"; sleep 0.4; done
wait_done $(( 1 + SINGLES ))

STEAL0="$(steal)"; CPU0="$(cpu_ticks)"; LOAD0="$(cut -d' ' -f1 /proc/loadavg)"
python3 "$ROOT/benches/outbound_calls.py" queue "http://127.0.0.1:$HTTP_PORT" "$KEY" "$CALLS" >"$WORK/batch.txt"
PEAK=0
for _ in $(seq 1 600); do
    active="$(server_metrics 'calls_active\{direction="outbound"\}' | awk '{print int($2)}')"
    (( ${active:-0} > PEAK )) && PEAK="$active"
    (( $(finished) >= 1 + SINGLES + CALLS )) && break
    sleep 0.5
done
CPU1="$(cpu_ticks)"; STEAL1="$(steal)"; LOAD1="$(cut -d' ' -f1 /proc/loadavg)"
stop_capture
wait "${PIDS[0]}" 2>/dev/null || true

TICKS="$(getconf CLK_TCK)"
echo "outbound reminder calls: $SINGLES one at a time, then $CALLS at once (peak $PEAK up at once)"
python3 "$ROOT/benches/outbound_calls.py" report "http://127.0.0.1:$HTTP_PORT" "$KEY" \
    "$WORK/calls.pcap" "$SIP_PORT" "$WORK/singles.txt" "$WORK/batch.txt"
python3 -c "import sys; c, t, n = map(int, sys.argv[1:]); print(f'server CPU for the batch: {c / t:.1f} s, {c / t / n * 1000:.0f} ms per call')" \
    "$(( CPU1 - CPU0 ))" "$TICKS" "$CALLS"
echo "load average $LOAD0 -> $LOAD1; CPU steal during the batch $(( (STEAL1 - STEAL0) / TICKS )) s"
echo "carrier (SIPp) exit code $(cat "$WORK/carrier.rc" 2>/dev/null || echo '?')"
