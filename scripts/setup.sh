#!/usr/bin/env bash
# Installs what VoxBridge needs to build, run and test on Debian, and fetches the ASR model.
# Idempotent; run as root (or with sudo available). Set VOXBRIDGE_SKIP_APT=1 to skip apt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
    build-essential pkg-config cmake clang libclang-dev   # whisper-rs builds whisper.cpp
    libopus-dev opus-tools                                 # Opus codec; opus-tools makes interop fixtures
    sip-tester                                             # SIPp, the SIP peer in interop tests
    tshark                                                 # dumpcap: what a SIPp caller hears, off loopback
    espeak-ng sox libsox-fmt-all                           # speech fixtures
    postgresql                                             # the test harness starts its own server
    python3 python3-venv                                   # model conversion
    curl ca-certificates wrk                               # quick-start checks and load scripts
)

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ "${VOXBRIDGE_SKIP_APT:-0}" != 1 ]]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "setup: installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install a Rust toolchain (rustup, stable >= 1.85) and run again" >&2
    exit 1
fi

"$ROOT/scripts/fetch-model.sh" "$ROOT/models"
