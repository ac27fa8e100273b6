#!/usr/bin/env bash
# make bench: prints one JSON document. For now one figure: edan-predict's
# throughput on pre-cropped faces with a random-weight model of each preset
# (the median, min and max of 3 runs, start-up included). Not a timed test.
set -euo pipefail
bin=${1:?usage: bench/run.sh BIN_DIR}
fixtures=$(cd "$bin/../tests" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

runs=3
n=${EDAN_BENCH_FACES:-2000}
result="{\"machine\":{\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\",\"cores\":$(nproc)},\"predict\":["
first=1
for spec in "small 48" "dan 112" "paper 224"; do
  set -- $spec
  preset=$1 size=$2
  "$fixtures/make-model" --preset "$preset" --size "$size" --widths "$( [ "$preset" = small ] && echo 16,48,96,192 || echo 64,128,256,512)" --fc 256 "m-$preset.edan" -q
  "$fixtures/make-image" ramp "$size" "$size" "face-$size.png"
  count=$n
  [ "$preset" = dan ] && count=$((n / 4))
  [ "$preset" = paper ] && count=$((n / 16))
  for _ in $(seq "$count"); do echo "{\"crop\":\"face-$size.png\"}"; done > "in-$size.jsonl"
  for batch in 1 8 32; do
    times=()
    for _ in $(seq $runs); do
      s=$(date +%s.%N)
      "$bin/edan-predict" -m "m-$preset.edan" --batch "$batch" -q "in-$size.jsonl" > /dev/null
      e=$(date +%s.%N)
      times+=("$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.4f", b - a }')")
    done
    sorted=$(printf '%s\n' "${times[@]}" | sort -g)
    min=$(echo "$sorted" | head -1) med=$(echo "$sorted" | sed -n 2p) max=$(echo "$sorted" | tail -1)
    fps() { awk -v n="$count" -v t="$1" 'BEGIN { printf "%.1f", n / t }'; }
    [ $first -eq 1 ] || result+=","
    first=0
    result+="{\"preset\":\"$preset\",\"size\":$size,\"batch\":$batch,\"faces\":$count,"
    result+="\"faces_per_s\":{\"median\":$(fps "$med"),\"min\":$(fps "$max"),\"max\":$(fps "$min")},"
    result+="\"command\":\"edan-predict -m $preset.edan --batch $batch (random weights, $count crops of ${size}px)\"}"
  done
done
result+="]}"
echo "$result"
