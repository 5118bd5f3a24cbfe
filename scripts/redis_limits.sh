#!/usr/bin/env bash
# What Redis itself loses when the working set grows from 100 keys to 1,000,000, with no interbank
# code in the way: redis-benchmark (-c 50 -P 16) against one private redis-server holding 1,000,000
# integer keys, running `GET` and scripts/reference_transfer.lua between two random keys of the
# first 100 or of all 1,000,000, alternated three times. Prints Markdown (medians) for
# docs/BENCHMARKS.md.
#   bash scripts/redis_limits.sh
set -euo pipefail
cd "$(dirname "$0")"
KEYSPACE=1000000
ROUNDS=3
WORK=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" --logfile redis.log &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.05; done

# redis-benchmark writes __rand_int__ as 12 zero-padded digits: the same names here.
redis-cli -p "$port" EVAL "for i = 0, $KEYSPACE - 1 do
  redis.call('SET', string.format('acct:%012d', i), 100000000) end" 0 >/dev/null
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat reference_transfer.lua)")

rps() { # keyspace, requests, command...
  local r=$1 n=$2; shift 2
  redis-benchmark -p "$port" -c 50 -P 16 -n "$n" -r "$r" --csv "$@" | tail -1 | cut -d, -f2 | tr -d '"'
}
transfer() {
  rps "$1" 300000 EVALSHA "$sha" 8 x:events x:unused 'x:{A}:balance' 'x:{A}:interbank' \
    'x:{B}:balance' 'x:{B}:interbank' 'acct:__rand_int__' 'acct:__rand_int__' \
    p 1 A B ES9121000418450200051332 ES7921000813610123456789 1
  redis-cli -p "$port" DEL x:events >/dev/null
}

declare -A runs
for _ in $(seq 1 "$ROUNDS"); do
  for r in 100 "$KEYSPACE"; do
    runs[get,$r]+="$(rps "$r" 2000000 GET acct:__rand_int__) "
    runs[transfer,$r]+="$(transfer "$r") "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
echo "| redis-benchmark -c 50 -P 16 | 100 keys | $KEYSPACE keys | ratio |"
echo "|---|---|---|---|"
for what in get transfer; do
  small=$(echo "${runs[$what,100]}" | median)
  big=$(echo "${runs[$what,$KEYSPACE]}" | median)
  label=$([ "$what" = get ] && echo "GET of a random key" || echo "reference_transfer.lua between two random keys")
  python3 -c "print(f'| $label | {$small:,.0f}/s | {$big:,.0f}/s | {$big / $small:.2f} |')"
done
