#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build (make fuzz) for FUZZ_SECONDS
# each and prints one line per target: executions, seconds, crashes.
#   tests/fuzz/run.sh BUILD_DIR [TARGET...]
# Each target starts from the seeds and past crash inputs kept in
# tests/fuzz/corpus/<target>/; what it finds goes to BUILD_DIR/corpus/
# (new coverage) and BUILD_DIR/crashes/<target>/ (crashes, leaks, timeouts).
# A crash input belongs in tests/fuzz/corpus/<target>/ once it is fixed:
# the unit tests replay that directory. Exits 1 when any target crashed.
set -uo pipefail
build=${1:?usage: run.sh BUILD_DIR [TARGET...]}
shift
src=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$src"/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
failed=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t" crashes="$build/crashes/$t"
  mkdir -p "$work" "$crashes"
  log="$build/$t.log"
  # Inputs up to 64 KiB (images need room), 10 s per input, 2 GiB of memory.
  "$build/fuzz/$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "$src/corpus/$t" > "$log" 2>&1
  rc=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+')
  n_crash=$(find "$crashes" -type f | wc -l)
  printf '%-12s %10s executions in %3s s, %d crash input(s)%s\n' "$t" "${runs:-?}" \
    "${secs:-$seconds}" "$n_crash" "$([ "$rc" -ne 0 ] && echo " (exit $rc, see $log)")"
  if [ "$rc" -ne 0 ] || [ "$n_crash" -gt 0 ]; then failed=1; fi
done
exit "$failed"
