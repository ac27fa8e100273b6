#!/usr/bin/env bash
# Runs the BATS suites in parallel and ends with one plain summary line
# ("bats: N passed, N failed, N skipped"); exits non-zero when any failed.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
jobs=${JOBS:-$(nproc)}
bats --jobs "$jobs" --no-parallelize-within-files "$@" | tee "$log"
rc=${PIPESTATUS[0]}
skipped=$(grep -cE '^ok .* # skip' "$log")
passed=$(( $(grep -c '^ok ' "$log") - skipped ))
failed=$(grep -c '^not ok ' "$log")
echo "bats: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
