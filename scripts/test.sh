#!/usr/bin/env bash
# Install what is needed, then run every test of the workspace (unit, integration against
# SQLite and a PostgreSQL the harness starts itself, SIPp interop, whisper on real audio),
# plus the format and lint checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
