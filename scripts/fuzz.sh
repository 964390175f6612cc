#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for a bounded time: `scripts/fuzz.sh [seconds per target]`
# (default 60). Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); not run in
# CI. A crash stops the script with the reproducer under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in secret_format rule_matcher form_decoders; do
  echo "== $target for ${seconds} s"
  # -s none: the targets are safe Rust; coverage guidance without AddressSanitizer runs ~3x faster.
  log="fuzz/fuzz-$target.log"
  if ! cargo +nightly fuzz run -s none "$target" -- -max_total_time="$seconds" -print_final_stats=1 \
    >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "$target failed; the reproducer is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|cov: " "$log" | tail -n 4
done
