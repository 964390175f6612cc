#!/usr/bin/env bash
# Benchmark of the verification path against nginx, in the same run, on this machine.
#
#   scripts/bench-verify.sh [seconds]        (default 10; needs root for apt when nginx/wrk are missing)
#   BMS_BIN=path/to/bms-keys scripts/bench-verify.sh   (measure another build, e.g. an older commit's)
#   ROUNDS=5 scripts/bench-verify.sh                    (more rounds; the default is three)
#
# Builds bms-keys in release mode, starts it on a fresh SQLite database with ONE worker, creates the demo
# keys and codes, and starts nginx with ONE worker answering `return 200` behind a `map` on x-api-key.
# Then the same wrk load (1 thread, 64 connections) runs against each: a valid key on nginx, a valid
# key on bms-keys (the ping API: verification plus a small JSON answer), a malformed key and an
# unknown one (well formed, right checksum, never issued: the negative cache) on bms-keys. The load
# generator and the servers are pinned to different cores. Three rounds, interleaved; prints each
# run, then the medians and the ratios against the bars (≥ 0.9× nginx req/s, p99 ≤ 1.5× nginx's,
# refusals no slower than a valid code). On a shared virtual machine the host's load moves whole
# runs by ±15% and stalls of tens of milliseconds land in a p99: so it also prints each round's
# valid/nginx ratio (the two runs are seconds apart) and how far nginx's own rounds spread, which
# says whether the sitting was quiet enough to read the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${ROUNDS:-3}

need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${BMS_BIN:-}" ]; then cargo build --release --quiet; fi
bin=${BMS_BIN:-target/release/bms-keys}
work=$(mktemp -d)
bms_port=18710
nginx_port=18711
cleanup() {
  [ -n "${bms_pid:-}" ] && kill "$bms_pid" 2>/dev/null || true
  [ -n "${nginx_pid:-}" ] && kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" --data-dir "$work" demo > "$work/demo.txt"
secret=$(grep -Eo 'bms_[A-Za-z0-9]{46}' "$work/demo.txt" | head -n 1)
account=$(grep -Eo 'accounts/acc_[A-Za-z0-9]{16}' "$work/demo.txt" | head -n 1 | cut -d/ -f2)
malformed="bms_${secret:4:40}XXXXXX"
# A code that was never issued: the secret's random part changed, its checksum (CRC-32 of the text
# before it, in six base62 digits) computed anew, so that it passes the format check.
unknown=$(python3 - "$secret" <<'PY'
import sys, zlib
alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
body = sys.argv[1][:-6]
body = body[:4] + ("A" if body[4] != "A" else "B") + body[5:]
n, sum = zlib.crc32(body.encode()), ""
for _ in range(6):
    sum, n = alphabet[n % 62] + sum, n // 62
print(body + sum)
PY
)

# The failure limit is raised so that the malformed-key run measures the format check, not the 429.
RUST_LOG=warn taskset -c 1 "$bin" --data-dir "$work" serve --bind "127.0.0.1:$bms_port" --workers 1 \
  --verify-failures-per-minute 4000000000 > "$work/bms.log" 2>&1 &
bms_pid=$!

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  map_hash_bucket_size 128;
  map \$http_x_api_key \$bms_allowed { default 0; "$secret" 1; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      if (\$bms_allowed = 0) { return 401; }
      return 200 '{"ok":true}';
    }
  }
}
NGINX
taskset -c 1 /usr/sbin/nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
nginx_pid=$!

for port in $bms_port $nginx_port; do
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
done
url_bms="http://127.0.0.1:$bms_port/api/v1/accounts/$account/ping"
url_nginx="http://127.0.0.1:$nginx_port/api/v1/accounts/$account/ping"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $secret" "$url_bms")" = 200 ] || { echo "bms-keys refused the demo key"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $secret" "$url_nginx")" = 200 ] || { echo "nginx refused the demo key"; exit 1; }
for bad in "$malformed" "$unknown"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $bad" "$url_bms")" = 401 ] || { echo "bms-keys did not refuse $bad"; exit 1; }
done
curl -s -H "x-api-key: $unknown" "$url_bms" | grep -q '"code":"unknown"' || { echo "the unknown code is not refused as unknown"; exit 1; }

# wrk's latency in milliseconds, from "99%   1.23ms".
to_ms() { awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v * 1000 } }'; }
run() { # name url key
  local out rps p99
  taskset -c 0 wrk -t1 -c64 -d"${seconds}s" --latency -H "x-api-key: $3" "$2" > "$work/run.wrk"
  out=$(cat "$work/run.wrk")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out" | to_ms)
  printf '%-16s %12s req/s   p99 %8s ms   non-2xx %s\n' "$1" "$rps" "$p99" "$(awk '/Non-2xx/ { print $5 }' <<<"$out")"
  echo "$1 $rps $p99" >> "$work/results"
}
median() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$work/results" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "wrk: 1 thread, 64 connections, ${seconds}s each; servers on CPU 1, wrk on CPU 0; $rounds rounds"
for round in $(seq 1 "$rounds"); do
  echo "== round $round"
  run nginx "$url_nginx" "$secret"
  run valid "$url_bms" "$secret"
  run malformed "$url_bms" "$malformed"
  run unknown "$url_bms" "$unknown"
done
echo "== medians"
for name in nginx valid malformed unknown; do
  printf '%-16s %12s req/s   p99 %8s ms\n' "$name" "$(median $name 2)" "$(median $name 3)"
done
awk -v b="$(median valid 2)" -v n="$(median nginx 2)" -v bp="$(median valid 3)" -v np="$(median nginx 3)" \
  -v m="$(median malformed 2)" -v u="$(median unknown 2)" 'BEGIN {
  printf "ratio req/s  valid/nginx        %.2f   (bar: >= 0.90)\n", b / n;
  printf "ratio p99    valid/nginx        %.2f   (bar: <= 1.50)\n", bp / np;
  printf "req/s        malformed/valid    %.2f   (bar: >= 1.00, no slower)\n", m / b;
  printf "req/s        unknown/valid      %.2f   (bar: >= 1.00, no slower)\n", u / b;
}'
paste <(awk '$1 == "nginx" { print $2 }' "$work/results") <(awk '$1 == "valid" { print $2 }' "$work/results") \
  | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $2 / $1 } END { print "" }' > "$work/paired"
echo "each round     valid/nginx        $(cat "$work/paired")"
awk '$1 == "nginx" { v = $2; if (min == "" || v < min) min = v; if (v > max) max = v }
  END { s = 100 * (max - min) / min; printf "spread of nginx rounds %.0f%%%s\n", s, (s > 10 ? "   (noisy: the host moved the runs; read the medians with care, or rerun)" : "") }' "$work/results"
