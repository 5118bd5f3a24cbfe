#!/usr/bin/env bash
# How many credits' answers the inboxes hold during and after a broker run on a private cluster
# of 3 masters with a replica each, release build: sampled every 0.5 s while the broker runs
# (the peak), then after it ended (its last recovery pass forgets what it settled), with the
# masters' used memory. Usage:
#   bash scripts/inbox_size.sh [workers] [transfers per worker] [batch]
# (docs/BENCHMARKS.md, "Keeping the inboxes small", has a run's figures.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/private_cluster.sh
private_setup
WORKERS=${1:-20}
TRANSFERS=${2:-10000}
BATCH=${3:-1}
start_private_cluster 3 1
MASTERS=()
for p in "${CLUSTER_PORTS[@]}"; do
  redis-cli -p "$p" ROLE | head -1 | grep -q master && MASTERS+=("$p")
done
URL="redis://127.0.0.1:${MASTERS[0]}"

answers() { # the inbox fields that are answers (A|id; not epoch or about), summed over the masters
  local p k total=0
  for p in "${MASTERS[@]}"; do
    # Bank names may hold spaces: one key per line.
    while IFS= read -r k; do
      total=$((total + $(redis-cli -p "$p" HLEN "$k") - $(redis-cli -p "$p" HEXISTS "$k" epoch) - $(redis-cli -p "$p" HEXISTS "$k" about)))
    done < <(redis-cli -p "$p" --scan --pattern 'banks_transfers:*:inbox')
  done
  echo "$total"
}
memory() { # used_memory summed over the masters, in MB
  local p total=0
  for p in "${MASTERS[@]}"; do
    total=$((total + $(redis-cli -p "$p" INFO memory | awk -F: '/^used_memory:/ {print $2+0}')))
  done
  python3 -c "print(round($total / 1e6, 1))"
}

cd "$WORK"
$BIN gen --accounts 1000 --seed 3 >/dev/null
REDIS_URL=$URL $BIN init --accounts data/accounts_1000.csv >/dev/null
echo "loaded: used memory $(memory) MB on the masters"
REDIS_URL=$URL $BIN broker --workers "$WORKERS" --transfers "$TRANSFERS" --batch "$BATCH" --seed 7 \
  --quiet --json >summary.json &
BROKER=$!
peak=0
while kill -0 "$BROKER" 2>/dev/null; do
  now=$(answers)
  [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.5
done
wait "$BROKER"
python3 - summary.json <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
r = s["recovered"]["trimmed"]
print(f"broker: {s['completed'] + s['cancelled']} decided, {s['transfers_per_s']:.0f} transfers/s, "
      f"{s['in_flight']} left in flight, {r['forgotten']} answers forgotten by its passes, "
      f"{s['stale_credits']} credits refused as stale")
EOF
echo "inbox answers: peak $peak while the broker ran, $(answers) after it; used memory $(memory) MB"
