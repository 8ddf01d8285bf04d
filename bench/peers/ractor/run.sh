#!/usr/bin/env bash
# ractor_cluster null calls between two processes on this machine (the peer row of the
# benchmark section "256 concurrent callers"). Builds this crate (not a workspace member).
# Twice: as tokio runs by default (a thread per core in each process), and with one thread
# per process, as `bench cluster` runs its client and `clouds cluster up` its nodes on 2
# cores (`TOKIO_WORKER_THREADS=1`).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
bin=./target/release/ractor-peer
echo "| what | threads per process | calls/s | mean latency |"
echo "|---|---|---:|---:|"
for threads in default 1; do
    if [ "$threads" = 1 ]; then export TOKIO_WORKER_THREADS=1; fi
    "$bin" server 17301 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    sleep 1
    "$bin" client 17302 17301 | sed "s/^| \([^|]*\) |/| \1 | $threads |/"
    kill $server 2>/dev/null || true
    wait $server 2>/dev/null || true
done
