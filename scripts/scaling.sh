#!/usr/bin/env bash
# Scaling figures for docs/BENCHMARKS.md: the atomic broker on one private redis-server, varying
# one thing at a time, each run verified by consume at the end. Release build; prints Markdown.
#   bash scripts/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
BIN=$PWD/target/release/interbank
WORK=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" --logfile redis.log &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
export REDIS_URL="redis://127.0.0.1:$port"
for _ in $(seq 1 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.05; done
cd "$WORK"

redis_cpu_s() { redis-cli -p "$port" INFO cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {print s}'; }
row() { # label, broker flags...
  local label=$1; shift
  local before after
  before=$(redis_cpu_s)
  "$BIN" broker --quiet --json "$@" > run.json
  after=$(redis_cpu_s)
  python3 - "$label" "$before" "$after" <<'PY'
import json, sys
d = json.load(open("run.json"))
n = max(1, d['completed'] + d['cancelled'])
cpu_us = (float(sys.argv[3]) - float(sys.argv[2])) / n * 1e6
print(f"| {sys.argv[1]} | {d['transfers_per_s']:,.0f} | {d['latency_p50_ms']:.3f} | {d['latency_p99_ms']:.3f} | {d['redis_calls'] / n:.3f} | {100 * d['completed'] / n:.0f}% | {cpu_us:.1f} |")
PY
}
verify() { "$BIN" consume --accounts "$1" --quiet --idle-timeout 1 --checkpoint-interval 0 | head -1; }

echo "| run | transfers/s | p50 ms | p99 ms | round trips/transfer | completed | Redis CPU µs/transfer |"
echo "|---|---|---|---|---|---|---|"
for n in 100 10000 1000000; do
  "$BIN" gen --accounts "$n" --seed 1 > /dev/null
  "$BIN" init --accounts "data/accounts_$n.csv" > /dev/null
  row "$n accounts, 20 workers, batch 1" --workers 20 --transfers 5000
  row "$n accounts, 20 workers, batch 128" --workers 20 --transfers 5000 --batch 128
  verify "data/accounts_$n.csv" >&2
done
"$BIN" init --accounts data/accounts_100.csv > /dev/null
row "100 accounts, 1 worker, batch 1" --workers 1 --transfers 20000
row "100 accounts, 20 workers, batch 1" --workers 20 --transfers 5000
row "100 accounts, 200 workers, batch 1" --workers 200 --transfers 500
row "100 accounts, 20 workers, --group-commit" --workers 20 --transfers 5000 --group-commit
row "100 accounts, 200 workers, --group-commit" --workers 200 --transfers 500 --group-commit
for b in 1 16 128 1024; do
  row "100 accounts, 20 workers, batch $b" --workers 20 --transfers 5000 --batch "$b"
done
verify data/accounts_100.csv >&2

# 100 against 1,000,000 accounts, alternated on the same server (one prefix each), so that the
# machine's noise falls on both alike. Amounts up to 70.00 instead of 50.00 give the 1,000,000
# accounts about the share of completed transfers of the 100, whose balances the runs drain.
echo "| **alternated** | | | | | | |"
INTERBANK_PREFIX=flat_100 "$BIN" init --accounts data/accounts_100.csv > /dev/null
INTERBANK_PREFIX=flat_1m "$BIN" init --accounts data/accounts_1000000.csv > /dev/null
for round in 1 2 3; do
  INTERBANK_PREFIX=flat_100 row "100 accounts, round $round" --workers 20 --transfers 5000
  INTERBANK_PREFIX=flat_1m row "1,000,000 accounts, round $round" --workers 20 --transfers 5000
  INTERBANK_PREFIX=flat_1m row "1,000,000 accounts, --max-amount 7000, round $round" \
    --workers 20 --transfers 5000 --max-amount 7000
done
INTERBANK_PREFIX=flat_100 verify data/accounts_100.csv >&2
INTERBANK_PREFIX=flat_1m verify data/accounts_1000000.csv >&2
