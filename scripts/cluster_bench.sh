#!/usr/bin/env bash
# Redis CPU per transfer on one server and on a local cluster of 3 masters (no replicas, so no
# WAIT), side by side in one run, on the same data set and the same broker flags, release build.
# Prints, per setup: transfers/s, Redis CPU seconds per 1,000 transfers summed over the servers
# and per server, and for the cluster the share of cross-bank transfers. Usage:
#   bash scripts/cluster_bench.sh [workers] [transfers per worker] [batch]
# (docs/BENCHMARKS.md, "Redis Cluster", has a run's figures.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
BIN=$PWD/target/release/interbank
WORKERS=${1:-20}
TRANSFERS=${2:-2000}
BATCH=${3:-128}

WORK=$(mktemp -d)
source scripts/private_cluster.sh
trap 'stop_private_servers; rm -rf "$WORK"' EXIT
cpu() { redis-cli -p "$1" INFO cpu | awk -F: '/used_cpu_(user|sys):/ {s+=$2} END {printf "%.3f", s}'; }
start_private_server
SINGLE=$SERVER_PORT
start_private_cluster 3 0
CLUSTER=("${CLUSTER_PORTS[@]}")

cd "$WORK"
$BIN gen --accounts 1000 --seed 3 >/dev/null
measure() { # name, url, batch, servers...
  local name=$1 url=$2 batch=$3; shift 3
  REDIS_URL=$url $BIN init --accounts data/accounts_1000.csv >/dev/null
  local before=() after=() p
  for p in "$@"; do before+=("$(cpu "$p")"); done
  local summary
  summary=$(REDIS_URL=$url $BIN broker --workers "$WORKERS" --transfers "$TRANSFERS" --batch "$batch" --seed 7 --quiet --json)
  for p in "$@"; do after+=("$(cpu "$p")"); done
  local decided rate
  decided=$(echo "$summary" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["completed"]+s["cancelled"]+s["in_flight"])')
  rate=$(echo "$summary" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["transfers_per_s"]))')
  local total=0 per=() i
  for i in "${!before[@]}"; do
    local d
    d=$(python3 -c "print(${after[$i]} - ${before[$i]})")
    per+=("$(python3 -c "print(round($d * 1000 / $decided, 4))")")
    total=$(python3 -c "print($total + $d)")
  done
  printf '%-28s %10s transfers/s  Redis CPU s/1000: %.4f summed (%s per server)\n' \
    "$name" "$rate" "$(python3 -c "print($total * 1000 / $decided)")" "${per[*]}"
}
measure "single server, batch 1" "redis://127.0.0.1:$SINGLE" 1 "$SINGLE"
measure "cluster, batch 1" "redis://127.0.0.1:${CLUSTER[0]}" 1 "${CLUSTER[@]}"
measure "single server, batch $BATCH" "redis://127.0.0.1:$SINGLE" "$BATCH" "$SINGLE"
measure "cluster, batch $BATCH" "redis://127.0.0.1:${CLUSTER[0]}" "$BATCH" "${CLUSTER[@]}"
events=$(for p in "${CLUSTER[@]}"; do for k in $(redis-cli -p "$p" --scan --pattern 'banks_transfers:*:events'); do redis-cli -p "$p" XLEN "$k"; done; done | awk '{s+=$1} END {print s}')
echo "cluster, last run: $events stream entries for $((WORKERS * TRANSFERS)) transfers (a cross-bank transfer writes two and its share of one settlement per call, one inside a bank one)"
