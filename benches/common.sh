# Shared by the load scripts: `. "$ROOT/benches/common.sh"` after setting ROOT.
# Gives WORK (a temp dir removed on exit), PIDS (processes killed on exit), free_port,
# start_server CONFIG (release build of `voxbridge serve` on $HTTP_PORT; sets SERVER) and
# cpu_ticks (the server's CPU time so far, in clock ticks).
WORK="$(mktemp -d /tmp/voxbridge-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_server() {
    cargo build --release --quiet --bin voxbridge --manifest-path "$ROOT/Cargo.toml"
    RUST_LOG=warn "$ROOT/target/release/voxbridge" serve --config "$1" &
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
