#!/usr/bin/env bash
# make demo: the shipped default model on real photos from Debian packages.
# Faces are detected and cropped (edan-crop), scored (edan-predict) and
# explained (edan-gradcam); demo-out/ receives the records, the crops, the
# Grad-CAM overlays and report.html (one row per face: crop, overlay, top-3
# emotions). One line per face is printed.
#   run.sh [BIN_DIR]     (DEMO_OUT: output folder, default ./demo-out)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/bin}
out=${DEMO_OUT:-$PWD/demo-out}
export PATH=$bin:$PATH
command -v jq >/dev/null || { echo "demo: jq is missing (make deps installs it)" >&2; exit 3; }
model=${EDAN_MODEL:-$root/models/default.edan}
[ -f "$model" ] || { echo "demo: no model at $model (set EDAN_MODEL=FILE)" >&2; exit 3; }

# DEMO_PHOTOS: a folder of photos to use instead (the tests use it).
photos=${DEMO_PHOTOS:-$(bash "$root/examples/demo/photos.sh" "$root/build/demo-photos")}
# Everything under $out, with paths relative to it: the records, crops,
# overlays and the report move together.
rm -rf "$out"
mkdir -p "$out/photos"
cp "$photos"/* "$out/photos/"
cd "$out"
start=$(date +%s%N)
# Bare paths are records of their own (edan(7)); every face of each photo.
ls photos/* \
  | edan-crop --out-dir crops \
  | edan-predict -m "$model" \
  | edan-gradcam -m "$model" --layer conv4b --class pred --out-dir gradcam \
  > records.jsonl || [ $? -eq 1 ]
ms=$(( ($(date +%s%N) - start) / 1000000 ))

# Paths in the report are relative to the output folder.
jq -r '
  def top3: [.pred.probs | to_entries | sort_by(-.value) | .[:3][]
             | "<div class=p><span>\(.key)</span><i><b style=\"width:\(.value * 100 | floor)%\"></b></i>\(.value * 100 | round)%</div>"]
            | join("");
  "<tr><td>\(.image | split("/") | last)<br>face \(.face)</td>" +
  (if .error then "<td colspan=3 class=err>\(.error)</td></tr>"
   else "<td><img src=\"\(.crop)\"></td><td><img src=\"\(.gradcam.overlay)\"></td><td>\(top3)</td></tr>" end)
' records.jsonl > rows.html
{
  cat <<HTML
<!doctype html><html><head><meta charset="utf-8"><title>edan demo</title><style>
body{font:15px sans-serif;margin:2em}table{border-collapse:collapse}
td{border-bottom:1px solid #ccc;padding:8px;vertical-align:middle}
img{width:144px;height:144px;image-rendering:pixelated}
.p{display:flex;align-items:center;gap:6px}.p span{flex:0 0 70px}
.p i{flex:0 0 150px;height:12px;background:#eee}.p b{display:block;height:12px;background:#4a7}
.err{color:#b00}
</style></head><body><h1>edan demo</h1>
<p>Model: $(basename "$model") &middot; $(jq -s length records.jsonl) faces in $(ls photos | wc -l) photos &middot; Grad-CAM: conv4b, predicted class</p>
<table><tr><th>photo</th><th>face crop</th><th>Grad-CAM</th><th>top-3 emotions</th></tr>
HTML
  cat rows.html
  echo "</table></body></html>"
} > report.html
rm rows.html

jq -r '
  if .error then "\(.image | split("/") | last): \(.error)"
  else "\(.image | split("/") | last) face \(.face): \(.pred.label) \(.pred.probs[.pred.label] * 100 | round)%  (top 3: \([.pred.probs | to_entries | sort_by(-.value) | .[:3][] | "\(.key) \(.value * 100 | round)%"] | join(", ")))"
  end' records.jsonl
printf 'demo: %s faces in %d.%01d s (crop, predict, Grad-CAM); report: %s\n' "$(jq -s length records.jsonl)" $((ms / 1000)) $((ms % 1000 / 100)) "$out/report.html"
