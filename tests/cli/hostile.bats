#!/usr/bin/env bats
# Hostile input for every program: empty and garbage input, over-long lines,
# odd paths, degenerate and oversized images, non-finite landmarks, wrong
# and truncated models, directories and read-only places where files are
# expected, a reader that goes away, signals, a full disk. What must hold:
# no crash, one output record per input record (an "error" where it failed),
# exit 0/1/2/3 as documented, no half-written file under a final name.
load helpers
bats_require_minimum_version 1.5.0

# A 32x32 grayscale gradient PNG (the face of edan-predict.bats).
PNG_B64='iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAAAAABWESUoAAABmUlEQVR42mNgYOcTlVHWMrSwd/MNiU7KLCiva+2ZPGvhivXb9h45fekmAzOXoIS8mq6JtZNnQHhcak5xVWNH/7S5S1Zv2nng+LmrdxjYeEWklTQNzO1cfYKjEjPyy2pbuifNXLB83dY9h09dvHGfgVNAXE5Vx9jK0cM/LDYlu6iyob1v6pzFqzbu2H/s7JXbjxh4hKUUNfTNbF28gyIT0vNKa5q7Js6Yv2ztlt2HTl64fu8pA7+YrIq2kaWDu19oTHJWYUV9W++U2YtWbti+7+iZy7cevmAQklRQ1zO1cfYKjIhPyy2pbuqcMH3e0jWbdx08cf7a3SevGfD68cHzdwx4/fj41UcGvH589vYLA14/vvzwnQGvH998/sWA14/vv/1lwOvHTz8ZGPD68esfZga8fvzxn40Brx9/M3Ey4PXjP1YeBrx+ZOTgZ8DrRxZuIQa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwA10hgfO5PNlQAAAABJRU5ErkJggg=='

# Every program that reads records on stdin, with the options it needs.
need_model() { [ -e model.edan ] || "$EDAN_TESTS_BIN/make-model" --size 32 model.edan; }

# Runs a command without root's power to write anywhere (CAP_DAC_OVERRIDE),
# so that a read-only directory is read-only even when the tests run as root.
unprivileged() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --inh-caps=-dac_override,-dac_read_search \
      --bounding-set=-dac_override,-dac_read_search -- "$@"
  else
    "$@"
  fi
}

# No stack traces, no sanitizer or library noise: at most `max` lines, each
# starting with the program's name.
quiet_stderr() {
  local prog=$1 max=${2:-2} file=${3:-err.txt}
  [ "$(count_lines "$file")" -le "$max" ] || { cat "$file"; return 1; }
  if grep -qv "^$prog: " "$file"; then cat "$file"; return 1; fi
}

# The number of non-blank lines of a file (what a record reader sees).
records_in() { tr -d ' \t\r' < "$1" | grep -ac .; }

# Checks that every line of stdin is one JSON object.
all_objects() { jq -e -c 'type == "object"' > /dev/null; }

# A PNG whose header claims W x H 8-bit gray pixels; the IDAT holds only
# the first rows, so nothing would fit in memory if it were decoded.
huge_png() {
  python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys, zlib
w, h, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
rows = zlib.compress(b'\0' * (w + 1) * 4)
open(out, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
                      + chunk(b'IDAT', rows) + chunk(b'IEND', b''))
EOF
}

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
  echo "$PNG_B64" | base64 -d > face.png
  HOGS=""
}

# Busy processes a test started (HOGS) end with it, whatever its outcome.
teardown() {
  [ -z "$HOGS" ] || kill $HOGS 2> /dev/null || true
}

# --- empty input ---------------------------------------------------------------

@test "empty stdin: no records, exit 0 (train: nothing to train on, exit 3)" {
  need_model
  mkdir empty
  printf '\n  \n\r\n' > blank.jsonl
  for cmd in "edan-predict -m model.edan" "edan-crop --out-dir C" \
             "edan-gradcam -m model.edan --out-dir G" "edan-index empty"; do
    run --separate-stderr $cmd < /dev/null
    [ "$status" -eq 0 ] || { echo "$cmd: $status $stderr"; return 1; }
    [ -z "$output" ] || { echo "$cmd: output '$output'"; return 1; }
    [ "$cmd" = "edan-index empty" ] && continue
    run --separate-stderr $cmd < blank.jsonl
    [ "$status" -eq 0 ] && [ -z "$output" ] || { echo "$cmd (blank lines): $status"; return 1; }
  done
  run --separate-stderr edan-eval < /dev/null
  [ "$status" -eq 0 ]
  echo "$output" | jq -e '.n == 0 and .records == 0' > /dev/null
  run --separate-stderr edan-auoverlap < /dev/null
  [ "$status" -eq 0 ]
  echo "$output" | jq -e . > /dev/null
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 -o m.edan < /dev/null
  [ "$status" -eq 3 ]
  [[ "$stderr" == "edan-train: "*"usable training records"* ]]
  [ ! -e m.edan ]
}

# --- over-long lines ------------------------------------------------------------

@test "a 100 MB line is an error record with bounded memory; the next record still goes through" {
  need_model
  # 100,000,000 bytes: above the documented 64 MiB line limit. (The issue
  # asks for 1 GB; 100 MB tests the same code path in a tenth of the time.)
  { printf '{"crop":"'; head -c 100000000 /dev/zero | tr '\0' a; printf '"}\n{"crop":"face.png"}\n'; } > long.jsonl
  run --separate-stderr /usr/bin/time -f '%M' -o rss.txt edan-predict -m model.edan long.jsonl
  [ "$status" -eq 1 ]
  [ "$(count_lines <<< "$output")" -eq 2 ]
  [ "$(sed -n 1p <<< "$output" | jq -r .error)" = "long.jsonl:1: line longer than 67108864 bytes" ]
  [ "$(sed -n 2p <<< "$output" | jq '.pred.landmarks | length')" -eq 68 ]
  # The reader holds at most one line of 64 MiB (plus its growth): well
  # under the 100 MB the line would take whole.
  local base rss
  run --separate-stderr /usr/bin/time -f '%M' -o base.txt edan-predict -m model.edan <<< '{"crop":"face.png"}'
  base=$(tail -1 base.txt) rss=$(tail -1 rss.txt)
  echo "max RSS: $rss KiB with the long line, $base KiB without"
  [ $((rss - base)) -lt $((100000000 / 1024)) ]
  # Consumers of every record see the error record too.
  sed -i '2s/.*/{"label":"happy","pred":{"label":"happy"}}/' long.jsonl
  run --separate-stderr edan-eval long.jsonl
  [ "$status" -eq 1 ]
  [ "$(jq -c '[.records, .n, .skipped]' <<< "$output")" = '[2,1,{"total":1,"reasons":{"error":1}}]' ]
}

# --- binary garbage -------------------------------------------------------------

@test "binary garbage on stdin: one record per line, each valid JSON, exit 1" {
  need_model
  python3 -c '
import random, sys
random.seed(8)
sys.stdout.buffer.write(bytes(random.randrange(256) for _ in range(20000)))' > garbage.bin
  local n
  n=$(records_in garbage.bin)
  for cmd in "edan-predict -m model.edan" "edan-crop --out-dir C" "edan-gradcam -m model.edan --out-dir G"; do
    run --separate-stderr $cmd < garbage.bin
    [ "$status" -eq 1 ] || { echo "$cmd: status $status: $stderr"; return 1; }
    [ "$(count_lines <<< "$output")" -eq "$n" ] || { echo "$cmd: $(count_lines <<< "$output") of $n"; return 1; }
    all_objects <<< "$output"
    [ "$(jq -c 'select(has("error") | not)' <<< "$output" | count_lines)" -eq 0 ]
    only_summary "$stderr"
  done
  run --separate-stderr edan-eval garbage.bin
  [ "$status" -eq 1 ]
  run --separate-stderr edan-auoverlap garbage.bin
  [ "$status" -eq 1 ]
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 -o m.edan garbage.bin
  [ "$status" -eq 3 ]
  [ ! -e m.edan ]
}

@test "garbage where an image or a crop is expected: error records naming the file" {
  need_model
  head -c 3000 /dev/urandom > noise.png
  { printf '\x89PNG\r\n\x1a\n'; head -c 3000 /dev/urandom; } > fakepng.png
  { printf '\xff\xd8\xff\xe0'; head -c 3000 /dev/urandom; printf '\xff\xd9'; } > fake.jpg
  head -c 200 face.png > truncated.png
  for f in noise.png fakepng.png fake.jpg truncated.png; do echo "{\"crop\":\"$f\"}"; done > in.jsonl
  run --separate-stderr edan-predict -m model.edan in.jsonl
  [ "$status" -eq 1 ]
  [ "$(jq -r .error <<< "$output" | grep -c '\.png\|\.jpg')" -eq 4 ]
  sed 's/"crop"/"image"/' in.jsonl > img.jsonl
  run --separate-stderr edan-crop --out-dir C img.jsonl
  [ "$status" -eq 1 ]
  [ "$(jq -r .error <<< "$output" | grep -c '\.png\|\.jpg')" -eq 4 ]
}

@test "a device, a symlink to one and a FIFO where an image is expected: refused unread, bounded memory" {
  need_model
  ln -s /dev/zero zero.jpg
  mkfifo fifo.jpg
  # Four device records for four threads, then a good face: before the fix
  # each read 1 GiB of /dev/zero (8.5 GB with --threads 4) and the FIFO hung.
  printf '{"image":"/dev/zero"}\n{"image":"zero.jpg"}\n{"image":"/dev/zero"}\n{"image":"fifo.jpg"}\n{"image":"face.png"}\n' > in.jsonl
  run --separate-stderr timeout 60 /usr/bin/time -f '%M' -o rss.txt \
    edan-crop --threads 4 --fallback full --out-dir C in.jsonl
  [ "$status" -eq 1 ]
  [ "$(count_lines <<< "$output")" -eq 5 ]
  [ "$(sed -n 1p <<< "$output" | jq -r .error)" = "/dev/zero: is a device, not a regular file" ]
  [ "$(sed -n 2p <<< "$output" | jq -r .error)" = "zero.jpg: is a device, not a regular file" ]
  [ "$(sed -n 4p <<< "$output" | jq -r .error)" = "fifo.jpg: is a FIFO, not a regular file" ]
  sed -n 5p <<< "$output" | jq -e 'has("error") | not' > /dev/null
  echo "edan-crop --threads 4: max RSS $(tail -1 rss.txt) KiB"
  [ "$(tail -1 rss.txt)" -lt 1000000 ]
  sed 's/"image"/"crop"/' in.jsonl > crops.jsonl
  run --separate-stderr timeout 60 edan-predict -m model.edan crops.jsonl
  [ "$status" -eq 1 ]
  [ "$(jq -r '.error // "ok"' <<< "$output" | cut -d: -f2 | tr '\n' ,)" = " is a device, not a regular file, is a device, not a regular file, is a device, not a regular file, is a FIFO, not a regular file,ok," ]
}

@test "NaN literals and a box off the image: error records that keep the record's fields" {
  need_model
  # Python's json.dumps writes NaN; the image path and the rest survive.
  printf '%s\n' '{"image":"face.png","id":7,"box":[0,NaN,10,10]}' \
    '{"image":"face.png","id":8,"box":[5000,5000,100,100]}' '{"image":"face.png","id":9,"box":[-200,0,100,32]}' \
    '{"image":"face.png","id":10,"box":[-20,-20,30,30]}' > in.jsonl
  for cmd in "edan-crop --out-dir C" "edan-predict -m model.edan"; do
    run --separate-stderr $cmd in.jsonl
    [ "$status" -eq 1 ]
    [ "$(count_lines <<< "$output")" -eq 4 ]
    [ "$(jq -r '.image' <<< "$output" | sort -u)" = face.png ]
    [ "$(jq -c '.id' <<< "$output" | tr '\n' ,)" = "7,8,9,10," ]
    [ "$(sed -n 1p <<< "$output" | jq -r .error)" = "in.jsonl:1: 'box[1]' is NaN or Infinity, which JSON cannot hold (from Python, write json.dumps(..., allow_nan=False) or None)" ]
    [ "$(sed -n 2p <<< "$output" | jq -r .error)" = "face.png: box: [5000,5000,100,100] lies outside the 32x32 image" ]
    [ "$(sed -n 3p <<< "$output" | jq -r .error)" = "face.png: box: [-200,0,100,32] lies outside the 32x32 image" ]
    # A box that overlaps the image at all is a face.
    sed -n 4p <<< "$output" | jq -e 'has("error") | not' > /dev/null
  done
}

# --- odd paths ------------------------------------------------------------------

@test "paths with invalid UTF-8 pass through edan-index, edan-crop and edan-predict" {
  need_model
  mkdir -p data/happy
  cp face.png "data/happy/bad"$'\xff\xfe'"name.png"
  run --separate-stderr edan-index data
  [ "$status" -eq 0 ]
  [ "$(count_lines <<< "$output")" -eq 1 ]
  echo "$output" > index.jsonl
  run --separate-stderr edan-predict -m model.edan --detector none index.jsonl
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  [ "$(jq '.pred.landmarks | length' <<< "$output")" -eq 68 ]
  run --separate-stderr edan-crop --out-dir C --detector none --fallback full index.jsonl
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  [ -e "C/data/happy/bad"$'\xff\xfe'"name.png.0.png" ]
  # As a bare path on stdin, too.
  run --separate-stderr edan-predict -m model.edan --detector none <<< "data/happy/bad"$'\xff\xfe'"name.png"
  [ "$status" -eq 0 ]
}

@test "paths with spaces and newlines, escaped in JSON, reach their files" {
  need_model
  mkdir -p data/sad
  cp face.png "data/sad/a b"$'\n'"c.png"
  cp face.png "data/sad/ lead and trail .png"
  run --separate-stderr edan-index data
  [ "$status" -eq 0 ]
  [ "$(count_lines <<< "$output")" -eq 2 ]     # a newline in a name stays escaped
  echo "$output" > index.jsonl
  run --separate-stderr edan-predict -m model.edan --detector none index.jsonl
  [ "$status" -eq 0 ]
  [ "$(jq -r 'select(.pred) | .image' <<< "$output" | count_lines)" -eq 3 ]  # 2 names, one with 2 lines
  run --separate-stderr edan-crop --out-dir C --detector none --fallback full index.jsonl
  [ "$status" -eq 0 ]
  [ -e "C/data/sad/a b"$'\n'"c.png.0.png" ]
  [ -e "C/data/sad/ lead and trail .png.0.png" ]
  echo "$output" > crops.jsonl
  run --separate-stderr edan-gradcam -m model.edan --out-dir G crops.jsonl
  [ "$status" -eq 0 ]
}

# --- tiny and huge images ---------------------------------------------------------

@test "1x1 images: crop (fallback), predict, gradcam and train handle them" {
  need_model
  "$EDAN_TESTS_BIN/make-image" flat 1 1 128 one.png
  run --separate-stderr edan-crop --out-dir C --fallback none <<< one.png
  [ "$status" -eq 1 ]
  [[ "$(jq -r .error <<< "$output")" == *"no face"* ]]
  run --separate-stderr edan-crop --out-dir C --fallback full <<< one.png
  [ "$status" -eq 0 ]
  [ "$(jq -r .crop <<< "$output")" = C/one.png.0.png ]
  run --separate-stderr edan-predict -m model.edan <<< '{"crop":"one.png","label":"happy"}'
  [ "$status" -eq 0 ]
  jq -e '.pred.label' <<< "$output" > /dev/null
  echo "$output" > pred.jsonl
  run --separate-stderr edan-gradcam -m model.edan --out-dir G <<< '{"crop":"one.png"}'
  [ "$status" -eq 0 ]
  for i in 1 2 3 4; do echo "{\"crop\":\"one.png\",\"label\":\"happy\",\"subject\":\"s$i\"}"; done > recs.jsonl
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 1 --batch 2 -q -o m.edan recs.jsonl
  [ "$status" -eq 0 ]
  [ -s m.edan ]
}

@test "a 20000x20000 image is refused from its header, quickly and without decoding" {
  need_model
  huge_png 20000 20000 huge.png
  [ "$(stat -c %s huge.png)" -lt 10000 ]
  run --separate-stderr /usr/bin/time -f '%M %e' -o cost.txt edan-predict -m model.edan <<< '{"crop":"huge.png"}'
  [ "$status" -eq 1 ]
  [ "$(jq -r .error <<< "$output")" = "huge.png: image of 20000x20000 pixels is larger than the maximum of 50000000 pixels" ]
  read -r rss secs < <(tail -1 cost.txt)
  echo "max RSS $rss KiB, $secs s"
  [ "$rss" -lt 1000000 ]   # decoding would need 400 MB; LibTorch alone takes about 300
  run --separate-stderr edan-crop --out-dir C <<< huge.png
  [ "$status" -eq 1 ]
  [[ "$(jq -r .error <<< "$output")" == *"larger than the maximum of 50000000 pixels"* ]]
  run --separate-stderr edan-gradcam -m model.edan --out-dir G <<< '{"crop":"huge.png"}'
  [ "$status" -eq 1 ]
  [[ "$(jq -r .error <<< "$output")" == *"larger than the maximum"* ]]
  echo '{"crop":"huge.png","label":"sad"}' > recs.jsonl
  echo '{"crop":"face.png","label":"sad","subject":"a"}' >> recs.jsonl
  echo '{"crop":"face.png","label":"happy","subject":"b"}' >> recs.jsonl
  echo '{"crop":"face.png","label":"happy","subject":"c"}' >> recs.jsonl
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --epochs 0 -o m.edan recs.jsonl
  [ "$status" -eq 1 ]
  [[ "$stderr" == *"larger than the maximum"* ]]
}

@test "an image just at the pixel limit is not refused by its header" {
  huge_png 10000 5000 limit.png     # 50,000,000 pixels: allowed (IDAT short: cannot decode)
  run --separate-stderr edan-crop --out-dir C --detector none <<< limit.png
  [ "$status" -eq 1 ]
  [[ "$(jq -r .error <<< "$output")" != *"larger than the maximum"* ]]
}

@test "formats whose header edan does not read are refused, not handed to OpenCV" {
  # 30000 x 30000 pixels in Sun raster, PAM, PFM and Radiance headers, no
  # pixel data: OpenCV would allocate first (and decode PFM and HDR through
  # a temporary file, printing its own error).
  printf '\x59\xa6\x6a\x95\x00\x00\x75\x30\x00\x00\x75\x30\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00' > big.ras
  printf 'P7\nWIDTH 30000\nHEIGHT 30000\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n' > big.pam
  printf 'PF\n30000 30000\n-1.0\n' > big.pfm
  printf '#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n' > big.hdr
  printf '%s\n' big.ras big.pam big.pfm big.hdr > in.txt
  run --separate-stderr edan-crop --out-dir C --detector none in.txt
  [ "$status" -eq 1 ]
  [ "$(jq -r .error <<< "$output" | grep -c ': cannot decode: not a PNG, JPEG, BMP, TIFF, WebP or PNM image')" -eq 4 ]
  only_summary "$stderr"
}

# --- non-finite numbers -----------------------------------------------------------

@test "NaN and inf in landmarks: error records, never a crash" {
  need_model
  local lm inf nan
  lm=$(awk 'BEGIN { printf "["; for (i = 0; i < 68; i++) printf "%s[%d,%d]", (i ? "," : ""), 4 + (i % 20), 6 + int(i / 4); printf "]" }')
  inf=${lm/\[4,6\]/[1e999,6]}
  nan=${lm/\[4,6\]/[NaN,6]}
  {
    echo "{\"image\":\"face.png\",\"landmarks\":$inf}"
    echo "{\"image\":\"face.png\",\"landmarks\":$nan}"
    echo "{\"image\":\"face.png\",\"landmarks\":[[-1e308,1e308]]}"
  } > in.jsonl
  run --separate-stderr edan-crop --out-dir C in.jsonl
  [ "$status" -eq 1 ]
  [ "$(count_lines <<< "$output")" -eq 3 ]
  [ "$(jq -r .error <<< "$output" | grep -c .)" -eq 3 ]
  sed 's/"image"/"crop"/' in.jsonl > crops.jsonl
  run --separate-stderr edan-predict -m model.edan crops.jsonl
  [ "$(count_lines <<< "$output")" -eq 3 ]
  run --separate-stderr edan-gradcam -m model.edan --out-dir G crops.jsonl
  [ "$(count_lines <<< "$output")" -eq 3 ]
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --epochs 0 -o m.edan crops.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"not finite"* ]]
  # A prediction with non-finite landmarks is skipped by edan-eval, counted.
  echo "{\"image\":\"a.png\",\"label\":\"happy\",\"landmarks\":$lm,\"pred\":{\"label\":\"happy\",\"landmarks\":$inf}}" > p.jsonl
  echo "{\"image\":\"b.png\",\"label\":\"happy\",\"landmarks\":$lm,\"pred\":{\"label\":\"sad\",\"landmarks\":$lm}}" >> p.jsonl
  run --separate-stderr edan-eval p.jsonl
  [ "$status" -eq 1 ]
  jq -e . <<< "$output" > /dev/null
  [[ "$output" != *"NaN"* && "$output" != *"Infinity"* && "$output" != *"inf"* ]]
}

# --- wrong models -----------------------------------------------------------------

@test "a model file from another program, a truncated or empty model, a directory: exit 3, one line" {
  need_model
  head -c $(( $(stat -c %s model.edan) / 2 )) model.edan > half.edan
  : > empty.edan
  echo '{"crop":"face.png"}' > rec.jsonl
  mkdir modeldir
  for m in face.png rec.jsonl half.edan empty.edan modeldir /nonexistent/m.edan; do
    for cmd in "edan-predict" "edan-gradcam --out-dir G"; do
      run --separate-stderr $cmd -m "$m" rec.jsonl
      [ "$status" -eq 3 ] || { echo "$cmd -m $m: status $status"; return 1; }
      [ -z "$output" ]
      echo "$stderr" > err.txt
      quiet_stderr "${cmd%% *}" 1 || { echo "$cmd -m $m"; return 1; }
      [[ "$stderr" == *"$m"* ]] || { echo "$cmd -m $m: $stderr"; return 1; }
    done
  done
}

@test "a model damaged in place is refused on load; a NaN model's output is an error record" {
  need_model
  # 10 bytes overwritten in the middle of the largest tensor's data: before
  # the checksum, it loaded and predicted nonsense. (Offset 1000 of this
  # small fixture falls in a zip entry's padding, which no reader uses.)
  python3 - <<'EOF'
import shutil, zipfile
zf = zipfile.ZipFile('model.edan')
info = max((i for i in zf.infolist() if '/data/' in i.filename), key=lambda i: i.file_size)
with open('model.edan', 'rb') as f:
    f.seek(info.header_offset + 26)
    n, m = int.from_bytes(f.read(2), 'little'), int.from_bytes(f.read(2), 'little')
start = info.header_offset + 30 + n + m
for name, at in (('mid.edan', start + info.file_size // 2),):
    shutil.copy('model.edan', name)
    with open(name, 'r+b') as f:
        f.seek(at)
        f.write(b'\x55' * 10)
EOF
  echo '{"crop":"face.png"}' > rec.jsonl
  for m in mid.edan; do
    for cmd in "edan-predict" "edan-gradcam --out-dir G"; do
      run --separate-stderr $cmd -m "$m" rec.jsonl
      [ "$status" -eq 3 ] || { echo "$cmd -m $m: status $status: $output"; return 1; }
      [ -z "$output" ]
      echo "$stderr" > err.txt
      quiet_stderr "${cmd%% *}" 1 || return 1
      [[ "$stderr" == *"$m"* ]]
    done
  done
  run --separate-stderr edan-predict -m mid.edan rec.jsonl
  [[ "$stderr" == *"damaged: its weights checksum is crc32:"* ]]
  # A valid file whose training diverged: never a prediction.
  "$EDAN_TESTS_BIN/make-model" --size 32 --nan-weights nan.edan
  run --separate-stderr edan-predict -m nan.edan rec.jsonl
  [ "$status" -eq 1 ]
  [ "$(jq -r .error <<< "$output")" = "the model's output is not finite: its file is damaged or its training diverged" ]
  [ "$(jq 'has("pred")' <<< "$output")" = false ]
  run --separate-stderr edan-gradcam -m nan.edan --out-dir G rec.jsonl
  [ "$status" -eq 1 ]
  [ "$(jq 'has("pred") or has("gradcam")' <<< "$output")" = false ]
}

@test "a checkpoint given as a model, a model given as a checkpoint: exit 3" {
  need_model
  for i in 1 2 3 4; do echo "{\"crop\":\"face.png\",\"label\":\"happy\",\"subject\":\"s$i\"}"; done > recs.jsonl
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 1 --batch 2 --max-steps 1 -q -o m.edan recs.jsonl
  [ "$status" -eq 0 ]
  [ -s m.edan.ckpt ]
  run --separate-stderr edan-predict -m m.edan.ckpt <<< '{"crop":"face.png"}'
  [ "$status" -eq 3 ]
  [[ "$stderr" == "edan-predict: m.edan.ckpt: "* ]]
  cp model.edan bad.ckpt
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 1 --batch 2 -q \
    --resume --checkpoint bad.ckpt -o m2.edan recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"bad.ckpt"* ]]
  head -c 1000 m.edan.ckpt > cut.ckpt
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 1 --batch 2 -q \
    --resume --checkpoint cut.ckpt -o m2.edan recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"cut.ckpt"* ]]
  [ ! -e m2.edan ]
  # Damaged inside (its zip directory intact): one line, no C++ backtrace.
  for at in 200 $(( $(stat -c %s m.edan.ckpt) / 2 )); do
    cp m.edan.ckpt bad.ckpt
    printf 'XXXXXXXXXX' | dd of=bad.ckpt bs=1 seek="$at" conv=notrunc status=none
    run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 1 --batch 2 -q \
      --resume --checkpoint bad.ckpt -o m2.edan recs.jsonl
    [ "$status" -eq 3 ]
    echo "$stderr" > err.txt
    quiet_stderr edan-train 1
  done
}

# --- directories and read-only places ----------------------------------------------

@test "a directory where a file is expected" {
  need_model
  mkdir adir
  # A folder argument is a folder of images: an empty one gives no record
  # and says so.
  run --separate-stderr edan-predict -m model.edan adir
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  [ "$stderr" = "edan-predict: adir: no image in this folder" ]
  run --separate-stderr edan-predict -m model.edan <<< '{"crop":"adir"}'
  [ "$status" -eq 1 ]
  [ "$(jq -r .error <<< "$output")" = "adir: is a directory" ]
  run --separate-stderr edan-crop --out-dir C <<< adir
  [ "$status" -eq 1 ]
  [ "$(jq -r .error <<< "$output")" = "adir: is a directory" ]
  run --separate-stderr edan-predict -m model.edan -o adir <<< '{"crop":"face.png"}'
  [ "$status" -eq 3 ]
  [ -d adir ]
  echo '{"crop":"face.png","label":"happy"}' > recs.jsonl
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --epochs 0 -o adir recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == *adir* ]]
  run --separate-stderr edan-index --layout fer2013-csv --out-dir pngs adir
  [ "$status" -eq 3 ]
  run --separate-stderr edan-index recs.jsonl
  [ "$status" -eq 3 ]
  echo '{"label":"happy","pred":{"label":"happy"}}' > p.jsonl
  run --separate-stderr edan-eval --plots recs.jsonl p.jsonl
  [ "$status" -eq 3 ]
}

@test "a read-only output directory: exit 3 naming it, nothing left behind" {
  need_model
  mkdir ro
  chmod 555 ro
  echo '{"crop":"face.png","label":"happy","subject":"s1"}' > recs.jsonl
  echo '{"crop":"face.png","label":"sad","subject":"s2"}' >> recs.jsonl
  run --separate-stderr unprivileged edan-predict -m model.edan -o ro/out.jsonl recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == "edan-predict: ro/out.jsonl: "* ]]
  run --separate-stderr unprivileged edan-crop --out-dir ro --detector none <<< face.png
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"ro/"* ]]
  run --separate-stderr unprivileged edan-gradcam -m model.edan --out-dir ro recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"ro/"* ]]
  run --separate-stderr unprivileged edan-eval -o ro/r.json recs.jsonl
  [ "$status" -eq 3 ]
  run --separate-stderr unprivileged edan-auoverlap -o ro/a.json < /dev/null
  [ "$status" -eq 3 ]
  # edan-train refuses before it trains, not after hours of work.
  run --separate-stderr unprivileged /usr/bin/time -f %e -o t.txt edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 50 --batch 2 -o ro/m.edan recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"ro/m.edan"* ]]
  [ "$(ls -A ro)" = "" ]
}

# --- a reader that goes away ------------------------------------------------------

@test "SIGPIPE from head -1: exit 0, nothing on stderr" {
  need_model
  mkdir -p data/happy
  for i in $(seq 1 400); do ln -s ../../face.png "data/happy/$i.png"; done
  yes '{"crop":"face.png"}' | head -3000 > many.jsonl
  sed 's/"crop"/"image"/' many.jsonl > images.jsonl
  yes '{"label":"happy","pred":{"label":"sad"}}' | head -3000 > preds.jsonl
  for cmd in "edan-index data" "edan-predict -m model.edan --batch 4 many.jsonl" \
             "edan-crop --out-dir C --detector none images.jsonl" \
             "edan-gradcam -m model.edan --out-dir G --batch 2 many.jsonl" \
             "edan-eval --format markdown preds.jsonl" "edan-auoverlap --table -f markdown"; do
    run bash -c "set -o pipefail; $cmd 2> err.txt | head -1 > /dev/null; echo \${PIPESTATUS[0]}"
    [ "$output" = 0 ] || { echo "$cmd: exit $output: $(cat err.txt)"; return 1; }
    [ ! -s err.txt ] || { echo "$cmd:"; cat err.txt; return 1; }
  done
}

# --- interrupted training ---------------------------------------------------------

@test "SIGINT and SIGKILL during edan-train: the checkpoint survives, --resume finishes" {
  for i in $(seq 1 8); do echo "{\"crop\":\"face.png\",\"label\":\"happy\",\"subject\":\"s$i\"}"; done > recs.jsonl
  local args=(--size 32 --widths 4,4,8,8 --threads 1 --stages 1 --epochs 400 --patience 1000 --batch 4 -q -o m.edan recs.jsonl)
  edan-train "${args[@]}" &
  local pid=$! rc=0
  for _ in $(seq 1 100); do [ -e m.edan.ckpt ] && break; sleep 0.1; done
  kill -INT "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 130 ]
  [ -s m.edan.ckpt ] && [ ! -e m.edan ]
  # SIGKILL gives no chance to clean up: whatever was being written stays
  # under a temporary name, the last complete checkpoint under its own.
  edan-train --resume "${args[@]}" &
  pid=$!
  sleep 1.5
  kill -KILL "$pid"
  wait "$pid" || true
  [ -s m.edan.ckpt ] && [ ! -e m.edan ]
  run --separate-stderr edan-train --resume "${args[@]/400/3}"
  [ "$status" -ne 3 ] || { echo "$stderr"; return 1; }
  run --separate-stderr edan-train --resume "${args[@]}"
  [ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
  [ -s m.edan ]
  need_model
  run --separate-stderr edan-predict -m m.edan <<< '{"crop":"face.png"}'
  [ "$status" -eq 0 ]
}

# --- interrupted and concurrent runs ---------------------------------------------

# N records of three distinct crops, each with its number, in in.jsonl.
many_records() {
  "$EDAN_TESTS_BIN/make-image" ramp 32 32 a.png
  "$EDAN_TESTS_BIN/make-image" flat 32 32 90 b.png
  "$EDAN_TESTS_BIN/make-image" mirror a.png c.png
  awk -v n="$1" 'BEGIN { split("a b c", f); for (i = 1; i <= n; i++)
    printf "{\"crop\":\"%s.png\",\"n\":%d}\n", f[i % 3 + 1], i }' > in.jsonl
}

# Waits up to 10 s for a file to appear.
wait_for() { for _ in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }

# Waits up to 20 s until out.jsonl.partial.pos records more than $1 inputs done.
wait_past() {
  for _ in $(seq 1 400); do
    [ -e out.jsonl.partial.pos ] && (( $(jq .inputs out.jsonl.partial.pos) > $1 )) && return 0
    sleep 0.05
  done
  return 1
}

@test "SIGTERM during edan-predict -o: no output, no temporary file left, exit 143" {
  need_model
  many_records 20000
  edan-predict -q -m model.edan --threads 1 -o out.jsonl in.jsonl &
  local pid=$! rc=0
  wait_for out.jsonl.lock
  sleep 0.3
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 143 ]
  [ -z "$(ls | grep '^out\.jsonl')" ] || { ls; return 1; }
}

@test "--resume: killed at a random point and run again, the output equals an uninterrupted run's" {
  need_model
  many_records 20000
  local args=(-m model.edan --threads 1 --batch 8 -o out.jsonl --resume in.jsonl)
  edan-predict -q -m model.edan --threads 1 --batch 8 -o ref.jsonl in.jsonl
  [ "$(count_lines ref.jsonl)" -eq 20000 ]
  # Two interruptions: SIGKILL (no clean-up at all), then SIGTERM, each
  # within 1 s of a position saved after the run's first (positions are
  # saved at most once a second): far from the end of the 20,000 records
  # (about 13 s of work on 1 thread here).
  local sig pid done=0
  for sig in KILL TERM; do
    edan-predict -q "${args[@]}" &
    pid=$!
    wait_past $((done + 8))
    sleep "0.$((RANDOM % 10))"
    kill -"$sig" "$pid"
    wait "$pid" || true
    [ ! -e out.jsonl ]
    [ -s out.jsonl.partial ]
    done=$(jq .inputs out.jsonl.partial.pos)
    echo "after SIG$sig: $done of 20000 done"
    (( done > 0 && done < 20000 ))
    [ -z "$(ls | grep '\.tmp\.')" ] || { ls; return 1; }
  done
  run --separate-stderr edan-predict "${args[@]}"
  [ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
  [[ "$stderr" == *"resuming out.jsonl: $done input records already done"* ]]
  cmp out.jsonl ref.jsonl
  [ ! -e out.jsonl.partial ] && [ ! -e out.jsonl.partial.pos ] && [ ! -e out.jsonl.lock ]
}

@test "--resume refuses another command's partial output, and needs -o" {
  need_model
  many_records 3
  run --separate-stderr edan-predict --resume in.jsonl
  [ "$status" -eq 2 ]
  [[ "$stderr" == *"--resume needs -o FILE"* ]]
  run --separate-stderr edan-gradcam -m model.edan --out-dir G --mean M --resume -o g.jsonl in.jsonl
  [ "$status" -eq 2 ]
  [[ "$stderr" == *"--resume with --mean"* ]]
  echo '{"crop":"a.png"}' > out.jsonl.partial
  echo '{"inputs":1,"bytes":17,"command":["--batch","3","-o","out.jsonl","--resume","in.jsonl"]}' \
    > out.jsonl.partial.pos
  run --separate-stderr edan-predict -m model.edan -o out.jsonl --resume in.jsonl
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"out.jsonl.partial was written by another command"* ]]
  [ -s out.jsonl.partial ] && [ ! -e out.jsonl ]
  # The same command again (whatever -q and --threads): one record kept, two done now.
  run --separate-stderr edan-predict --threads 1 -m model.edan --batch 3 -o out.jsonl --resume in.jsonl
  [ "$status" -eq 3 ]
  run --separate-stderr edan-predict -q --batch 3 -o out.jsonl --resume in.jsonl
  [ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
  [ "$(count_lines out.jsonl)" -eq 3 ]
  [ "$(head -1 out.jsonl)" = '{"crop":"a.png"}' ]
  [ "$(sed -n 2p out.jsonl | jq -r .n)" = 2 ]
}

@test "an output that is also an input is refused before anything is written" {
  need_model
  many_records 3
  cp in.jsonl before.jsonl
  run --separate-stderr edan-predict -m model.edan -o in.jsonl in.jsonl
  [ "$status" -eq 2 ]
  [[ "$stderr" == *"in.jsonl: is also the output (-o in.jsonl)"* ]]
  ln -s in.jsonl link.jsonl
  run --separate-stderr edan-crop --detector none --out-dir crops -o link.jsonl in.jsonl
  [ "$status" -eq 2 ]
  cmp in.jsonl before.jsonl
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 -q -o in.jsonl in.jsonl
  [ "$status" -eq 2 ]
  [[ "$stderr" == *"-o in.jsonl is also an input (in.jsonl)"* ]]
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 -q -o m.edan --val link.jsonl \
    --log in.jsonl before.jsonl
  [ "$status" -eq 2 ]
  [[ "$stderr" == *"--log in.jsonl is also an input (link.jsonl)"* ]]
  cmp in.jsonl before.jsonl
}

@test "two edan-train runs with the same -o: the second fails at once, the first is untouched" {
  for i in $(seq 1 8); do echo "{\"crop\":\"face.png\",\"label\":\"happy\",\"subject\":\"s$i\"}"; done > recs.jsonl
  local args=(--size 32 --widths 4,4,8,8 --threads 1 --stages 1 --patience 1000 --batch 4 -q -o m.edan recs.jsonl)
  edan-train --epochs 400 "${args[@]}" &
  local pid=$! rc=0
  wait_for m.edan.ckpt
  run --separate-stderr edan-train --epochs 1 "${args[@]}"
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"the model m.edan is in use by another run (pid $pid)"* ]] || { echo "$stderr"; return 1; }
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 143 ]
  [ ! -e m.edan.lock ]
  # The lock went with the run: the next one takes it.
  rm m.edan.ckpt
  run --separate-stderr edan-train --epochs 1 "${args[@]}"
  [ "$status" -eq 0 ] && [ -s m.edan ]
}

@test "--threads 0 beside busy cores: predict runs on the idle ones, the same records; train keeps all and warns" {
  [ "$(nproc)" -ge 2 ] || skip "one core: nothing to choose"
  need_model
  many_records 30000
  head -40 in.jsonl > few.jsonl
  for i in 1 2 3 4; do echo "{\"crop\":\"face.png\",\"label\":\"happy\",\"subject\":\"s$i\"}"; done > recs.jsonl
  edan-predict -q -m model.edan --threads 1 -o ref.jsonl few.jsonl
  # The threads of a run, once it has begun predicting.
  threads_of() {
    edan-predict -q -m model.edan "$@" -o out.jsonl in.jsonl &
    local pid=$! n
    sleep 3
    n=$(ls "/proc/$pid/task" | wc -l)
    kill "$pid"
    wait "$pid" 2> /dev/null || true
    echo "$n"
  }
  # Every core busy: one process that spins on each.
  local i one all
  for i in $(seq "$(nproc)"); do sha1sum /dev/zero & HOGS="$HOGS $!"; done
  sleep 0.3
  one=$(threads_of --threads 1)
  all=$(threads_of --threads "$(nproc)")
  echo "threads: --threads 1: $one, --threads $(nproc): $all, default: $(threads_of)"
  (( all > one ))
  [ "$(threads_of)" -eq "$one" ]
  run --separate-stderr edan-predict -m model.edan -o out.jsonl few.jsonl
  [ "$status" -eq 0 ] && [ -z "$stderr" ]
  cmp out.jsonl ref.jsonl
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --stages 1 --epochs 1 -o m.edan recs.jsonl
  [ "$status" -eq 0 ]
  [[ "$stderr" == *"$(nproc) threads will run slowly beside it"* ]] || { echo "$stderr"; return 1; }
}

@test "-o a FIFO or /dev/null: the records go into it, it is never replaced, nothing is created beside it" {
  need_model
  many_records 5
  mkfifo out.fifo
  timeout 20 cat out.fifo > got.jsonl &
  local reader=$!
  run --separate-stderr timeout 20 edan-predict -m model.edan -o out.fifo in.jsonl
  [ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
  wait "$reader"
  [ -p out.fifo ]
  [ "$(count_lines got.jsonl)" -eq 5 ]
  [ "$(ls | grep -c '^out\.fifo')" -eq 1 ]
  run --separate-stderr edan-predict -m model.edan -o /dev/null in.jsonl
  [ "$status" -eq 0 ]
  [ -c /dev/null ] && [ ! -e /dev/null.lock ]
  run --separate-stderr edan-predict -m model.edan -o /dev/null --resume in.jsonl
  [ "$status" -eq 2 ]
  for i in 1 2 3 4; do echo "{\"crop\":\"face.png\",\"label\":\"sad\",\"subject\":\"s$i\"}"; done > recs.jsonl
  run --separate-stderr edan-train --size 32 --widths 4,4,8,8 --stages 1 --epochs 1 --threads 1 -q \
    -o /dev/null --checkpoint ck.edan recs.jsonl
  [ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
  [ -c /dev/null ] && [ ! -e /dev/null.lock ]
}

# --- a full disk ------------------------------------------------------------------

@test "a full disk (ulimit -f): exit 3 with a clear error, no half-written file under its name" {
  need_model
  yes '{"crop":"face.png"}' | head -200 > many.jsonl
  # Under `ulimit -f` stderr must be a pipe, or the error message itself
  # could not be written: hence plain `run` (stdout and stderr into one pipe).
  run bash -c 'ulimit -f 8; edan-predict -m model.edan -o out.jsonl many.jsonl'
  [ "$status" -eq 3 ]
  [ "$output" = "edan-predict: out.jsonl: write error: File too large" ]
  [ ! -e out.jsonl ]
  [ -z "$(ls out.jsonl* 2>/dev/null)" ]
  # stdout redirected into a file: the same error, exit 3.
  run bash -c 'ulimit -f 8; edan-predict -m model.edan many.jsonl > out2.jsonl'
  [ "$status" -eq 3 ]
  [ "$output" = "edan-predict: stdout: write error: File too large" ]
  run bash -c 'ulimit -f 0; edan-crop --out-dir C --detector none <<< face.png'
  [ "$status" -eq 3 ]
  [ "$output" = "edan-crop: C/face.png.0.png: write error: File too large" ]
  [ -z "$(find C -type f 2>/dev/null)" ]
  run bash -c 'ulimit -f 0; edan-gradcam -m model.edan --out-dir G many.jsonl'
  [ "$status" -eq 3 ]
  [[ "$output" == "edan-gradcam: G/"*"File too large" ]]
  [ -z "$(find G -type f 2>/dev/null)" ]
  for i in 1 2 3 4; do echo "{\"crop\":\"face.png\",\"label\":\"happy\",\"subject\":\"s$i\"}"; done > recs.jsonl
  run bash -c 'ulimit -f 4; edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 1 --batch 2 -q -o m.edan recs.jsonl'
  [ "$status" -eq 3 ]
  [[ "$output" == "edan-train: m.edan"*"File too large" ]]
  [ -z "$(ls m.edan* 2>/dev/null)" ]
  echo '{"label":"happy","pred":{"label":"happy"}}' > p.jsonl
  run bash -c 'ulimit -f 0; edan-eval -o r.json p.jsonl'
  [ "$status" -eq 3 ]
  [[ "$output" == "edan-eval: "*"File too large" ]]
  [ -z "$(ls r.json* 2>/dev/null)" ]
  mkdir -p data/happy
  cp face.png data/happy/a.png
  run bash -c 'ulimit -f 0; edan-index -o idx.jsonl data'
  [ "$status" -eq 3 ]
  [ "$output" = "edan-index: idx.jsonl: write error: File too large" ]
  [ -z "$(ls idx.jsonl* 2>/dev/null)" ]
}

# --- a scoring run at scale ---------------------------------------------------------

@test "10,000 records with 1% corrupt: 10,000 out, in order, exactly 100 errors, exit 1" {
  need_model
  head -c 500 /dev/urandom > noise.png
  head -c 300 face.png > cut.png
  huge_png 20000 20000 huge.png
  python3 - > in.jsonl <<'EOF'
bad = ['{"crop":"missing.png"}', '{"crop":"noise.png"}', '{"crop":"cut.png"}',
       '{"crop":"huge.png"}', '{"crop":42}', '{not json', '[1,2,3]',
       '{"crop":"face.png","crop_transform":[0,0,0,0],"crop_size":32}',
       'no/such/bare path.png', '{"crop":"face.png","error":"upstream"}']
for i in range(10000):
    print(bad[(i // 100) % len(bad)] if i % 100 == 37 else '{"crop":"face.png","i":%d}' % i)
EOF
  run --separate-stderr edan-predict -m model.edan --threads 1 in.jsonl
  [ "$status" -eq 1 ]
  [ "$(count_lines <<< "$output")" -eq 10000 ]
  [ "$(jq -c 'select(has("error"))' <<< "$output" | count_lines)" -eq 100 ]
  # Order kept: the good records' i is 0..9999 without the corrupt positions.
  [ "$(jq -r 'select(has("error") | not) | .i' <<< "$output" | awk '$1 % 100 != 37' | count_lines)" -eq 9900 ]
  [ "$(grep -n '"error"' <<< "$output" | cut -d: -f1 | awk '($1 - 1) % 100 != 37' | count_lines)" -eq 0 ]
  only_summary "$stderr"
}
