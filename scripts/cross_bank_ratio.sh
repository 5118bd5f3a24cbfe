#!/usr/bin/env bash
# The Redis CPU of a cross-bank transfer against a same-bank one, measured directly on a private
# cluster of 3 masters (no replicas): the same 1,000 accounts loaded once in one bank (every
# transfer inside it) and once in 13 banks (12/13 of transfers cross banks), small amounts so
# that nearly all complete, batched and unbatched, alternated rounds (ROUNDS="1 2 3" for three).
# Release build; Redis CPU is the masters' main threads.
#   bash scripts/cross_bank_ratio.sh
# A cross-bank transfer's cost is (mixed − same/13) / (12/13); docs/BENCHMARKS.md has figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
source scripts/private_cluster.sh
WORK=$(mktemp -d)
trap 'stop_private_servers; rm -rf "$WORK"' EXIT
start_private_cluster 3 0
BIN=$PWD/target/release/interbank
export REDIS_URL="redis://127.0.0.1:${CLUSTER_PORTS[0]}"
cd "$WORK"
$BIN gen --accounts 1000 --seed 3 >/dev/null
mkdir one
awk -F, 'NR==1 {print; next} {print $1 ",Santander," $3 "," $4}' data/accounts_1000.csv > one/accounts.csv
printf 'bank\nSantander\n' > one/banks.csv
# The main threads' CPU: a background thread frees what `init` unlinked, and that is no transfer's.
cpu() { local s=0; for p in "${CLUSTER_PORTS[@]}"; do s=$(python3 -c "print($s + $(redis-cli -p $p INFO cpu | awk -F: '/used_cpu_(user|sys)_main_thread:/ {s+=$2} END {print s}'))"); done; echo $s; }
run() { # name, accounts, batch
  $BIN init --accounts "$2" >/dev/null
  local before after
  before=$(cpu)
  $BIN broker --workers 20 --transfers 4096 --batch "$3" --min-amount 1 --max-amount 10 --seed 7 --quiet --json > run.json
  after=$(cpu)
  python3 - "$1" "$before" "$after" <<'PY'
import json, sys
d = json.load(open("run.json"))
n = d["completed"] + d["cancelled"] + d["in_flight"]
print(f"{sys.argv[1]:40s} {n} transfers, {d['completed']} completed, Redis CPU {(float(sys.argv[3]) - float(sys.argv[2])) / n * 1e6:.2f} us/transfer")
PY
}
for round in ${ROUNDS:-1 2}; do
  for batch in 1024 1; do
    run "one bank (same-bank only), batch $batch" one/accounts.csv $batch
    run "13 banks (12/13 cross-bank), batch $batch" data/accounts_1000.csv $batch
  done
done
