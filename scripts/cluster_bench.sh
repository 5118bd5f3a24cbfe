#!/usr/bin/env bash
# Redis CPU per transfer on one server and on a local cluster of 3 masters (no replicas, so no
# WAIT), side by side in one run, on the same data set and the same broker flags, release build.
# Prints, per setup: transfers/s, Redis CPU seconds per 1,000 transfers summed over the servers
# and per server, and for the cluster the share of cross-bank transfers. Usage:
#   bash scripts/cluster_bench.sh [workers] [transfers per worker]
# (docs/BENCHMARKS.md, "Redis Cluster", has a run's figures.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
BIN=$PWD/target/release/interbank
WORKERS=${1:-20}
TRANSFERS=${2:-2000}

WORK=$(mktemp -d)
PORTS=()
cleanup() {
  for p in "${PORTS[@]}"; do redis-cli -p "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $(seq 30601 31000); do
  if free "$p" && free $((p + 10000)); then PORTS+=("$p"); fi
  [ "${#PORTS[@]}" -eq 4 ] && break
done
start() { # port, extra flags...
  local p=$1; shift
  mkdir -p "$WORK/$p"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$WORK/$p" --logfile redis.log --daemonize yes \
    --save "" --appendonly no "$@"
  for _ in $(seq 1 100); do redis-cli -p "$p" PING 2>/dev/null | grep -q PONG && return; sleep 0.05; done
}
cpu() { redis-cli -p "$1" INFO cpu | awk -F: '/used_cpu_(user|sys):/ {s+=$2} END {printf "%.3f", s}'; }

SINGLE=${PORTS[0]}
start "$SINGLE"
CLUSTER=("${PORTS[@]:1:3}")
for p in "${CLUSTER[@]}"; do
  start "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CLUSTER[@]}") --cluster-yes >"$WORK/create.log"
for _ in $(seq 1 200); do
  ok=1
  for p in "${CLUSTER[@]}"; do redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok || ok=0; done
  [ "$ok" -eq 1 ] && break
  sleep 0.1
done

cd "$WORK"
$BIN gen --accounts 1000 --seed 3 >/dev/null
measure() { # name, url, servers...
  local name=$1 url=$2; shift 2
  REDIS_URL=$url $BIN init --accounts data/accounts_1000.csv >/dev/null
  local before=() after=() p
  for p in "$@"; do before+=("$(cpu "$p")"); done
  local summary
  summary=$(REDIS_URL=$url $BIN broker --workers "$WORKERS" --transfers "$TRANSFERS" --seed 7 --quiet --json)
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
measure "single server" "redis://127.0.0.1:$SINGLE" "$SINGLE"
measure "cluster, 3 masters" "redis://127.0.0.1:${CLUSTER[0]}" "${CLUSTER[@]}"
events=$(for p in "${CLUSTER[@]}"; do for k in $(redis-cli -p "$p" --scan --pattern 'banks_transfers:*:events'); do redis-cli -p "$p" XLEN "$k"; done; done | awk '{s+=$1} END {print s}')
echo "cluster: $events stream entries for $((WORKERS * TRANSFERS)) transfers (a cross-bank transfer writes three, one inside a bank one)"
