#!/usr/bin/env bash
# Threads under load: edan-predict's wall time on the same crops while K other
# processes keep K cores busy (K = 0 .. the number of cores), at the default
# --threads 0 (the idle cores), at --threads 1, at all cores, and at all cores
# with GOMP_SPINCOUNT=1000. Prints one JSON document; the figures are the
# median, min and max of $EDAN_BENCH_RUNS runs (3). Not a timed test; the
# busy processes are `sha1sum /dev/zero`, at the default priority.
#
#   bench/threads-under-load.sh BIN_DIR [RECORDS]
# RECORDS: face records to predict (default: 2,000 synthetic 48-px crops).
set -euo pipefail
bin=$(cd "${1:?usage: bench/threads-under-load.sh BIN_DIR [RECORDS]}" && pwd)
fixtures=$(cd "$bin/.." && pwd)/tests
records=${2:-}
runs=${EDAN_BENCH_RUNS:-3}
cores=$(nproc)
work=$(mktemp -d)
hogs=()
trap 'kill "${hogs[@]}" 2> /dev/null || true; rm -rf "$work"' EXIT
if [ -z "$records" ]; then
  # 2,000 records over 20 crops of a 48-px gradient and its mirror.
  for i in $(seq 0 19); do "$fixtures/make-image" ramp 48 48 "$work/c$i.png"; done
  for i in $(seq 1 2000); do printf '{"crop":"%s/c%d.png"}\n' "$work" $((i % 20)); done > "$work/in.jsonl"
  records=$work/in.jsonl
fi
n=$(wc -l < "$records")

seconds() {
  local s e
  s=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  e=$(date +%s.%N)
  awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }'
}
stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    printf "{\"median\": %s, \"min\": %s, \"max\": %s}", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
figure() {  # figure ENV... -- ARGS...: stats of edan-predict's seconds
  local env=() t=() r
  while [ "$1" != "--" ]; do env+=("$1"); shift; done
  shift
  for r in $(seq "$runs"); do t+=("$(seconds env "${env[@]}" "$bin/edan-predict" -q "$@" "$records")"); done
  stats "${t[@]}"
}

printf '{"records": %d, "cores": %d, "runs": %d, "command": "edan-predict -q [--threads N] RECORDS", "busy": [' "$n" "$cores" "$runs"
for k in $(seq 0 "$cores"); do
  while [ "${#hogs[@]}" -lt "$k" ]; do sha1sum /dev/zero & hogs+=($!); done
  sleep 0.5
  [ "$k" -eq 0 ] || printf ','
  printf '\n  {"busy_cores": %d, "threads_0": %s, "threads_1": %s, "threads_%d": %s, "threads_%d_gomp_spincount_1000": %s}' \
    "$k" "$(figure -- --threads 0)" "$(figure -- --threads 1)" \
    "$cores" "$(figure -- --threads "$cores")" \
    "$cores" "$(figure GOMP_SPINCOUNT=1000 -- --threads "$cores")"
done
printf '\n]}\n'
