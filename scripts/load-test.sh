#!/usr/bin/env bash
# A bounded load test on loopback: verifications and console actions at the same time, then the
# figures — requests, errors, and the server's resident memory before and after.
#
#   scripts/load-test.sh [seconds] [database URL]   (default 60 s on a fresh SQLite database)
#
# Builds bms-keys in release mode and seeds it with `demo`. While wrk sends verifications (allowed,
# refused by policy, unknown and malformed codes, in the header and the query string, 1 thread, 32
# connections), two console users each loop through sign-in → create a key → create an access code →
# open its secret → disable it → delete it → delete the key, with curl and real CSRF tokens. Any 5xx,
# any console step that does not answer as a browser expects, or memory growing more than 10 % between
# 10 s into the run and its end fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
database_url=${2:-}

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
bin=target/release/bms-keys
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  jobs -p | xargs -r kill 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

db_args=()
[ -n "$database_url" ] && db_args=(--database-url "$database_url")
"$bin" --data-dir "$work" demo "${db_args[@]}" > "$work/demo.txt" 2>/dev/null
secret=$(grep -Eo 'bms_[A-Za-z0-9]{46}' "$work/demo.txt" | head -n 1)
account=$(grep -Eo 'accounts/acc_[A-Za-z0-9]{16}' "$work/demo.txt" | head -n 1 | cut -d/ -f2)
owner_password=$(awk '/owner@demo.example/ { print $3 }' "$work/demo.txt")

# The failure limit is raised: the mix sends refused codes on purpose, from one address.
RUST_LOG=warn "$bin" --data-dir "$work" serve "${db_args[@]}" --bind "127.0.0.1:$port" \
  --verify-failures-per-minute 4000000000 > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "$base/healthz" && break; sleep 0.1; done
rss() { awk '/VmRSS/ { print $2 }' "/proc/$server_pid/status"; }

cat > "$work/mix.lua" <<LUA
-- Allowed (metrics.read), refused by policy (ads), unknown, malformed, and the query-string form.
local paths = {
  { "/api/v1/accounts/$account/metrics", "$secret" },
  { "/api/v1/accounts/$account/ads", "$secret" },
  { "/api/v1/accounts/$account/metrics", "bms_${secret:4:40}000000" },
  { "/api/v1/accounts/$account/metrics", "bms_short" },
  { "/api/v1/accounts/$account/ping?apiKey=$secret", nil },
}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init() n = 0; server_errors = 0 end
function request()
  n = n + 1
  local p = paths[(n % #paths) + 1]
  local headers = {}
  if p[2] then headers["x-api-key"] = p[2] end
  return wrk.format("GET", p[1], headers)
end
function response(status) if status >= 500 then server_errors = server_errors + 1 end end
function done()
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("server_errors") end
  io.write("verification 5xx: " .. total .. "\n")
end
LUA

# One console user's loop; prints "<rounds> <failures>" at the end.
console_user() {
  local jar="$work/jar.$1" rounds=0 failures=0 until=$(($(date +%s) + seconds))
  local keys="$base/accounts/$account/permissions/api-keys"
  token() { grep -o 'name="csrf_token" value="[^"]*"' | head -n 1 | sed 's/.*value="//; s/"$//'; }
  expect() { # want status, then curl args; sets $location
    local want=$1; shift
    local out; out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -b "$jar" -c "$jar" "$@")
    location=${out#* }
    [ "${out%% *}" = "$want" ] || { failures=$((failures + 1)); echo "console: wanted $want, got ${out%% *} for ${*: -1}" >&2; return 1; }
  }
  local csrf
  csrf=$(curl -s -b "$jar" -c "$jar" "$base/login" | token)
  expect 303 -d "email=owner@demo.example&password=$owner_password&csrf_token=$csrf" "$base/login" || return 0
  csrf=$(curl -s -b "$jar" -c "$jar" "$keys" | token)
  while [ "$(date +%s)" -lt "$until" ]; do
    rounds=$((rounds + 1))
    expect 303 -d "csrf_token=$csrf&mode=create&name=Load+$1+$rounds&tags=load&policy=ads.read" "$keys" || continue
    local key_url=$location
    expect 200 "$key_url" || continue
    expect 303 -d "csrf_token=$csrf&description=load" "$key_url/access-codes" || continue
    local secret_url=$location code_url=${location%/secret}
    expect 200 "$secret_url" || continue
    expect 200 "$keys?q=Load" || continue
    expect 303 -d "csrf_token=$csrf&enabled=false" "$code_url/enabled" || continue
    expect 303 -d "csrf_token=$csrf" "$code_url/delete" || continue
    expect 303 -d "csrf_token=$csrf" "$key_url/delete" || continue
  done
  echo "$rounds $failures" > "$work/console.$1"
}

# The warm-up runs the same mix for 10 s, so that what is allocated once (the argon2 memory of the
# sign-ins, the caches, the pool, the allocator's arenas) is in "before".
echo "warming up for 10 s"
(seconds=10; console_user warm-a) & warm_a=$!
(seconds=10; console_user warm-b) & warm_b=$!
wrk -t1 -c32 -d10s -s "$work/mix.lua" "$base" > /dev/null
wait "$warm_a" "$warm_b"
rss_before=$(rss)
echo "load: ${seconds}s of verifications (wrk, 1 thread, 32 connections) and 2 console users"
console_user a & user_a=$!
console_user b & user_b=$!
wrk -t1 -c32 -d"${seconds}s" -s "$work/mix.lua" "$base" > "$work/wrk.txt" &
wrk_pid=$!
samples=()
while kill -0 "$wrk_pid" 2>/dev/null; do samples+=("$(($(rss) / 1024))"); sleep 5; done
wait "$wrk_pid" "$user_a" "$user_b"
rss_after=$(rss)

verifications=$(awk '/requests in/ { print $1 }' "$work/wrk.txt")
rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt")
verify_5xx=$(awk '/verification 5xx/ { print $3 }' "$work/wrk.txt")
socket_errors=$(awk '/Socket errors/ { print }' "$work/wrk.txt")
read -r rounds_a failures_a < "$work/console.a"
read -r rounds_b failures_b < "$work/console.b"
server_5xx=$(grep -c ' 5[0-9][0-9] ' "$work/server.log" || true)
printf 'verifications: %s (%s req/s), 5xx: %s %s\n' "$verifications" "$rps" "$verify_5xx" "$socket_errors"
printf 'console: %s rounds of 8 steps, %s unexpected answers\n' "$((rounds_a + rounds_b))" "$((failures_a + failures_b))"
printf 'server log lines with a 5xx: %s\n' "$server_5xx"
# Memory rises once as the load starts (pool connections and their SQLite page caches, the hashing
# threads' arenas: all bounded), so "flat" compares the end with 10 s into the run.
rss_settled=$((${samples[2]:-${samples[-1]}} * 1024))
awk -v a="$rss_before" -v s="$rss_settled" -v b="$rss_after" 'BEGIN { printf "RSS: %.1f MiB before the load, %.1f MiB 10 s in, %.1f MiB at the end (%+.1f %% since 10 s in)\n", a / 1024, s / 1024, b / 1024, (b - s) * 100 / s }'
echo "RSS every 5 s during the load (MiB): ${samples[*]}"
[ "$verify_5xx" = 0 ] && [ "$((failures_a + failures_b))" = 0 ] && [ -z "$socket_errors" ] \
  && awk -v s="$rss_settled" -v b="$rss_after" 'BEGIN { exit !(b <= s * 1.10) }' \
  || { echo "load test FAILED"; exit 1; }
echo "load test passed"
