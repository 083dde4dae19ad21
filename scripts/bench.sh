#!/usr/bin/env bash
# Benchmarks Warden side by side with the Node peer (../shared/peers/node-sse):
# builds the release binaries, then runs warden-bench, which starts a fresh
# server per scenario and target on 127.0.0.1 and prints one Markdown table
# (also written to bench-results/latest.md). Bounded: a few minutes in all.
#   scripts/bench.sh                 # the full run
#   scripts/bench.sh --quick         # about a minute
#   scripts/bench.sh --max           # also idle connections at the machine's limit
#   scripts/bench.sh --only warden   # no Node peer
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
exec target/release/warden-bench "$@"
