#!/usr/bin/env bash
# The Redis CPU of a cross-bank transfer against a same-bank one, measured directly on a private
# cluster of 3 masters (no replicas), 1,000 accounts, amounts of 1 to 10 cents so that nearly all
# complete, batched and unbatched, in alternated rounds (ROUNDS="1 2 3" for three). Release
# build; Redis CPU is the masters' main threads (a background thread frees what `init` unlinked).
#   13 banks:   the accounts in 13 banks, 12/13 of transfers cross banks;
#   one bank:   the same accounts in one bank: every transfer inside it, all on one master;
#   3 banks:    a third of them in each of 3 banks, one bank per master, each with its own
#               prefix and broker: every transfer inside a bank, spread over the masters as the
#               13-bank run is (the fair baseline: one busy master serves pipelined requests
#               with fewer system calls each).
# A cross-bank transfer's cost is (13 banks − same / 13) / (12/13); docs/BENCHMARKS.md has figures.
# MEASURE=instructions runs the masters under callgrind and counts the instructions they execute
# instead (the machine's load does not change those; 4x fewer transfers, some minutes). Under
# callgrind the servers run some 50x slower, so at batch 1 the courier, which gathers for 5 ms,
# carries smaller batches than at full speed: that figure is an upper bound.
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
mkdir one
awk -F, 'NR==1 {print; next} {print $1 ",Santander," $3 "," $4}' data/accounts_1000.csv > one/accounts.csv
printf 'bank\nSantander\n' > one/banks.csv

# The master that serves bank $1's slot: the others answer MOVED.
owner() {
  local p
  for p in "${CLUSTER_PORTS[@]}"; do
    if ! redis-cli -p "$p" EXISTS "{$1}" | grep -q MOVED; then echo "$p"; return; fi
  done
}
SPREAD=()
taken=" "
for i in $(seq 0 99); do
  p=$(owner "Bank$i")
  case "$taken" in *" $p "*) continue ;; esac
  taken="$taken$p "
  SPREAD+=("Bank$i")
  [ ${#SPREAD[@]} -eq 3 ] && break
done
for j in 0 1 2; do
  mkdir "spread$j"
  awk -F, -v b="${SPREAD[$j]}" -v j="$j" 'NR==1 {print; next} (NR - 2) % 3 == j {print $1 "," b "," $3 "," $4}' \
    data/accounts_1000.csv > "spread$j/accounts.csv"
  printf 'bank\n%s\n' "${SPREAD[$j]}" > "spread$j/banks.csv"
done

# What the masters have spent: seconds of their main threads' CPU, or (under callgrind) millions
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
FLAGS=(--transfers "$PER_WORKER" --min-amount 1 --max-amount 10 --seed 7 --quiet --json)
# What the masters spent per transfer of the brokers run by "$@" (writing run*.json): µs of CPU,
# or thousands of instructions.
measure() {
  rm -f run*.json
  local before after
  before=$(spent)
  "$@"
  after=$(spent)
  python3 - "$before" "$after" "${MEASURE:-cpu}" <<'PY'
import glob, json, sys
n = sum(d["completed"] + d["cancelled"] + d["in_flight"] for d in map(lambda f: json.load(open(f)), glob.glob("run*.json")))
spent = float(sys.argv[2]) if sys.argv[3] == "instructions" else float(sys.argv[2]) - float(sys.argv[1])
print(f"{spent / n * 1e6:.2f}")
PY
}
one_bank_run() { $BIN broker --workers 20 --batch "$1" "${FLAGS[@]}" > run.json; }
thirteen_run() { $BIN broker --workers 20 --batch "$1" "${FLAGS[@]}" > run.json; }
spread_run() {
  for j in 0 1 2; do $BIN broker --prefix "sp$j" --workers 7 --batch "$1" "${FLAGS[@]}" > "run$j.json" & done
  wait
}
for round in ${ROUNDS:-1 2}; do
  for batch in 1024 1; do
    $BIN init --accounts one/accounts.csv >/dev/null
    one=$(measure one_bank_run "$batch")
    for j in 0 1 2; do $BIN init --prefix "sp$j" --accounts "spread$j/accounts.csv" >/dev/null; done
    three=$(measure spread_run "$batch")
    $BIN init --accounts data/accounts_1000.csv >/dev/null
    mixed=$(measure thirteen_run "$batch")
    python3 - "$round" "$batch" "$UNIT" "$one" "$three" "$mixed" <<'PY'
import sys
r, b, unit, one, three, mixed = *sys.argv[1:4], *map(float, sys.argv[4:])
cross = lambda same: (mixed - same / 13) / (12 / 13)
print(f"round {r}, batch {b:>4}: {unit} per transfer: one bank {one:.2f}, 3 banks {three:.2f}, "
      f"13 banks {mixed:.2f}; a cross-bank transfer {cross(three) / three:.2f}x a same-bank one on 3 banks "
      f"({cross(one) / one:.2f}x on one bank)")
PY
  done
done
