#!/usr/bin/env bash
# Runs Schemathesis against the management API of a fresh demo server, driven by its own OpenAPI
# document, after checking the document with openapi-spec-validator. Needs the debug binary
# (`cargo build`), and `pip install schemathesis openapi-spec-validator`. Usage: scripts/schemathesis.sh [examples]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-40}
bin=${BMS_BIN:-${CARGO_TARGET_DIR:-target}/debug/bms-keys}
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

demo=$("$bin" --data-dir "$data" demo)
export BMS_ACCOUNT BMS_CODE
BMS_ACCOUNT=$(sed -n 's/^Account id: //p' <<<"$demo")
BMS_CODE=$(grep -A1 '^A management access code' <<<"$demo" | tail -n 1 | tr -d ' ')
[[ $BMS_ACCOUNT == acc_* && $BMS_CODE == bms_* ]] || { echo "the demo printed no management code" >&2; exit 1; }

"$bin" --data-dir "$data" serve --bind "127.0.0.1:$port" >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

curl -fs "http://127.0.0.1:$port/api/openapi.json" >"$data/openapi.json"
openapi-spec-validator "$data/openapi.json"
# "Schema-valid request rejected" is left out: some rules are the domain's, not JSON Schema's (a name
# of spaces, an unknown policy, a cursor that is not ours, another account's key id) and answer 4xx
# problems on purpose. Every other check runs: no 5xx, status codes, content types, response schemas,
# headers, and that invalid input is refused.
schemathesis --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/api/openapi.json" \
  --url "http://127.0.0.1:$port" -H "x-api-key: $BMS_CODE" \
  --checks all --max-examples "$examples" --generation-deterministic \
  --exclude-checks positive_data_acceptance
if grep -q ' 5[0-9][0-9] ' "$data/server.log"; then
  echo "the server logged a 5xx:" >&2
  grep ' 5[0-9][0-9] ' "$data/server.log" >&2
  exit 1
fi
