#!/usr/bin/env bash
# Benchmark of a bms-keys cluster on this machine: verified requests/s (a valid code on the ping API)
#   1. one instance directly, Redis off          2. one instance directly, Redis on
#   3. one instance through nginx (Redis on)     4. three instances through the same nginx
# Each instance has one worker; the code's key has a per-minute limit (set far above the load), so
# every request goes through the per-key limiter and, with Redis on, its 100 ms sync. Three rounds,
# interleaved; prints each run and the medians with the ratios asked for by the cluster issue.
#
#   scripts/bench-cluster.sh [seconds per run]   (default 10; needs root: PostgreSQL, apt for tools)
#
# On a 2-core machine the three instances, nginx and wrk share two cores: the aggregate measures
# the cost of the extra hop and of sharing, not scaling (that needs cores per instance).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${BMS_BIN:-}" ]; then cargo build --release --locked --quiet; fi
bin=$(realpath "${BMS_BIN:-target/release/bms-keys}")

work=$(mktemp -d /tmp/bms-bench-cluster.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
source scripts/cluster/lib.sh

server_url=$(scripts/start-test-postgres.sh)
database_url="${server_url%/*}/bms_bench_cluster"
psql "$server_url" -qc "DROP DATABASE IF EXISTS bms_bench_cluster WITH (FORCE)"
psql "$server_url" -qc "CREATE DATABASE bms_bench_cluster"

redis_port=18799
redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for_port $redis_port

common=(--data-dir "$work/data" --database-url "$database_url")
"$bin" "${common[@]}" demo >"$work/demo.txt"
secret=$(grep -Eo 'bms_[A-Za-z0-9]{46}' "$work/demo.txt" | head -n 1)
account=$(grep -Eo 'accounts/acc_[A-Za-z0-9]{16}' "$work/demo.txt" | head -n 1 | cut -d/ -f2)
# The demo code's key gets a limit no run reaches: every request pays for the limiter, none is refused.
psql "$database_url" -qc "UPDATE api_keys SET rate_per_minute = 100000000 WHERE id = (
  SELECT api_key_id FROM access_codes ORDER BY created_at LIMIT 1)"

start() { # port, extra flags…
  local port=$1; shift
  RUST_LOG=warn "$bin" "${common[@]}" serve --bind "127.0.0.1:$port" --workers 1 \
    --trusted-proxies 127.0.0.1 "$@" >"$work/instance-$port.log" 2>&1 &
  pids+=($!)
}
redis=(--redis-url "redis://127.0.0.1:$redis_port/")
start 18701                 # Redis off
start 18702 "${redis[@]}"   # Redis on (also the one instance behind nginx)
start 18703 "${redis[@]}"
start 18704 "${redis[@]}"
for p in 18701 18702 18703 18704; do wait_for_port $p; done

start_nginx "$work/lb1" 18711 18702
pids+=("$nginx_pid")
start_nginx "$work/lb3" 18713 18702 18703 18704
pids+=("$nginx_pid")

path="/api/v1/accounts/$account/ping"
for port in 18701 18702 18711 18713; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $secret" "http://127.0.0.1:$port$path")
  [ "$code" = 200 ] || { echo "port $port answered $code"; exit 1; }
done
# The limiter is on the measured path: the answer reports the key's limit.
curl -si -H "x-api-key: $secret" "http://127.0.0.1:18702$path" | grep -qi '^ratelimit-policy: "minute";q=100000000' \
  || { echo "the benchmark key has no rate limit: the limiter would not be measured"; exit 1; }

run() { # label, port, taskset cores for wrk
  local out
  out=$(taskset -c "$3" wrk -t1 -c64 -d"${seconds}s" --latency -H "x-api-key: $secret" "http://127.0.0.1:$2$path")
  local rps non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "$1 $rps ${non2xx:-0}" >>"$work/results"
  printf '%-28s %10s req/s  non-2xx: %s\n' "$1" "$rps" "${non2xx:-0}"
}
configs=("direct-redis-off 18701 0" "direct-redis-on 18702 0" "nginx-1-instance 18711 0-1" "nginx-3-instances 18713 0-1")
for round in 1 2 3; do
  echo "== round $round"
  for c in "${configs[@]}"; do
    set -- $c
    run "$1" "$2" "$3"
  done
done

median() { grep "^$1 " "$work/results" | awk '{print $2}' | sort -n | sed -n 2p; }
off=$(median direct-redis-off); on=$(median direct-redis-on)
one=$(median nginx-1-instance); three=$(median nginx-3-instances)
echo
echo "medians (req/s): one instance direct, Redis off $off, Redis on $on; through nginx: 1 instance $one, 3 instances $three"
awk -v off="$off" -v on="$on" -v one="$one" -v three="$three" 'BEGIN {
  printf "Redis on / off (one instance, direct): %.2f  (bar: >= 0.80)\n", on / off
  printf "3 instances / 1 instance (through nginx): %.2f\n", three / one
}'
