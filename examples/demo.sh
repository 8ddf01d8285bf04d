#!/usr/bin/env bash
# The main job: one objectd node doing real work on the embedded defaults.
# Builds the binaries, starts a node on 127.0.0.1 with a fresh data directory, creates and
# invokes objects with the `clouds` command line, runs the bank example (concurrent
# transfers between accounts), kills the node with -9, restarts it, and shows that every
# object kept its committed state. Stops the node at the end. Needs only cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building (cargo build -p objectd -p examples)"
cargo build -q -p objectd -p examples
BIN=target/debug
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clouds-demo.XXXXXX")
DATA="$WORK/node-1"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

start_node() {
    "$BIN/objectd" --id 1 --listen 127.0.0.1:0 --data "$DATA" >"$WORK/objectd.out" 2>"$WORK/objectd.log" &
    PID=$!
    for _ in $(seq 1 100); do
        if grep -q "listening on" "$WORK/objectd.out"; then
            export CLOUDS_NODE=$(awk '{print $NF}' "$WORK/objectd.out")
            echo "== objectd node-1 (pid $PID) listening on $CLOUDS_NODE, data in $DATA"
            return
        fi
        sleep 0.1
    done
    echo "objectd did not start; its log:" >&2
    cat "$WORK/objectd.log" >&2
    exit 1
}

run() {
    echo "\$ clouds $*"
    "$BIN/clouds" "$@"
}

start_node
run create Counter --name counters/visits
run invoke counters/visits.incr 5
run create Counter --name counters/bonus --state '{"value": 100}'
run invoke counters/visits.add_from counters/bonus
run create Map --name config/settings
run invoke config/settings.put colour '"blue"'
run invoke config/settings.put limits '{"max": 10}'
run invoke config/settings.range '""' null 10
run create Log --name logs/events
run invoke logs/events.append '"started"'
run invoke logs/events.append '{"user": "alice", "action": "login"}'
echo "\$ clouds invoke counters/visits.incr not-a-number   (a bad argument: refused, nothing changes)"
"$BIN/clouds" invoke counters/visits.incr not-a-number || echo "   (exit code $?)"
run ls
run describe counters/visits

echo "== the bank example: 8 accounts, 200 concurrent transfers (threads moving between objects)"
"$BIN/bank" --accounts 8 --transfers 200

echo "== kill -9 the node (no shutdown, no final flush), then restart it on the same data"
kill -9 "$PID"
wait "$PID" 2>/dev/null || true
start_node
run invoke counters/visits.get
run invoke config/settings.get limits
run invoke logs/events.read 0 10
echo "== the bank again, on the accounts that survived the crash"
"$BIN/bank" --accounts 8 --transfers 50
run status

kill -TERM "$PID"
wait "$PID" 2>/dev/null || true
PID=""
echo "== node stopped cleanly; data is in $DATA (remove it with: rm -rf $WORK)"
