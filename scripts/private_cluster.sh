# Sourced by the cluster scripts (cluster_demo, cluster_bench, cross_bank_ratio, inbox_size): a private Redis Cluster made of
# plain redis-server processes, each in its own folder under $WORK, on free ports 30101 to 31999
# whose cluster bus ports (port - 10000, set with --cluster-port) are free too: both below the
# kernel's range of ports for outgoing connections (32768 up), which a free-looking port there may
# be taken from between the check and the bind. Stopped by `stop_private_servers` (call it on exit).
#   private_setup               builds the release binary (sets BIN) and makes WORK, a folder
#                               removed on exit with every server started (call it first, from
#                               the repository's root)
#   start_private_cluster N R   starts N masters with R replicas each, sets CLUSTER_PORTS
#   start_private_server        starts one plain server, sets SERVER_PORT
# REDIS_SERVER_WRAPPER runs each server under a tool (valgrind, say); CLUSTER_NODE_TIMEOUT_MS
# sets the cluster's node timeout (2000 by default).
PRIVATE_PORTS=()

private_setup() {
  export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release --locked --quiet
  BIN=$PWD/target/release/interbank
  WORK=$(mktemp -d)
  trap 'stop_private_servers; rm -rf "$WORK"' EXIT
}

free_port() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

next_free_port() {
  local p
  for p in $(seq "${NEXT_PORT:-30101}" 31999); do
    if free_port "$p" && free_port $((p - 10000)); then NEXT_PORT=$((p + 1)); echo "$p"; return; fi
  done
  echo "error: no free port in 30101..31999" >&2
  return 1
}

start_one() { # port, extra redis-server flags...
  local p=$1; shift
  mkdir -p "$WORK/$p"
  ${REDIS_SERVER_WRAPPER:-} redis-server --port "$p" --bind 127.0.0.1 --dir "$WORK/$p" --logfile redis.log --daemonize yes \
    --save "" --appendonly no "$@"
  PRIVATE_PORTS+=("$p")
  for _ in $(seq 1 400); do redis-cli -p "$p" PING 2>/dev/null | grep -q PONG && return; sleep 0.05; done
  echo "error: redis-server on port $p did not start; see $WORK/$p/redis.log" >&2
  return 1
}

start_private_server() {
  SERVER_PORT=$(next_free_port)
  start_one "$SERVER_PORT"
}

start_private_cluster() { # masters, replicas per master
  local count=$(($1 * ($2 + 1))) p
  CLUSTER_PORTS=()
  for _ in $(seq 1 "$count"); do
    p=$(next_free_port)
    start_one "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port $((p - 10000)) \
      --cluster-node-timeout "${CLUSTER_NODE_TIMEOUT_MS:-2000}" --repl-diskless-sync-delay 0
    CLUSTER_PORTS+=("$p")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CLUSTER_PORTS[@]}") \
    --cluster-replicas "$2" --cluster-yes >"$WORK/create.log"
  # Whole when every node says so and every replica has its master's data: until a replica's
  # first sync ends, a broker's wait for a replica (WAIT 1) times out and leaves transfers in
  # flight.
  for _ in $(seq 1 200); do
    local ok=1
    for p in "${CLUSTER_PORTS[@]}"; do
      redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok || ok=0
      if redis-cli -p "$p" INFO replication | grep -q '^role:slave'; then
        redis-cli -p "$p" INFO replication | grep -q '^master_link_status:up' || ok=0
        redis-cli -p "$p" INFO replication | grep -q '^master_sync_in_progress:0' || ok=0
      fi
    done
    [ "$ok" -eq 1 ] && return
    sleep 0.1
  done
  echo "error: the private cluster was not whole in time; see $WORK/create.log" >&2
  return 1
}

stop_private_servers() {
  local p
  for p in "${PRIVATE_PORTS[@]}"; do redis-cli -p "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; done
}
