#!/usr/bin/env bash
# Redis's cost per transfer on one server and on a local cluster of 3 masters (no replicas, so no
# WAIT), side by side, on the same data set (1,000 accounts) and the same broker flags, release
# build, in alternated rounds (ROUNDS="1 2 3" for three; one by default). Prints, per setup:
# transfers/s and Redis's cost per transfer summed over the servers and per server, then per
# round the cluster's cost over the single server's, unbatched and batched. Usage:
#   bash scripts/cluster_bench.sh [workers] [transfers per worker] [batch]
# The cost is the servers' main-thread CPU (a background thread frees what `init` unlinked), in
# µs. MEASURE=instructions runs every server under callgrind and counts the instructions they
# execute instead, which the machine's load does not change (some minutes; under callgrind the
# servers run some 50x slower, so at batch 1 the courier, which gathers for 10 ms of real time,
# carries smaller batches than at full speed: the cluster's figure is an upper bound).
# RATE=25000 runs every broker at that many transfers/s (`broker --rate`) instead of as fast as
# it goes: both setups then do the same work per second, where at full speed the single server
# runs saturated, coalescing many commands per read, and the cluster's masters do not.
# LINGER_MS=20 passes `--linger-ms 20` (the cluster's courier at batch 1; 10 ms by default).
# (docs/BENCHMARKS.md, "Redis Cluster", has figures.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/private_cluster.sh
private_setup
WORKERS=${1:-20}
TRANSFERS=${2:-2000}
BATCH=${3:-128}
UNIT="µs of main-thread CPU"
if [ "${MEASURE:-cpu}" = instructions ]; then
  export REDIS_SERVER_WRAPPER="valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$WORK/cg.%p"
  export CLUSTER_NODE_TIMEOUT_MS=60000
  UNIT="thousand instructions"
fi
start_private_server
SINGLE=$SERVER_PORT
start_private_cluster 3 0
CLUSTER=("${CLUSTER_PORTS[@]}")
declare -A PID
for p in "$SINGLE" "${CLUSTER[@]}"; do
  PID[$p]=$(redis-cli -p "$p" INFO server | awk -F: '/^process_id:/ {print $2}' | tr -d '\r')
done

# What server $1 has spent: seconds of main-thread CPU so far, or (under callgrind) billions of
# instructions since the last call, its counts dumped and zeroed.
spent() {
  if [ "${MEASURE:-cpu}" = instructions ]; then
    callgrind_control -d "${PID[$1]}" >/dev/null 2>&1
    python3 -c "print($(awk '/^(summary|totals):/ {print $2; exit}' "$(ls -t "$WORK"/cg."${PID[$1]}".* | head -1)") / 1e9)"
  else
    redis-cli -p "$1" INFO cpu | awk -F: '/used_cpu_(user|sys)_main_thread:/ {s+=$2} END {print s}'
  fi
}

cd "$WORK"
$BIN gen --accounts 1000 --seed 3 >/dev/null
# Runs the broker on url $2 at batch $3 and prints setup $1's line; leaves its cost per transfer,
# summed over the servers (the rest of the arguments), in COST.
measure() {
  local name=$1 url=$2 batch=$3; shift 3
  REDIS_URL=$url $BIN init --accounts data/accounts_1000.csv >/dev/null
  local before=() after=() p
  for p in "$@"; do before+=("$(spent "$p")"); done
  local summary
  local flags=()
  if [ -n "${RATE:-}" ]; then flags=(--rate "$RATE"); fi
  if [ -n "${LINGER_MS:-}" ]; then flags+=(--linger-ms "$LINGER_MS"); fi
  summary=$(REDIS_URL=$url $BIN broker --workers "$WORKERS" --transfers "$TRANSFERS" --batch "$batch" --seed 7 "${flags[@]}" --quiet --json)
  for p in "$@"; do after+=("$(spent "$p")"); done
  COST=$(python3 - "$name" "$UNIT" "$summary" "${MEASURE:-cpu}" "${before[*]}" "${after[*]}" <<'PY'
import json, sys
name, unit, summary, measure = sys.argv[1:5]
before, after = (list(map(float, a.split())) for a in sys.argv[5:7])
s = json.loads(summary)
decided = s["completed"] + s["cancelled"] + s["in_flight"]
per = [(a if measure == "instructions" else a - b) * 1e6 / decided for b, a in zip(before, after)]
print(f"{name:<28} {round(s['transfers_per_s']):>8} transfers/s  {unit} per transfer: {sum(per):.2f} summed "
      f"({', '.join(f'{x:.2f}' for x in per)} per server)", file=sys.stderr)
print(sum(per))
PY
)
}
for round in ${ROUNDS:-1}; do
  measure "single server, batch 1" "redis://127.0.0.1:$SINGLE" 1 "$SINGLE" 2>&1 >/dev/null
  single1=$COST
  measure "cluster, batch 1" "redis://127.0.0.1:${CLUSTER[0]}" 1 "${CLUSTER[@]}" 2>&1 >/dev/null
  cluster1=$COST
  measure "single server, batch $BATCH" "redis://127.0.0.1:$SINGLE" "$BATCH" "$SINGLE" 2>&1 >/dev/null
  singlen=$COST
  measure "cluster, batch $BATCH" "redis://127.0.0.1:${CLUSTER[0]}" "$BATCH" "${CLUSTER[@]}" 2>&1 >/dev/null
  clustern=$COST
  python3 -c "print('round $round: the cluster over the single server: %.2fx at batch 1, %.2fx at batch $BATCH' % ($cluster1 / $single1, $clustern / $singlen))"
done
events=$(for p in "${CLUSTER[@]}"; do for k in $(redis-cli -p "$p" --scan --pattern 'banks_transfers:*:events'); do redis-cli -p "$p" XLEN "$k"; done; done | awk '{s+=$1} END {print s}')
echo "cluster, last run: $events stream entries for $((WORKERS * TRANSFERS)) transfers at batch $BATCH (one per transfer inside a bank; a cross-bank transfer its share of its call's debits entry (its own entry at batch 1), of one credits entry and of one settlement)"
