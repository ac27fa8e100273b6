#!/usr/bin/env bash
# Fetches the demo photos from the Debian packages that ship them, without
# installing those packages (and their dependencies): apt-get download, then
# the one file out of each .deb. Prints the folder of the photos.
#   photos.sh CACHE_DIR
set -euo pipefail
cache=${1:?usage: photos.sh CACHE_DIR}
photos=$cache/photos
# package  path inside it  name in the demo
list=(
  "python3-skimage ./usr/lib/python3/dist-packages/skimage/data/astronaut.png astronaut.png"
  "facedetect ./usr/share/doc/facedetect/examples/grace_hopper_512x512.jpg grace_hopper.jpg"
  "opencv-doc ./usr/share/doc/opencv-doc/examples/data/messi5.jpg messi5.jpg"
)
mkdir -p "$photos" "$cache/debs"
for entry in "${list[@]}"; do
  read -r pkg path name <<< "$entry"
  [ -s "$photos/$name" ] && continue
  deb=$(ls "$cache/debs/${pkg}"_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    echo "demo: downloading the Debian package $pkg (for $name)" >&2
    if ! (cd "$cache/debs" && apt-get download "$pkg" >/dev/null 2>"$cache/debs/$pkg.log"); then
      echo "demo: apt-get download $pkg failed (see $cache/debs/$pkg.log): the photo $name" \
           "comes from that Debian package; check the apt sources and the network." >&2
      exit 3
    fi
    deb=$(ls "$cache/debs/${pkg}"_*.deb | head -1)
  fi
  tmp=$(mktemp -d "$cache/x.XXXXXX")
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "$path"
  mv "$tmp/$path" "$photos/$name.tmp" && mv "$photos/$name.tmp" "$photos/$name"
  rm -rf "$tmp" "$deb"  # the photo is kept; the package is not needed again
done
echo "$photos"
