#!/usr/bin/env bash
# Live-call transcription capacity: CALLS concurrent inbound calls into a release
# `voxbridge serve` with [asr] on (tiny.en, 1 thread per job, max_concurrent 2), each call SIPp
# streaming telephone speech as PCMU RTP: 8 utterances with 4.5 s pauses (41 % talk time,
# 62 s). Reports end of utterance → text and the queue wait (p50/p99 from the server's own
# summaries), utterances transcribed vs spoken, dropped utterances, skipped second opinions,
# refused calls, the live transcripts' WER, server CPU, load average and CPU steal.
#   benches/asr_calls.sh [CALLS]      (default 20)
# MAX_CALLS=auto sizes admission by start-up calibration (otherwise max_calls = CALLS);
# SERVER_CPUS=0 runs the server on one core (taskset); SERVER_CPU_QUOTA=1 gives it one CPU's
# time through a cgroup quota (root).
# SIPp, the server and the recognizer share this machine's cores; loopback only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLS="${1:-20}"
UTTERANCES=8
. "$ROOT/benches/common.sh"

# Caller speech: free_01..08 each followed by 4.5 s of silence, as raw μ-law.
sox -n -r 8000 -c 1 -e u-law "$WORK/pause.wav" trim 0 4.5
parts=()
for i in $(seq 1 "$UTTERANCES"); do
    parts+=("$ROOT/fixtures/asr/free_0$i.wav" "$WORK/pause.wav")
done
sox "${parts[@]}" -t raw "$WORK/caller.ul"
SECONDS_OF_AUDIO=$(( $(stat -c %s "$WORK/caller.ul") / 8000 + 1 ))

HTTP_PORT="$(free_port)"
SIP_PORT="$(free_port)"
KEY="vbk_bench_0123456789abcdef"
bench_config "$WORK/voxbridge.toml" "$CALLS"
cat >>"$WORK/voxbridge.toml" <<TOML
[[orgs.agents]]
slug = "listener"
name = "Bench Listener"
direction = "inbound"
TOML

sed -e "s|@AUDIO@|$WORK/caller.ul|" -e "s|@HOLD_MS@|$(( SECONDS_OF_AUDIO * 1000 ))|" \
    "$ROOT/tests/sipp/talking_call.xml" >"$WORK/call.xml"

start_server "$WORK/voxbridge.toml"
curl -s "http://127.0.0.1:$HTTP_PORT/readyz" | python3 -c "
import json, sys
c = json.load(sys.stdin)['capacity']
timed = c['calibrated_utterance_ms']
timed = f'; 3.4 s utterance recognized in {timed} ms' if timed is not None else ''
print(f\"admission: {c['transcription_slots']} calls ({c['transcription_sizing']}{timed}), \"
      f\"refused above a p95 queue wait of {c['recognition_wait_limit_ms']} ms\")"

TICKS0="$(cpu_ticks)"; STEAL0="$(steal)"; LOAD0="$(cut -d' ' -f1 /proc/loadavg)"
START="$(date +%s.%N)"
echo "$CALLS calls, ${SECONDS_OF_AUDIO} s each, $UTTERANCES utterances per call, 2 new calls per second"
( cd "$WORK" && sipp "127.0.0.1:$SIP_PORT" -sf "$WORK/call.xml" -s +12025550142 -i 127.0.0.1 \
    -mi 127.0.0.1 -mp 44000 -r 2 -l "$CALLS" -m "$CALLS" -nostdin -timeout 300s \
    -timeout_error -trace_err -error_file "$WORK/sipp-errors.log" >/dev/null ) \
    || { echo "SIPp reported failed calls:"; tail -20 "$WORK/sipp-errors.log"; }
# Let the last utterances finish recognizing and the calls be stored.
sleep 3
TICKS1="$(cpu_ticks)"; STEAL1="$(steal)"; LOAD1="$(cut -d' ' -f1 /proc/loadavg)"
WALL="$(python3 -c "import time; print(time.time() - $START)")"
HZ="$(getconf CLK_TCK)"

echo "--- server"
python3 - "$TICKS0" "$TICKS1" "$HZ" "$WALL" "$CALLS" <<'PY'
import sys
t0, t1, hz, wall, calls = (float(v) for v in sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"CPU {cpu:.1f} s over {wall:.1f} s = {cpu / wall * 100:.0f} % of one core "
      f"({cpu / wall * 100 / calls:.2f} % per call)")
PY
echo "load average $LOAD0 -> $LOAD1; CPU steal $(( (STEAL1 - STEAL0) / $(getconf CLK_TCK) )) s"
server_metrics 'asr_utterance_seconds|asr_queue_wait_seconds|asr_utterances_dropped_total|asr_second_opinions_skipped_total|asr_utterance_pairs|calls_refused_total|sip_inbound_total'
# A counter appears only once counted: say 0 rather than nothing.
dropped="$(server_metrics 'asr_utterances_dropped_total' | awk '{n += $2} END {print n + 0}')"
echo "dropped utterances: $dropped (must be 0)"
echo "--- calls"
REFERENCE="$(awk -F'\t' -v n="$UTTERANCES" '$1 ~ /^free_0/ && ++i <= n {print $5}' \
    "$ROOT/fixtures/asr/manifest.tsv")"
inbound_calls | REFERENCE="$REFERENCE" python3 -c "
import json, os, re, sys
calls = json.load(sys.stdin)['data']
done = [c for c in calls if c['status'] == 'completed']
entries = sum(len(c['transcript']) for c in done)
loss = max((c['quality'] or {}).get('loss_percent', 0) for c in done) if done else 0
print(f'{len(done)} of {len(calls)} calls completed; {entries} transcript entries for '
      f'{len(done) * $UTTERANCES} utterances spoken; worst media loss {loss} %')
words = lambda text: re.sub(r\"[^a-z0-9' ]\", ' ', text.lower()).split()
def distance(ref, hyp):
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]
ref = words(os.environ['REFERENCE'])
errors = sum(distance(ref, words(' '.join(e['text'] for e in c['transcript'] if e['role'] == 'caller')))
             for c in done)
if done:
    print(f'free-form WER over the calls: {errors / (len(ref) * len(done)) * 100:.1f} % '
          f'({errors} errors in {len(ref) * len(done)} words)')
"
