#!/usr/bin/env bash
# Scripted agent calls under load: CALLS concurrent inbound calls into a release `voxbridge
# serve` whose inbound agent greets, asks three yes/no questions and closes (voice
# calm_support, tiny.en, [asr] max_concurrent 2). Each SIPp caller answers by voice after each
# question (recorded telephone "yes" / "yes, please" / "no") and waits for the agent's BYE.
# Everything on loopback is captured with dumpcap and benches/agent_turns.py measures, on the
# wire, time to first agent audio after the 200 OK and turn latency (end of the caller's
# speech -> first RTP packet of the agent's next prompt). The server's own histograms give the
# split; answers stored and server CPU per call are reported too.
#   [ASR_THREADS=1] [SPACING_MS=500] benches/agent_calls.sh [CALLS]      (default 10 calls)
# ASR_THREADS: [asr] threads; SPACING_MS: between call starts. Callers follow one script, so
# with a short spacing their answers, and the recognitions, coincide: the worst case.
# SIPp, dumpcap, the server and the recognizer share this machine's cores; loopback only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLS="${1:-10}"
SPACING_MS="${SPACING_MS:-500}"
. "$ROOT/benches/common.sh"

GREETING="Good morning, you have reached customer support."
QUESTIONS=("Shall I book the appointment for you?" "Do you want a reminder by text message?" "Is this your first visit with us?")
ANSWERS=(yes_no_01 yes_no_03 yes_no_02)
CLOSING="Thank you. Goodbye."
# The server's prompt latency is not known in advance: callers wait this long for the next
# question to start, then for its length, then answer 0.6 s after it ends.
TURN_ALLOWANCE_MS=1300

# How long calm_support takes to say $1 (espeak-ng as the server runs it, edges trimmed), ms.
spoken_ms() {
    echo "$1" | espeak-ng -v en-us+f3 -s 145 -p 38 -a 100 --stdin -b 1 -w "$WORK/p.wav"
    sox "$WORK/p.wav" "$WORK/t.wav" silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse
    python3 -c "import sys; print(int(float(sys.argv[1]) * 1000))" "$(soxi -D "$WORK/t.wav")"
}

silence() { sox -n -r 8000 -c 1 -e u-law "$WORK/s$2.wav" trim 0 "$(python3 -c "print($1/1000)")"; echo "$WORK/s$2.wav"; }

parts=()
wait_ms=$(( $(spoken_ms "$GREETING") + 150 + $(spoken_ms "${QUESTIONS[0]}") + 600 ))
for i in 0 1 2; do
    parts+=("$(silence "$wait_ms" "$i")" "$ROOT/fixtures/asr/${ANSWERS[$i]}.wav")
    if (( i < 2 )); then
        wait_ms=$(( TURN_ALLOWANCE_MS + $(spoken_ms "${QUESTIONS[$((i + 1))]}") + 600 ))
    fi
done
sox "${parts[@]}" -t raw "$WORK/caller.ul"

HTTP_PORT="$(free_port)"
SIP_PORT="$(free_port)"
KEY="vbk_bench_0123456789abcdef"
questions=""
for i in 0 1 2; do
    questions+="{ key = \"q$i\", ask = \"${QUESTIONS[$i]}\", type = \"yes_no\" }, "
done
bench_config "$WORK/voxbridge.toml" "$CALLS"
cat >>"$WORK/voxbridge.toml" <<TOML
[[orgs.agents]]
slug = "survey"
name = "Bench Survey Agent"
direction = "inbound"
voice = "calm_support"
greeting = "$GREETING"
questions = [ $questions]
closing = "$CLOSING"
[media]
rtp_port_min = 30000
rtp_port_max = 30999
TOML

agent_scenario "$WORK/caller.ul" "$WORK/call.xml"

start_server "$WORK/voxbridge.toml"
# One warm-up call fills the prompt cache, as on a server that has taken calls before.
( cd "$WORK" && sipp "127.0.0.1:$SIP_PORT" -sf "$WORK/call.xml" -s +12025550142 -i 127.0.0.1 \
    -mi 127.0.0.1 -mp 44000 -m 1 -nostdin -timeout 120s -timeout_error >/dev/null ) \
    || echo "the warm-up call failed"
server_metrics 'agent_first_prompt_seconds_count'

start_capture

STEAL0="$(steal)"
TICKS0="$(cpu_ticks)"
START="$(date +%s.%N)"
echo "$CALLS calls, one every $SPACING_MS ms; load average $(cut -d' ' -f1-3 /proc/loadavg)"
( cd "$WORK" && sipp "127.0.0.1:$SIP_PORT" -sf "$WORK/call.xml" -s +12025550142 -i 127.0.0.1 \
    -mi 127.0.0.1 -mp 45000 -r 1 -rp "$SPACING_MS" -l "$CALLS" -m "$CALLS" -nostdin -timeout 300s \
    -timeout_error -trace_err -error_file "$WORK/sipp-errors.log" >/dev/null ) \
    || { echo "SIPp reported failed calls:"; tail -20 "$WORK/sipp-errors.log"; }
TICKS1="$(cpu_ticks)"
WALL="$(python3 -c "import time; print(time.time() - $START)")"
STEAL1="$(steal)"
stop_capture

echo "--- on the wire"
python3 "$ROOT/benches/agent_turns.py" "$WORK/calls.pcap" "$SIP_PORT"
echo "--- server"
python3 - "$TICKS0" "$TICKS1" "$(getconf CLK_TCK)" "$WALL" "$CALLS" "$STEAL0" "$STEAL1" <<'PY'
import sys
t0, t1, hz, wall, calls, s0, s1 = (float(v) for v in sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"CPU {cpu:.1f} s over {wall:.1f} s = {cpu / wall * 100:.0f} % of one core "
      f"({cpu / calls:.2f} CPU-s per call, {cpu / wall * 100 / calls:.2f} % of a core per live call); "
      f"CPU steal {(s1 - s0) / hz:.1f} s")
PY
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
server_metrics 'agent_|asr_utterance_seconds|asr_utterances_dropped_total|calls_refused_total|tts_'
echo "--- calls"
inbound_calls | python3 -c "
import json, sys
calls = json.load(sys.stdin)['data']
done = [c for c in calls if c['status'] == 'completed']
expected = {'q0': True, 'q1': True, 'q2': False}
right = sum(1 for c in done for k, v in expected.items() if (c.get('analysis') or {}).get('answers', {}).get(k) == v)
hangups = sum(1 for c in done if c['end_reason'] == 'agent_hangup')
print(f'{len(done)} of {len(calls)} calls completed, {hangups} ended by the agent; '
      f'{right} of {3 * len(done)} answers as spoken')
"
