#!/usr/bin/env bash
# Slow clients against a release build: slowhttptest's slow body (R-U-Dead-Yet, -B, on POST /login) and slow headers
# (slowloris, -H), each with 1,000 connections for 60 s, while a probe asks /healthz and the ping API
# with a valid code once a second. Reports how long the attack's connections live (from slowhttptest's
# CSV, per round: the most held at once, when the server closed the first, when all were closed) and
# the probes' failures and worst latency.
#
#   scripts/slow-clients.sh [seconds] [connections]      (default 60 and 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
connections=${2:-1000}
command -v slowhttptest >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slowhttptest >/dev/null; }
if [ -z "${BMS_BIN:-}" ]; then cargo build --release --quiet; fi
bin=${BMS_BIN:-target/release/bms-keys}
work=$(mktemp -d)
port=18720
cleanup() { [ -n "${bms_pid:-}" ] && kill "$bms_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

"$bin" --data-dir "$work" demo > "$work/demo.txt"
secret=$(grep -Eo 'bms_[A-Za-z0-9]{46}' "$work/demo.txt" | head -n 1)
account=$(grep -Eo 'accounts/acc_[A-Za-z0-9]{16}' "$work/demo.txt" | head -n 1 | cut -d/ -f2)
RUST_LOG=warn "$bin" --data-dir "$work" serve --bind "127.0.0.1:$port" --workers 2 > "$work/bms.log" 2>&1 &
bms_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done

probe() { # runs until killed: one line per second, "healthz_status healthz_seconds ping_status ping_seconds"
  while true; do
    h=$(curl -s -o /dev/null -m 5 -w '%{http_code} %{time_total}' "http://127.0.0.1:$port/healthz" || echo "000 5")
    p=$(curl -s -o /dev/null -m 5 -w '%{http_code} %{time_total}' -H "x-api-key: $secret" \
      "http://127.0.0.1:$port/api/v1/accounts/$account/ping" || echo "000 5")
    echo "$h $p"
    sleep 1
  done
}

attack() { # name flag target — rounds of slowhttptest until $seconds have passed (it does not reopen
  # the connections the server closes, and stops when none is left)
  local name=$1 flag=$2 target=$3 started=$SECONDS round=0
  probe > "$work/$name.probe" &
  local probe_pid=$!
  while ((SECONDS - started < seconds)); do
    round=$((round + 1))
    slowhttptest "$flag" -c "$connections" -r 500 -i 2 -x 10 -s 8192 -l $((seconds - (SECONDS - started) + 1)) \
      -g -o "$work/$name-$round" -u "http://127.0.0.1:$port$target" -p 3 > "$work/$name-$round.out" 2>&1 || true
    # slowhttptest's verdict: "No open connections left" (the server closed them all) or the time limit.
    local ended
    ended=$(sed 's/\x1b\[[0-9;]*m//g' "$work/$name-$round.out" | grep -E "Test ended|Exit status" | tr -s ' \n' ' ')
    # CSV: Seconds,Closed,Pending,Connected,Service Available
    awk -F, -v name="$name" -v round="$round" -v ended="$ended" 'NR > 1 {
        if ($4 > most) most = $4
        if (first == "" && $2 > 0) first = $1
      }
      END { printf "%-10s round %d: %4d connections held at most; the server closed the first after %2ss; %s\n",
        name, round, most, first, ended }' "$work/$name-$round.csv"
  done
  kill "$probe_pid" 2>/dev/null; wait "$probe_pid" 2>/dev/null || true
  awk -v name="$name" '{ n++; if ($1 != 200) hf++; if ($3 != 200) pf++; if ($2 > hm) hm = $2; if ($4 > pm) pm = $4 }
    END { printf "%-10s %d probes in %d rounds: /healthz failed %d (worst %.3f s), valid code failed %d (worst %.3f s)\n",
      name, n, round, hf, hm, pf, pm }' round="$round" "$work/$name.probe"
}

echo "bms-keys: 2 workers, --body-timeout 10 s (default); slowhttptest: $connections connections, ${seconds} s, follow-up data every 2 s"
attack "slow-body" -B "/login"
attack "slowloris" -H "/api/v1/accounts/$account/ping"
