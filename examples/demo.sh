#!/usr/bin/env bash
# The main job: a 3-node Clouds cluster on 127.0.0.1 doing real work, on the defaults.
# Builds the binaries; starts the cluster with `clouds cluster up`; creates objects on
# different nodes and invokes them from others (threads continue on the node that has the
# object, and `--trace` shows the path); runs the bank example (accounts spread over the
# nodes, concurrent atomic transfers, the total checked); kills a node with -9 in the
# middle of transfers, shows that its objects are unavailable while the rest works,
# restarts it, shows every object kept its committed state and the bank's total
# conserved; runs a job queue with workers (`clouds objects` lists its queues); puts a hot spot on node 1 and watches the cluster move objects off it
# (`clouds top`, `clouds why`); drains node 3 and undoes the drain. On the way, a second user gets a read-only capability, uses it, is refused a
# write, and loses it to a revocation. Stops the cluster at the end. Needs only cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building (cargo build -p objectd -p cli -p examples)"
cargo build -q -p objectd -p cli -p examples
BIN=target/debug
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clouds-demo.XXXXXX")
DIR="$WORK/cluster"
# The administrator's wallet: `cluster up` makes its key the cluster's admin.
export CLOUDS_WALLET="$WORK/wallet"
cleanup() { "$BIN/clouds" cluster down --dir "$DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap "exit 143" TERM INT

run() {
    echo "\$ clouds $*"
    "$BIN/clouds" "$@"
}

echo "== clouds cluster up --nodes 3 --dir $DIR"
"$BIN/clouds" cluster up --nodes 3 --dir "$DIR"
N1=$(sed -n 1p "$DIR/nodes" | cut -d' ' -f2)
N2=$(sed -n 2p "$DIR/nodes" | cut -d' ' -f2)
N3=$(sed -n 3p "$DIR/nodes" | cut -d' ' -f2)
run --node "$N1" nodes

echo "== objects on different nodes, invoked from others"
echo "   (pinned: the cluster never moves them on its own, so that this story can say where they are)"
run --node "$N1" create Counter --name counters/visits --on 1 --pinned
run --node "$N1" create Counter --name counters/bonus --on 2 --state '{"value": 100}' --pinned
run --node "$N3" invoke counters/visits.incr 5
run --node "$N2" invoke --trace counters/visits.add_from counters/bonus
run --node "$N2" create Log --name logs/events --on 3
run --node "$N1" invoke logs/events.append '{"user": "alice", "action": "login"}'
run --node "$N3" ls counters
echo "\$ clouds invoke counters/visits.incr not-a-number   (a bad argument: refused, nothing changes)"
"$BIN/clouds" --node "$N1" invoke counters/visits.incr not-a-number || echo "   (exit code $?)"

echo "== a live object moves: counters/bonus from node 2 to node 3 (precopy), calls go on"
run --node "$N1" migrate counters/bonus --to 3
run --node "$N1" describe counters/bonus
run --node "$N2" invoke counters/bonus.incr 1
echo "== a lazy move: logs/events from node 3 to node 1; its pages follow when touched"
run --node "$N2" migrate logs/events --to 1 --strategy lazy
run --node "$N2" invoke logs/events.read 0 10
echo "\$ clouds migrate counters/bonus --to 2 --strategy eager --json   (and back)"
"$BIN/clouds" --node "$N3" --json migrate counters/bonus --to 2 --strategy eager

echo "== capabilities: Bob, a second user with a wallet of his own, gets read access"
BOB="$WORK/bob-wallet"
BOB_KEY=$("$BIN/clouds" --wallet "$BOB" whoami)
echo "bob's key: $BOB_KEY"
VISITS=$("$BIN/clouds" --node "$N1" describe counters/visits | awk '/^id:/ {print $2}')
echo "\$ clouds cap grant counters/visits --rights read --expires 1h --to BOB_KEY"
TOKEN=$("$BIN/clouds" --node "$N1" cap grant counters/visits --rights read --expires 1h --to "$BOB_KEY")
echo "${TOKEN:0:60}..."
run --wallet "$BOB" cap import "$TOKEN"
run --node "$N2" --wallet "$BOB" invoke "$VISITS.get"
echo "\$ clouds --wallet BOB invoke $VISITS.incr 1   (bob may read, not write)"
"$BIN/clouds" --node "$N2" --wallet "$BOB" invoke "$VISITS.incr" 1 || echo "   (exit code $?: denied)"
run --node "$N1" cap revoke counters/visits
echo "\$ clouds --wallet BOB invoke $VISITS.get   (every earlier capability is void)"
"$BIN/clouds" --node "$N2" --wallet "$BOB" invoke "$VISITS.get" || echo "   (exit code $?: denied)"
run --node "$N3" invoke counters/visits.get

echo "== the bank example: 8 accounts over the 3 nodes, 200 concurrent transfers"
"$BIN/bank" --node "$N2" --accounts 8 --transfers 200

echo "== the bank again, 800 atomic transfers, and node 2 killed with -9 in the middle of them"
"$BIN/bank" --node "$N3" --accounts 8 --transfers 800 &
BANK=$!
sleep 1
echo "== kill -9 node 2 (no shutdown, no final flush)"
kill -9 "$(cat "$DIR/2.pid")"
sleep 0.2
echo "\$ clouds --node $N1 invoke counters/bonus.get   (counters/bonus lives on node 2)"
"$BIN/clouds" --node "$N1" invoke counters/bonus.get || echo "   (exit code $?: unavailable, said at once)"
run --node "$N3" invoke counters/visits.get

echo "== clouds cluster up again: restarts node 2 with its address and data"
"$BIN/clouds" cluster up --nodes 3 --dir "$DIR"
run --node "$N1" invoke counters/bonus.get
run --node "$N3" invoke logs/events.read 0 10
echo "== the bank's transfers go on once node 2 is back (retried with their call ids); the total:"
wait "$BANK"
echo "== the bank again, on the accounts that survived the crash"
"$BIN/bank" --node "$N3" --accounts 8 --transfers 50
run --node "$N2" nodes

echo "== a job queue: 3 queues spread over the nodes, each with its results beside it, 12 workers"
"$BIN/jobs" --node "$N1" --queues 3 --jobs 300 --workers 12
run --node "$N2" objects --class Queue

echo "== load balancing: 12 counters created on node 1, 24 threads calling them; node 1 moves some off by itself"
HOT=$("$BIN/hotspot" --node "$N1" --on 1 --objects 12 --threads 24 --seconds 8)
echo "$HOT"
run --node "$N2" top --iterations 1 --limit 5
MOVED=$(echo "$HOT" | awk '/ -> node-/ {print $1; exit}')
if [ -n "$MOVED" ]; then
    run --node "$N3" why "$MOVED"
fi
echo "== drain node 3 for maintenance: its objects move off while served, its home records go to another node"
run --node "$N1" drain 3
run --node "$N1" nodes
run --node "$N3" invoke counters/bonus.get
run --node "$N1" drain 3 --undo
run --node "$N2" decisions --limit 5

echo "== clouds cluster down --dir $DIR"
"$BIN/clouds" cluster down --dir "$DIR"
trap - EXIT
echo "== done; data and logs are in $DIR (remove with: rm -rf $WORK)"
