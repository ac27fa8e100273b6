#!/bin/bash
# Face detectors on 640x480 photos (bench/RESULTS.md, "Face detectors"):
#   bench/detector-speed.sh  [N=100 photos from the first afw images]
# edan-crop per detector, 3 runs each, whole command (start-up included);
# prints the faces found and the three wall times.
set -e
src=$(cd "$(dirname "$0")/.." && pwd)
B=${BIN:-$src/build/bin}; F=${FIXTURES:-$src/build/tests}; N=${N:-100}
DATA=${EDAN_DATA:-$src/../shared/data}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; mkdir -p $W/photos; cd $W
ls $DATA/300w-subset/afw/*.jpg | head -$N | while read f; do $F/make-image photo $f 640 480 photos/$(basename $f); echo "{\"image\":\"$W/photos/$(basename $f)\"}"; done > photos.jsonl
for d in blazeface blazeface-front haar lbp dlib none; do
  found=$($B/edan-crop --out-dir crops --detector $d -q photos.jsonl | jq -s 'map(select(has("error")|not))|length' || true)
  ts=""
  for r in 1 2 3; do s=$(date +%s.%N); $B/edan-crop --out-dir crops --detector $d -q photos.jsonl > /dev/null || true; e=$(date +%s.%N); ts="$ts $(echo "$e - $s" | bc)"; done
  echo "$d found=$found photos=$N times=$ts"
done
