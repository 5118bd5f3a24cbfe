#!/usr/bin/env bash
# `make cluster-demo`: the whole job on a private Redis Cluster of 3 masters with a replica each.
#  1. builds the release binary and installs redis-server if it is missing (scripts/setup.sh);
#  2. starts six redis-server processes in cluster mode on free ports, each in its own folder,
#     and joins them with `redis-cli --cluster create --cluster-replicas 1`;
#  3. generates 1,000 accounts, loads them (each bank on the shard of its hash tag), runs the
#     broker (20 workers x 1000 transfers: cross-bank transfers in three steps across shards)
#     with `consume` following every bank's stream live, runs `interbank recover`, and verifies
#     the final state with `consume`: every account, bank, interbank pair, outbox and in-flight
#     total against the replay, and money conserved;
#  4. stops the cluster and removes its folders, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
BIN=$PWD/target/release/interbank

WORK=$(mktemp -d)
PORTS=()
cleanup() {
  for p in "${PORTS[@]}"; do redis-cli -p "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Six free ports below 55535 (the cluster bus listens on port + 10000), with their bus ports free.
for p in $(seq 30101 30500); do
  if free "$p" && free $((p + 10000)); then PORTS+=("$p"); fi
  [ "${#PORTS[@]}" -eq 6 ] && break
done
[ "${#PORTS[@]}" -eq 6 ] || { echo "error: no six free ports in 30101..30500" >&2; exit 1; }

for p in "${PORTS[@]}"; do
  mkdir -p "$WORK/$p"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$WORK/$p" --logfile redis.log --daemonize yes \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    --save "" --appendonly no
done
for p in "${PORTS[@]}"; do
  for _ in $(seq 1 100); do redis-cli -p "$p" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done
done
nodes=()
for p in "${PORTS[@]}"; do nodes+=("127.0.0.1:$p"); done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$WORK/create.log"
for _ in $(seq 1 200); do
  ok=1
  for p in "${PORTS[@]}"; do redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok || ok=0; done
  [ "$ok" -eq 1 ] && break
  sleep 0.1
done
export REDIS_URL="redis://127.0.0.1:${PORTS[0]}"
echo "cluster-demo: a private cluster of 3 masters + 3 replicas at ports ${PORTS[*]}"

cd "$WORK"
$BIN gen --accounts 1000 --seed 2
$BIN init --accounts data/accounts_1000.csv

echo
echo "cluster-demo: broker (atomic, 20 workers x 1000 transfers) with consume following every bank's stream"
$BIN consume --accounts data/accounts_1000.csv --quiet --json >live.json &
CONSUME_PID=$!
$BIN broker --workers 20 --transfers 1000 --quiet
live_rc=0
wait "$CONSUME_PID" || live_rc=$?

echo
$BIN recover
echo
echo "cluster-demo: final check"
final_rc=0
$BIN consume --accounts data/accounts_1000.csv --restart --quiet || final_rc=$?
[ "$live_rc" -eq 0 ] && echo "cluster-demo: the live consume verified the run while it ran; the final consume verified it after recovery."
exit "$final_rc"
