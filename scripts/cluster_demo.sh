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
source scripts/private_cluster.sh
private_setup
start_private_cluster 3 1
PORTS=("${CLUSTER_PORTS[@]}")
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
