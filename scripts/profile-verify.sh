#!/usr/bin/env bash
# Where the verification path's time goes: the release server (one worker, CPU 1) under the same wrk
# load as scripts/bench-verify.sh (a valid code on the ping API, wrk -t1 -c64 on CPU 0), sampled by
# `perf record -e cpu-clock --call-graph dwarf` (a software clock: hardware counters are not available
# on every machine; DWARF unwinding: the release build keeps no frame pointers), then the split by
# binary (kernel, bms-keys, libc), the top user-space frames, the handler's stages with their share of
# the CPU time, and a flame graph (target/profile/flame.svg, with inferno from crates.io installed).
#
#   scripts/profile-verify.sh [seconds]    (default 8; needs root for apt when perf/wrk are missing)
#   BMS_BIN=path/to/bms-keys scripts/profile-verify.sh      (profile another build)
#
# The samples stay in target/profile/perf.data for `perf report -i … --children`; the folded stacks in
# target/profile/folded.txt (`cargo install inferno` for the SVG).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
need=()
command -v perf >/dev/null || need+=(linux-perf)
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${BMS_BIN:-}" ]; then cargo build --release --locked --quiet; fi
bin=${BMS_BIN:-target/release/bms-keys}
out=target/profile
work=$(mktemp -d)
mkdir -p "$out"
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" --data-dir "$work" demo >"$work/demo.txt"
secret=$(grep -Eo 'bms_[A-Za-z0-9]{46}' "$work/demo.txt" | head -n 1)
account=$(grep -Eo 'accounts/acc_[A-Za-z0-9]{16}' "$work/demo.txt" | head -n 1 | cut -d/ -f2)
port=18790
RUST_LOG=warn taskset -c 1 "$bin" --data-dir "$work" serve --bind "127.0.0.1:$port" --workers 1 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done

url="http://127.0.0.1:$port/api/v1/accounts/$account/ping"
taskset -c 0 wrk -t1 -c64 -d"$((seconds + 4))s" -H "x-api-key: $secret" "$url" >"$work/wrk.txt" &
wrk_pid=$!
sleep 2
perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$server" -o "$out/perf.data" -- sleep "$seconds" 2>/dev/null
wait "$wrk_pid"
echo "load: $(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt") req/s while sampled"
echo "== by binary"
# `head` closes the pipe early: not a failure.
perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null | awk '/^ +[0-9]/ {print "  " $1, $2}' | head -6 || true
echo "== top user-space frames (self time)"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
  | awk '/^ +[0-9].*\[\.\]/ { pct = $1; sub(/^ +[0-9.]+% +\[\.\] +/, ""); sub(/ +- +- *$/, ""); printf "  %6s  %s\n", pct, substr($0, 1, 110) }' | head -25 || true
if command -v inferno-collapse-perf >/dev/null; then
  perf script -i "$out/perf.data" 2>/dev/null | inferno-collapse-perf >"$out/folded.txt"
  inferno-flamegraph --title "bms-keys: a valid code on the ping API" <"$out/folded.txt" >"$out/flame.svg"
  echo "== the handler's stages (share of all samples, including what they call)"
  python3 - "$out/folded.txt" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1)
    rows.append((stack, int(n)))
total = sum(n for _, n in rows)
for label, frame in [
    # actix-http calls the service (inlined into MapErr: the fast lane, or in older builds the app),
    # and polls its future when the answer is not ready at once.
    ("service: all between parsing and encoding (ours; older builds: the app and ours)",
     ("MapErr<A,Req,F,E> as actix_service::Service<Req>>::call", "MapErrFuture")),
    ("  code from the headers", "credentials::presented"),
    ("  canonical path", "canonical::canonical"),
    ("  verification (Verifier::start)", "Verifier::start"),
    ("    HMAC digest", "KeyMaterial::digest"),
    ("    format and checksum", "secrets::checksum"),
    ("    decision", "Verifier::decide"),
    ("    counting (usage, metrics)", "Verifier::finish"),
    ("  answer (ping, rate and API headers)", ("bms_api::ping", "bms_api::respond", "add_api_headers")),
    ("app layer (actix-web: HttpRequest, app data, router)", "AppInitService"),
    ("request parsing (actix-http)", "as actix_http::h1::decoder::MessageType>::decode"),
    ("response encoding (actix-http)", "codec::encoder::Encoder"),
    ("timers (actix-http)", "h1::timer::TimerState"),
    ("send (kernel)", "__libc_send"),
    ("recv (kernel)", "__libc_recv"),
    ("epoll_wait (kernel)", "epoll_wait"),
]:
    frames = frame if isinstance(frame, tuple) else (frame,)
    n = sum(c for s, c in rows if any(f in s for f in frames))
    print(f"  {100 * n / total:5.1f} %  {label}")
PY
  echo "flame graph: $out/flame.svg"
fi
