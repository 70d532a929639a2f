#!/usr/bin/env bash
# The 10,000-call batch (benches/outbound_batch.rs) on SQLite or on a throwaway PostgreSQL.
#   benches/outbound_batch.sh sqlite|postgres
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/benches/common.sh"
if [[ "${1:-sqlite}" == postgres ]]; then
    . "$ROOT/benches/pg.sh" "$WORK"
    export VOXBRIDGE_BENCH_DB="$PG_URL"
fi
cargo bench --quiet --manifest-path "$ROOT/Cargo.toml" --bench outbound_batch
