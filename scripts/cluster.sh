#!/usr/bin/env bash
# A bms-keys cluster on this machine: PostgreSQL (the machine's cluster, database bms_cluster), one
# Redis, three instances of the release build, and nginx in front of them (round robin, the
# configuration in scripts/cluster/nginx.conf). Prints the URL and the demo users' passwords; Ctrl-C
# stops everything it started. Needs root for PostgreSQL (scripts/start-test-postgres.sh) and
# nginx, redis-server (apt-get install nginx redis-server).
#
#   scripts/cluster.sh                 # http://127.0.0.1:8080, instances on 8081-8083
#   BMS_CLUSTER_PORT=9000 scripts/cluster.sh
#   BMS_CLUSTER_INSTANCES=1 scripts/cluster.sh   # the same, one instance (for comparisons)
set -euo pipefail
cd "$(dirname "$0")/.."

port=${BMS_CLUSTER_PORT:-8080}
instances=${BMS_CLUSTER_INSTANCES:-3}
redis_port=${BMS_CLUSTER_REDIS_PORT:-$((port + 100))}
extra=(${BMS_CLUSTER_FLAGS:-})
for tool in nginx redis-server; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed: apt-get install nginx redis-server" >&2; exit 1; }
done

cargo build --release --locked --quiet
bin=$PWD/target/release/bms-keys
run=$(mktemp -d /tmp/bms-cluster.XXXXXX)
data=${BMS_CLUSTER_DATA:-$PWD/data/cluster}
mkdir -p "$data"
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping the cluster"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap stop INT TERM EXIT

source scripts/cluster/lib.sh

echo "== PostgreSQL"
server_url=$(scripts/start-test-postgres.sh)
database_url="${server_url%/*}/bms_cluster"
psql "$server_url" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'bms_cluster'" | grep -q 1 \
  || psql "$server_url" -qc "CREATE DATABASE bms_cluster"

echo "== Redis on port $redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$run/redis.log" 2>&1 &
pids+=($!)
wait_for_port "$redis_port"

common=(--data-dir "$data" --database-url "$database_url")
echo "== the schema, the key material and the demo users (passwords below)"
"$bin" "${common[@]}" demo | tee "$run/demo.txt"

ports=()
for i in $(seq 1 "$instances"); do
  p=$((port + i))
  echo "== instance $i on port $p"
  RUST_LOG=${RUST_LOG:-warn} "$bin" "${common[@]}" serve --bind "127.0.0.1:$p" \
    --redis-url "redis://127.0.0.1:$redis_port/" --trusted-proxies 127.0.0.1 \
    --public-url "http://127.0.0.1:$port" "${extra[@]}" >"$run/instance-$i.log" 2>&1 &
  pids+=($!)
  ports+=("$p")
done
for i in $(seq 1 "$instances"); do wait_for_port $((port + i)); done

echo "== nginx on port $port"
start_nginx "$run" "$port" "${ports[@]}"
pids+=("$nginx_pid")

echo
echo "bms-keys cluster: http://127.0.0.1:$port  ($instances instances, logs in $run). Ctrl-C stops it."
wait
