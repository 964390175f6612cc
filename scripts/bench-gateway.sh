#!/usr/bin/env bash
# Gateway mode, measured: a valid code through nginx `auth_request` and Caddy `forward_auth` to
# bms-keys' /v1/auth/forward, against the same gateway proxying to the same upstream without auth.
#
#   scripts/bench-gateway.sh [seconds]   (default 10; needs root for apt when tools are missing)
#   BMS_BIN=path/to/bms-keys scripts/bench-gateway.sh
#
# One process/worker each: bms-keys (1 worker), nginx (1 process: the gateways and the upstream, a
# `return 200`), Caddy (GOMAXPROCS=1), all on CPU 1; wrk -t1 -c64 on CPU 0. nginx runs the README's
# recipe as written (a keepalive pool to bms-keys), the same without the pool (a new connection per
# subrequest), and with a keepalive pool to the upstream too, each against nginx proxying the same
# way without auth; Caddy runs the README's recipe (its proxy keeps connections alive).
# Three rounds, medians; prints req/s, p99 and the ratios auth / no auth.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${BMS_BIN:-}" ]; then cargo build --release --locked --quiet; fi
bin=$(realpath "${BMS_BIN:-target/release/bms-keys}")
work=$(mktemp -d /tmp/bms-bench-gateway.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
source scripts/cluster/lib.sh

bms=18721 upstream=18722 plain=18723 recipe=18724 pooled=18725 caddy_plain=18726 caddy_auth=18727 plain_pooled=18728 unpooled=18729
"$bin" --data-dir "$work/data" demo >"$work/demo.txt"
secret=$(grep -Eo 'bms_[A-Za-z0-9]{46}' "$work/demo.txt" | head -n 1)
account=$(grep -Eo 'accounts/acc_[A-Za-z0-9]{16}' "$work/demo.txt" | head -n 1 | cut -d/ -f2)
RUST_LOG=warn taskset -c 1 "$bin" --data-dir "$work/data" serve --bind "127.0.0.1:$bms" --workers 1 \
  --trusted-proxies 127.0.0.1 >"$work/bms.log" 2>&1 &
pids+=($!)
wait_for_port $bms

# The README's nginx recipe (a keepalive pool to bms-keys), with its placeholders filled in;
readme_block() { sed -n "/<!-- gateway-recipe: $1 -->/,/^\`\`\`\$/p" README.md | sed '1,2d;$d'; }
pool_block=$(readme_block nginx-http | sed "s#127.0.0.1:8080#127.0.0.1:$bms#")
recipe_block=$(readme_block nginx | sed "s#http://your-upstream#http://127.0.0.1:$upstream#")
# the same with a new connection to bms-keys per subrequest (the recipe before it had the pool);
unpooled_block=$(sed "s#http://bms_keys/#http://127.0.0.1:$bms/#; /proxy_http_version 1.1;/d; /proxy_set_header Connection \"\";/d" <<<"$recipe_block")
# and with a keepalive pool to the upstream too.
keepalive='\n    proxy_http_version 1.1;\n    proxy_set_header Connection "";'
pooled_block=$(sed "s#proxy_pass http://127.0.0.1:$upstream;#proxy_pass http://app;$keepalive#" <<<"$recipe_block")
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
master_process off;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  upstream app { server 127.0.0.1:$upstream; keepalive 64; }
$pool_block
  server { listen 127.0.0.1:$upstream; location / { return 200 '{"ok":true}'; } }
  # Without auth: as the recipe proxies (a connection per request), and with a keepalive pool.
  server { listen 127.0.0.1:$plain; location / { proxy_pass http://127.0.0.1:$upstream; } }
  server {
    listen 127.0.0.1:$plain_pooled;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$recipe;
$recipe_block
  }
  server {
    listen 127.0.0.1:$unpooled;
$unpooled_block
  }
  server {
    listen 127.0.0.1:$pooled;
$pooled_block
  }
}
NGINX
taskset -c 1 nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
pids+=($!)
wait_for_port $recipe

caddy_recipe=$(sed -n '/<!-- gateway-recipe: caddy -->/,/^```$/p' README.md | sed '1,2d;$d' \
  | sed "s#api.example.com#http://127.0.0.1:$caddy_auth#; s#your-upstream:8000#127.0.0.1:$upstream#; s#127.0.0.1:8080#127.0.0.1:$bms#")
cat >"$work/Caddyfile" <<CADDY
{
    admin off
    auto_https off
    storage file_system $work/caddy
}
$caddy_recipe
http://127.0.0.1:$caddy_plain {
    reverse_proxy 127.0.0.1:$upstream
}
CADDY
HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work GOMAXPROCS=1 taskset -c 1 \
  caddy run --adapter caddyfile --config "$work/Caddyfile" >"$work/caddy.log" 2>&1 &
pids+=($!)
wait_for_port $caddy_auth

path="/api/v1/accounts/$account/ping"
for port in $plain $plain_pooled $recipe $unpooled $pooled $caddy_plain $caddy_auth; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $secret" "http://127.0.0.1:$port$path")
  [ "$code" = 200 ] || { echo "port $port answered $code"; exit 1; }
done
# The auth runs really refuse: a wrong code is kept out.
for port in $recipe $unpooled $pooled $caddy_auth; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: bms_wrong" "http://127.0.0.1:$port$path")
  [ "$code" = 401 ] || [ "$code" = 500 ] || { echo "port $port let a wrong code through: $code"; exit 1; }
done

to_ms() { awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v * 1000 } }'; }
run() { # label port
  local out rps p99
  out=$(taskset -c 0 wrk -t1 -c64 -d"${seconds}s" --latency -H "x-api-key: $secret" "http://127.0.0.1:$2$path")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out" | to_ms)
  echo "$1 $rps $p99" >>"$work/results"
  printf '%-26s %10s req/s  p99 %6s ms  %s\n' "$1" "$rps" "$p99" "$(awk '/Non-2xx/ {print "non-2xx " $5}' <<<"$out")"
}
for round in 1 2 3; do
  echo "== round $round"
  run nginx-no-auth $plain
  run nginx-auth-recipe $recipe
  run nginx-auth-unpooled $unpooled
  run nginx-no-auth-keepalive $plain_pooled
  run nginx-auth-keepalive $pooled
  run caddy-no-auth $caddy_plain
  run caddy-forward-auth $caddy_auth
done
median() { grep "^$1 " "$work/results" | awk -v f="$2" '{print $f}' | sort -n | sed -n 2p; }
echo
for pair in "nginx-auth-unpooled nginx-no-auth" "nginx-auth-recipe nginx-no-auth" "nginx-auth-keepalive nginx-no-auth-keepalive" "caddy-forward-auth caddy-no-auth"; do
  set -- $pair
  awk -v a="$(median "$1" 2)" -v b="$(median "$2" 2)" -v pa="$(median "$1" 3)" -v pb="$(median "$2" 3)" -v n="$1" -v m="$2" \
    'BEGIN { printf "%-22s / %-24s req/s %.2f (%d vs %d), p99 %.2f\n", n, m, a / b, a, b, pa / pb }'
done
