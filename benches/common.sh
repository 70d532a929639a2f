# Shared by the load scripts: `. "$ROOT/benches/common.sh"` after setting ROOT.
# Gives WORK (a temp dir removed on exit), PIDS (processes killed on exit), free_port,
# start_server CONFIG (release build of `voxbridge serve` on $HTTP_PORT, on the cores in
# SERVER_CPUS and within SERVER_CPU_QUOTA CPUs if set; sets SERVER),
# cpu_ticks (the server's CPU time so far, in clock ticks), steal (the machine's CPU steal so
# far, in ticks), server_metrics REGEX (its Prometheus lines for voxbridge_REGEX),
# inbound_calls (up to 100, as JSON), bench_config, agent_scenario and start_capture /
# stop_capture.
WORK="$(mktemp -d /tmp/voxbridge-bench.XXXXXX)"
PIDS=()
CGROUP=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n "$CGROUP" ]] && rmdir "$CGROUP" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A cgroup (v2, else v1 cpu) limited to $SERVER_CPU_QUOTA CPUs; sets CGROUP. Needs root.
cpu_quota_cgroup() {
    local quota_us
    quota_us="$(python3 -c "print(int(float('$SERVER_CPU_QUOTA') * 100000))")"
    if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        CGROUP="/sys/fs/cgroup/voxbridge-bench-$$"
        mkdir -p "$CGROUP" && echo "$quota_us 100000" >"$CGROUP/cpu.max"
    else
        CGROUP="/sys/fs/cgroup/cpu/voxbridge-bench-$$"
        mkdir -p "$CGROUP" && echo 100000 >"$CGROUP/cpu.cfs_period_us" \
            && echo "$quota_us" >"$CGROUP/cpu.cfs_quota_us"
    fi
}

start_server() {
    cargo build --release --quiet --bin voxbridge --manifest-path "$ROOT/Cargo.toml"
    [[ -n "${SERVER_CPU_QUOTA:-}" ]] && cpu_quota_cgroup
    # SERVER_CPUS (a taskset CPU list) restricts the server to those cores; SERVER_CPU_QUOTA
    # (CPUs, e.g. 1 or 0.5) runs it in a cgroup with that CPU quota.
    RUST_LOG=warn sh -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh \
        "$CGROUP" ${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "$ROOT/target/release/voxbridge" \
        serve --config "$1" &
    SERVER=$!
    PIDS+=("$SERVER")
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && return 0
        sleep 0.1
    done
    echo "voxbridge did not answer /healthz within 30 s" >&2
    return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }

# The machine's CPU steal so far, in clock ticks (/proc/stat).
steal() { awk '/^cpu /{print $9}' /proc/stat; }

server_metrics() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep -E "^voxbridge_($1)" || true; }

inbound_calls() {
    curl -s "http://127.0.0.1:$HTTP_PORT/v1/calls?direction=inbound&limit=100" -H "Authorization: Bearer $KEY"
}

# bench_config FILE CALLS: a config for live calls on $HTTP_PORT / $SIP_PORT (both free ports),
# SQLite in $WORK, tiny.en with `max_calls = ${MAX_CALLS:-CALLS}` (MAX_CALLS=auto calibrates) and
# `threads = ${ASR_THREADS:-1}` (no speech recognition with CALLS = 0), a loopback trunk and the
# org "bench" (API key $KEY) that owns +12025550142. Append its agents.
bench_config() {
    cat >"$1" <<TOML
[http]
listen = "127.0.0.1:$HTTP_PORT"
[sip]
listen = "127.0.0.1:$SIP_PORT"
[database]
url = "sqlite://$WORK/voxbridge.db"
TOML
    if (( $2 > 0 )); then
        cat >>"$1" <<TOML
[asr]
model = "$ROOT/models/ggml-tiny.en-q8_0.bin"
answer_model = "$ROOT/models/ggml-tiny.en.bin"
threads = ${ASR_THREADS:-1}
max_concurrent = 2
max_calls = $([[ "${MAX_CALLS:-}" == auto ]] && echo '"auto"' || echo "${MAX_CALLS:-$2}")
TOML
    fi
    cat >>"$1" <<TOML
[[trunks]]
name = "local"
host = "127.0.0.1"
inbound_cidrs = ["127.0.0.0/8"]
[[orgs]]
slug = "bench"
name = "Bench"
minutes_included = 1000000
api_keys = ["$KEY"]
numbers = ["+12025550142"]
TOML
}

# agent_scenario AUDIO OUT: a SIPp caller (tests/sipp/agent_call.xml) that streams AUDIO (raw
# 8 kHz μ-law) once the call is answered and then waits for the agent's BYE.
agent_scenario() {
    python3 - "$ROOT/tests/sipp" "$2" "$1" <<'PY'
import sys
sipp, dst, audio = sys.argv[1:]
actions = f'<nop><action><exec rtp_stream="{audio},1,0"/></action></nop>'
end = open(f"{sipp}/await_bye.xml").read()
xml = open(f"{sipp}/agent_call.xml").read().replace("@CALLER@", actions).replace("@END@", end)
open(dst, "w").write(xml.replace("@PORT@", "[rtpstream_audio_port]"))
PY
}

# start_capture: dumpcap on loopback into $WORK/calls.pcap (SIP on $SIP_PORT and the RTP ports
# 30000-30999 the agent benches configure); returns once the capture is open. stop_capture
# ends it and flushes the file.
start_capture() {
    dumpcap -i lo -P -q -f "udp port $SIP_PORT or udp portrange 30000-30999" \
        -w "$WORK/calls.pcap" 2>"$WORK/dumpcap.log" &
    CAPTURE=$!
    PIDS+=("$CAPTURE")
    for _ in $(seq 1 50); do grep -q "Capturing on" "$WORK/dumpcap.log" && break; sleep 0.1; done
}
stop_capture() { sleep 1; kill -TERM "$CAPTURE" && wait "$CAPTURE" 2>/dev/null || true; }
