#!/usr/bin/env bash
# `make demo`: the whole job, end to end, on a fresh Debian machine.
#  1. builds the release binary (Rust must be installed: https://rustup.rs);
#  2. uses REDIS_URL, or redis://127.0.0.1:6379 if a Redis answers there; otherwise installs
#     redis-server if needed and starts a private one on a free port, stopped at the end;
#  3. generates 100 accounts, loads them, runs `consume` alongside the default broker run
#     (20 workers x 5000 transfers, atomic), then the seed's `watch` protocol on the same data,
#     verifies both with a final `consume`, and prints the two runs side by side;
#  4. serves the live dashboard (`interbank serve`) during the runs and prints its URL, and
#     leaves the stand-alone HTML report of the final verification in data/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
BIN=target/release/interbank

answers() { redis-cli -u "$1" PING 2>/dev/null | grep -q PONG; }

WORK=$(mktemp -d)
SERVER_PID=""
DASHBOARD_PID=""
cleanup() {
  [ -n "$DASHBOARD_PID" ] && kill "$DASHBOARD_PID" 2>/dev/null && { wait "$DASHBOARD_PID" 2>/dev/null || true; }
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && { wait "$SERVER_PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

URL=${REDIS_URL:-redis://127.0.0.1:6379}
if answers "$URL"; then
  echo "demo: using the Redis at $(echo "$URL" | sed -E 's#(://[^:/@]*:)[^@]*@#\1***@#')"
else
  port=""
  for p in $(seq 6390 6490); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
  done
  [ -n "$port" ] || { echo "error: no free port in 6390..6490 for a private redis-server" >&2; exit 1; }
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" &
  SERVER_PID=$!
  URL="redis://127.0.0.1:$port"
  for _ in $(seq 1 100); do answers "$URL" && break; sleep 0.05; done
  answers "$URL" || { echo "error: the private redis-server did not start; see $WORK/redis.log" >&2; exit 1; }
  echo "demo: no Redis was reachable; started a private redis-server at $URL"
fi
export REDIS_URL=$URL

$BIN gen --accounts 100 --seed 1
$BIN init --accounts data/accounts_100.csv

# The dashboard, on a free port of 127.0.0.1, for as long as the demo runs.
$BIN serve --listen "${DASHBOARD_LISTEN:-127.0.0.1:0}" 2> "$WORK/serve.log" &
DASHBOARD_PID=$!
for _ in $(seq 1 100); do grep -q 'http://' "$WORK/serve.log" && break; sleep 0.05; done
DASHBOARD_URL=$(grep -o 'http://[^ ]*' "$WORK/serve.log" | head -1 || true)
if [ -n "$DASHBOARD_URL" ]; then
  echo "demo: live dashboard at $DASHBOARD_URL (metrics at ${DASHBOARD_URL}metrics) while the demo runs"
else
  echo "demo: the dashboard did not start (see below); the demo goes on without it" >&2
  cat "$WORK/serve.log" >&2
fi

echo
echo "demo: broker (atomic, 20 workers x 5000 transfers) with consume following it live"
$BIN consume --accounts data/accounts_100.csv --quiet --json > "$WORK/live.json" &
CONSUME_PID=$!
$BIN broker --strategy atomic --quiet | tee "$WORK/atomic.txt"
live_rc=0
wait "$CONSUME_PID" || live_rc=$?

echo
echo "demo: the seed's protocol (watch) on the same data, for comparison"
$BIN broker --strategy watch --quiet | tee "$WORK/watch.txt"
rate() { awk '/throughput/ {print $2}' "$1"; }
awk -v a="$(rate "$WORK/atomic.txt")" -v w="$(rate "$WORK/watch.txt")" \
  'BEGIN { if (w > 0) printf "\ndemo: atomic made %.1fx the transfers per second of the seed protocol (watch)\n", a / w }'

echo
echo "demo: final check of both runs"
$BIN consume --accounts data/accounts_100.csv --quiet --idle-timeout 2 --report data/report.html
echo "demo: the report of this verification is $(pwd)/data/report.html (open it in a browser)"
if [ "$live_rc" != 0 ]; then
  echo "demo: the live consume did not verify:" >&2
  cat "$WORK/live.json" >&2
  exit 1
fi
echo "demo: the live consume verified the atomic run while it ran; the final consume verified both runs."
