#!/usr/bin/env bash
# Quick start: install what is needed, then run the server on SQLite with the demo org,
# API key and agents of config/voxbridge.toml (HTTP on 127.0.0.1:8080).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
cargo build --release --locked --bin voxbridge
target/release/voxbridge check-config --config config/voxbridge.toml
exec target/release/voxbridge serve --config config/voxbridge.toml
