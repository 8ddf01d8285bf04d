#!/usr/bin/env bash
# ractor_cluster null calls between two processes on this machine (the peer row of the
# benchmark section "256 concurrent callers"). Builds this crate (not a workspace member).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
bin=./target/release/ractor-peer
"$bin" server 17301 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
echo "| what | calls/s | mean latency |"
echo "|---|---:|---:|"
"$bin" client 17302 17301
