#!/usr/bin/env bash
# The Redis CPU of a cross-bank transfer against a same-bank one, measured directly on a private
# cluster of 3 masters (no replicas): the same 1,000 accounts in the same 13 banks (so the same
# placement over the masters), the same broker flags, only the pairs differ: every transfer
# inside a bank (`--pairs same-bank`) or every transfer between two banks (`--pairs cross-bank`).
# Amounts of 1 to 10 cents so that nearly all complete; batched and unbatched, in alternated
# rounds (ROUNDS="1 2 3" for three). Release build; Redis CPU is the masters' main threads (a
# background thread frees what `init` unlinked). docs/BENCHMARKS.md has figures.
# MEASURE=instructions runs the masters under callgrind and counts the instructions they execute
# instead (the machine's load does not change those; 4x fewer transfers, some minutes). Under
# callgrind the servers run some 50x slower, so at batch 1 the courier, which gathers for 10 ms,
# carries smaller batches than at full speed: that cross-bank figure is an upper bound.
#   bash scripts/cross_bank_ratio.sh
#   MEASURE=instructions ROUNDS=1 bash scripts/cross_bank_ratio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/private_cluster.sh
private_setup
PER_WORKER=4096
UNIT="µs of Redis CPU"
if [ "${MEASURE:-cpu}" = instructions ]; then
  export REDIS_SERVER_WRAPPER="valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$WORK/cg.%p"
  export CLUSTER_NODE_TIMEOUT_MS=60000
  PER_WORKER=1024
  UNIT="thousand instructions"
fi
start_private_cluster 3 0
PIDS=()
for p in "${CLUSTER_PORTS[@]}"; do PIDS+=("$(redis-cli -p "$p" INFO server | awk -F: '/^process_id:/ {print $2}' | tr -d '\r')"); done
export REDIS_URL="redis://127.0.0.1:${CLUSTER_PORTS[0]}"
cd "$WORK"
$BIN gen --accounts 1000 --seed 3 >/dev/null

# What the masters have spent: seconds of their main threads' CPU, or (under callgrind) billions
# of instructions since the last call, each node's counts dumped and zeroed.
spent() {
  local s=0 p pid
  if [ "${MEASURE:-cpu}" = instructions ]; then
    for pid in "${PIDS[@]}"; do
      callgrind_control -d "$pid" >/dev/null 2>&1
      s=$(python3 -c "print($s + $(awk '/^(summary|totals):/ {print $2; exit}' "$(ls -t "$WORK"/cg."$pid".* | head -1)") / 1e9)")
    done
  else
    for p in "${CLUSTER_PORTS[@]}"; do
      s=$(python3 -c "print($s + $(redis-cli -p "$p" INFO cpu | awk -F: '/used_cpu_(user|sys)_main_thread:/ {s+=$2} END {print s}'))")
    done
  fi
  echo "$s"
}
# What the masters spent per transfer of a broker run at batch $1 with pairs $2, on freshly
# loaded accounts: µs of CPU, or thousands of instructions.
measure() {
  $BIN init --accounts data/accounts_1000.csv >/dev/null
  local before after
  before=$(spent)
  $BIN broker --workers 20 --batch "$1" --pairs "$2" --transfers "$PER_WORKER" --min-amount 1 \
    --max-amount 10 --seed 7 --quiet --json > run.json
  after=$(spent)
  python3 - "$before" "$after" "${MEASURE:-cpu}" <<'PY'
import json, sys
d = json.load(open("run.json"))
n = d["completed"] + d["cancelled"] + d["in_flight"]
spent = float(sys.argv[2]) if sys.argv[3] == "instructions" else float(sys.argv[2]) - float(sys.argv[1])
print(f"{spent / n * 1e6:.2f}")
PY
}
for round in ${ROUNDS:-1 2}; do
  for batch in 1024 1; do
    same=$(measure "$batch" same-bank)
    cross=$(measure "$batch" cross-bank)
    python3 - "$round" "$batch" "$UNIT" "$same" "$cross" <<'PY'
import sys
r, b, unit, same, cross = *sys.argv[1:4], *map(float, sys.argv[4:])
print(f"round {r}, batch {b:>4}: {unit} per transfer: same-bank {same:.2f}, cross-bank {cross:.2f}; "
      f"a cross-bank transfer {cross / same:.2f}x a same-bank one")
PY
  done
done
