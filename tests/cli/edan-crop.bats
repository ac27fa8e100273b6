#!/usr/bin/env bats
# edan-crop: records -> one record per face with an aligned crop. Synthetic
# images come from the make-image fixture; real faces from the shared 300-W
# HELEN test set (those tests skip when it is absent).
load helpers

HELEN=helen/testset
FACE_STEM=296814969_3   # one face, frontal

make_image() { "$EDAN_TESTS_BIN/make-image" "$@"; }

# Numbers of the JSON array field $1 of the first record on stdin, one per
# line (edan writes plain decimals; no jq on a fresh machine).
array_of() {
  awk -v f="\"$1\":" 'NR == 1 {
    i = index($0, f); if (!i) exit 1
    s = substr($0, i + length(f)); d = 0
    for (k = 1; k <= length(s); k++) {
      c = substr(s, k, 1)
      if (c == "[") d++
      else if (c == "]" && --d == 0) break
    }
    s = substr(s, 1, k); gsub(/[][ ]/, "", s)
    n = split(s, a, ","); for (j = 1; j <= n; j++) print a[j]
  }'
}

# Width, height, bit depth and colour type of a PNG (0 = grayscale).
png_header() { od -An -tu1 -j16 -N10 "$1" | awk '{ print $3 * 256 + $4, $7 * 256 + $8, $9, $10 }'; }

# A 300-W record (landmarks 0-based, as edan-index writes them) of the test face.
helen_record() {
  edan-index --layout 300w "$EDAN_DATA/300w-subset/$HELEN" | grep -F "/$FACE_STEM.jpg\""
}

# landmarks_carried OUT IN SIZE: the first record of OUT (a SIZE-pixel crop)
# carries IN's 68 landmarks: mapped back with its crop_transform they land
# within 0.05 px of IN's (crop landmarks are written to 0.01 px; the crops
# here are about 0.4x the source), and the eyes (points 36..47) are inside
# the crop.
landmarks_carried() {
  array_of crop_transform < "$1" > t
  array_of landmarks < "$1" > crop_pts
  array_of landmarks < "$2" > src_pts
  [ "$(count_lines crop_pts)" -eq 136 ]
  paste crop_pts src_pts | awk -v t="$(tr '\n' ' ' < t)" -v last="$(($3 - 1))" '
    BEGIN { split(t, m, " "); a = m[1]; b = m[2]; tx = m[3]; ty = m[4]; d = a * a + b * b }
    NR % 2 == 1 { cx = $1; sx = $2; next }
    { cy = $1; sy = $2
      x = (a * (cx - tx) + b * (cy - ty)) / d; y = (-b * (cx - tx) + a * (cy - ty)) / d
      e = sqrt((x - sx) ^ 2 + (y - sy) ^ 2); if (e > worst) worst = e
      i = NR / 2 - 1
      if (i >= 36 && i <= 47 && (cx < 0 || cx > last || cy < 0 || cy > last)) outside++ }
    END { printf "worst %.4f px, eyes outside %d\n", worst, outside; exit !(worst < 0.05 && outside == 0) }'
}

@test "--help lists the options and the detectors" {
  run edan-crop --help
  [ "$status" -eq 0 ]
  [[ "$output" == "Usage: edan-crop [OPTION]... [FILE]..."* ]]
  for opt in --out-dir --detector --landmarks --refit --frame --size --fallback --max-faces --threads --output; do
    [[ "$output" == *"$opt"* ]] || { echo "missing $opt"; return 1; }
  done
  [[ "$output" == *"haar, haar-default, haar-alt, haar-alt2, lbp, lbp-improved, dlib, none"* ]]
}

@test "--version" {
  run edan-crop --version
  [ "$status" -eq 0 ]
  [[ "$output" == "edan-crop (edan) "* ]]
}

@test "usage errors exit 2: bad flag, no --out-dir, bad detector, fallback, landmarks, size" {
  run --separate-stderr edan-crop --no-such-flag
  [ "$status" -eq 2 ]
  [[ "$stderr" == *"Try 'edan-crop --help'"* ]]
  run edan-crop < /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"--out-dir DIR is required"* ]]
  run edan-crop --out-dir C --detector nope < /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown detector 'nope'"* ]]
  run edan-crop --out-dir C --fallback maybe < /dev/null
  [ "$status" -eq 2 ]
  run edan-crop --out-dir C --landmarks magic < /dev/null
  [ "$status" -eq 2 ]
  run edan-crop --out-dir C --size 4 < /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"--size must be between 8 and 4096"* ]]
  [ ! -e C ]
}

@test "--detector none: the whole image is the face, crop is a --size gray PNG" {
  make_image ramp 64 48 ramp.png
  echo '{"image":"ramp.png","label":"happy"}' | edan-crop --out-dir C --detector none --size 32 > out.jsonl
  run cat out.jsonl
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == '{"image":"ramp.png","label":"happy","face":0,"box":[0,0,64,48],"score":1,"crop":"C/ramp.png.0.png","crop_transform":['*'],"crop_size":32}' ]]
  [ "$(png_header C/ramp.png.0.png)" = "32 32 8 0" ]
  # The canonical square of a 64x48 image: side sqrt(64*48), centred.
  run array_of crop_transform < out.jsonl
  awk -v a="${lines[0]}" -v b="${lines[1]}" 'BEGIN { exit !(a - 32 / sqrt(64 * 48) < 1e-12 && -a + 32 / sqrt(64 * 48) < 1e-12 && b == 0) }'
}

@test "stdin via - and via no FILE give the same records; FILE arguments are record files" {
  make_image ramp 40 40 a.png
  make_image ramp 50 30 b.png
  printf 'a.png\nb.png\n' > list
  edan-crop --out-dir C --detector none --size 16 < list > none.jsonl
  edan-crop --out-dir C --detector none --size 16 - < list > dash.jsonl
  edan-crop --out-dir C --detector none --size 16 list > file.jsonl
  [ "$(count_lines none.jsonl)" -eq 2 ]
  cmp none.jsonl dash.jsonl
  cmp none.jsonl file.jsonl
  grep -q '"image":"a.png","face":0' none.jsonl
  grep -q '"image":"b.png","face":0' none.jsonl
}

@test "a HELEN record round trip: crop file, --size PNG, landmarks mapped into the crop" {
  require_data 300w-subset
  helen_record > in.jsonl
  [ "$(count_lines in.jsonl)" -eq 1 ]
  edan-crop --out-dir C --size 96 --landmarks dlib in.jsonl > out.jsonl
  [ "$(count_lines out.jsonl)" -eq 1 ]
  crop=$(grep -oE '"crop":"[^"]*"' out.jsonl | cut -d'"' -f4)
  [[ "$crop" == C/*"/$HELEN/$FACE_STEM.jpg.0.png" ]]
  [ -f "$crop" ]
  [ "$(png_header "$crop")" = "96 96 8 0" ]
  grep -q '"dataset":"helen","split":"test","landmarks":\[\[' out.jsonl  # fields kept in order
  grep -q '"crop_size":96' out.jsonl
  # The record's own landmarks are carried into the crop.
  landmarks_carried out.jsonl in.jsonl 96
}

@test "--frame detector: a record's landmarks choose the detected face, which frames the crop; they are carried into it" {
  require_data 300w-subset
  helen_record > in.jsonl
  edan-crop --out-dir C --frame detector in.jsonl > framed.jsonl
  edan-crop --out-dir D in.jsonl > aligned.jsonl
  cut -d'"' -f4 in.jsonl | edan-crop --out-dir E > detected.jsonl
  # The frame is the detector's (the same transform as for the bare path),
  # not the landmark alignment.
  [ "$(array_of crop_transform < framed.jsonl)" = "$(array_of crop_transform < detected.jsonl)" ]
  [ "$(array_of crop_transform < framed.jsonl)" != "$(array_of crop_transform < aligned.jsonl)" ]
  [ "$(array_of box < framed.jsonl)" = "$(array_of box < detected.jsonl)" ]
  landmarks_carried framed.jsonl in.jsonl 64
}

@test "--frame detector: no face matching the landmarks is an error record, or the whole image with --fallback full" {
  require_data 300w-subset
  make_image flat 256 256 128 flat.png
  helen_record | sed -E 's#"image":"[^"]*"#"image":"flat.png"#' > in.jsonl
  run --separate-stderr edan-crop --out-dir C --frame detector in.jsonl
  [ "$status" -eq 1 ]
  [[ "$output" == *'"error":"flat.png: no detected face matches the record'"'"'s landmarks"}' ]]
  [ ! -e C/flat.png.0.png ]
  run --separate-stderr edan-crop --out-dir C --frame detector --fallback full in.jsonl
  [ "$status" -eq 0 ]
  [[ "$output" == *'"box":[0,0,256,256],"score":0,'*'"fallback":true}' ]]
  echo "$output" | array_of landmarks > pts
  [ "$(count_lines pts)" -eq 136 ]
  run edan-crop --out-dir C --frame box < /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"--frame must be landmarks or detector (got 'box')"* ]]
}

@test "a bare path is detected and fitted with dlib: one face, 68 landmarks, eyes where the template puts them" {
  require_data 300w-subset
  echo "$EDAN_DATA/300w-subset/$HELEN/$FACE_STEM.jpg" |
    edan-crop --out-dir C --size 64 --landmarks dlib > out.jsonl
  [ "$(count_lines out.jsonl)" -eq 1 ]
  grep -q '"face":0,"box":\[' out.jsonl
  run array_of landmarks < out.jsonl
  [ "${#lines[@]}" -eq 136 ]
  # The crop is aligned on the fitted eyes and nose: the outer eye corners
  # (points 36 and 45) sit at the template's 0.25 and 0.74 of the width, and
  # both at 0.26 of the height (to within 2 px).
  awk -v x36="${lines[72]}" -v y36="${lines[73]}" -v x45="${lines[90]}" -v y45="${lines[91]}" '
    function near(v, want) { return v - want < 2 && want - v < 2 }
    BEGIN { printf "eye corners (%s, %s) (%s, %s)\n", x36, y36, x45, y45
            exit !(near(x36, 64 * 0.2507 - 0.5) && near(x45, 64 * 0.7418 - 0.5) &&
                   near(y36, 64 * 0.2585 - 0.5) && near(y45, 64 * 0.2585 - 0.5)) }'
}

@test "blazeface, the default: a face turned by 30 degrees is found, its 6 keypoints recorded, and its eyes level in the crop" {
  require_data 300w-subset
  make_image turn "$EDAN_DATA/300w-subset/$HELEN/$FACE_STEM.jpg" 30 turned.png
  echo turned.png | edan-crop --out-dir C --size 64 > out.jsonl
  [ "$(count_lines out.jsonl)" -eq 1 ]
  grep -q '"face":0,"box":\[' out.jsonl
  run array_of keypoints < out.jsonl
  [ "${#lines[@]}" -eq 12 ]
  # Turned counter-clockwise, the subject's left eye (image right) rises:
  # in the source the eye line climbs by more than tan(25 degrees); in the
  # crop, mapped by crop_transform, by less than tan(10 degrees) (the crop
  # is fitted to eyes, nose and mouth, so the eyes need not be exactly level).
  jq -r '.crop_transform as [$a, $b, $tx, $ty]
         | .keypoints[0:2][] | [$a * .[0] - $b * .[1] + $tx, $b * .[0] + $a * .[1] + $ty] | @tsv' \
    out.jsonl > eyes
  awk -v ry="${lines[1]}" -v ly="${lines[3]}" -v rx="${lines[0]}" -v lx="${lines[2]}" '
    NR == 1 { cy1 = $2; cx1 = $1 } NR == 2 { cy2 = $2; cx2 = $1 }
    END { printf "source rise %.1f over %.1f; crop eyes (%.1f, %.1f) (%.1f, %.1f)\n", ry - ly, lx - rx, cx1, cy1, cx2, cy2
          exit !((ry - ly) > 0.466 * (lx - rx) && cy1 - cy2 < 0.176 * (cx2 - cx1) &&
                 cy2 - cy1 < 0.176 * (cx2 - cx1) && cx2 > cx1) }' eyes
  # Cropped again by another detector, the record loses the stale keypoints.
  jq -c --arg img "$EDAN_DATA/300w-subset/$HELEN/$FACE_STEM.jpg" \
    'del(.crop, .crop_transform, .crop_size, .box, .face, .score) | .image = $img' out.jsonl |
    edan-crop --out-dir D --detector dlib > again.jsonl
  ! grep -q keypoints again.jsonl
}

@test "several faces give several records, crops named by face" {
  require_data 300w-subset
  make_image pair "$EDAN_DATA/300w-subset/$HELEN/$FACE_STEM.jpg" pair.png
  echo pair.png | edan-crop --out-dir C > out.jsonl
  run cat out.jsonl
  [ "${#lines[@]}" -eq 2 ]
  [[ "${lines[0]}" == '{"image":"pair.png","face":0,'*'"crop":"C/pair.png.0.png"'* ]]
  [[ "${lines[1]}" == '{"image":"pair.png","face":1,'*'"crop":"C/pair.png.1.png"'* ]]
  [ -f C/pair.png.0.png ] && [ -f C/pair.png.1.png ]
  # --max-faces keeps the largest.
  echo pair.png | edan-crop --out-dir D --max-faces 1 > one.jsonl
  [ "$(count_lines one.jsonl)" -eq 1 ]
}

@test "no face: an error record (exit 1), or with --fallback full the whole image" {
  make_image flat 100 80 128 flat.png
  run --separate-stderr edan-crop --out-dir C <<< flat.png
  [ "$status" -eq 1 ]
  [ "$output" = '{"image":"flat.png","error":"flat.png: no face found"}' ]
  [ ! -e C/flat.png.0.png ]
  run --separate-stderr edan-crop --out-dir C --fallback full <<< flat.png
  [ "$status" -eq 0 ]
  [[ "$output" == '{"image":"flat.png","face":0,"box":[0,0,100,80],"score":0,"crop":"C/flat.png.0.png",'*'"crop_size":64,"fallback":true}' ]]
  [ "$(png_header C/flat.png.0.png)" = "64 64 8 0" ]
}

@test "a face crop too small to detect (48 px, FER2013's size) is taken whole; one line on stderr counts the failures" {
  make_image flat 48 48 128 fer.png
  make_image flat 100 80 128 flat.png
  run --separate-stderr edan-crop --out-dir C --size 48 fer.png flat.png
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 2 ]
  [[ "${lines[0]}" == '{"image":"fer.png","face":0,"box":[0,0,48,48],"score":0,"crop":"C/fer.png.0.png",'*'"fallback":true}' ]]
  [ "${lines[1]}" = '{"image":"flat.png","error":"flat.png: no face found"}' ]
  [ "$stderr" = "edan-crop: 1 of 2 records written with an error (1 no face found)" ]
  # --fallback none: the small image is an error too.
  run --separate-stderr edan-crop --out-dir C --fallback none fer.png
  [ "$status" -eq 1 ]
  run --separate-stderr edan-crop --out-dir C --fallback small --quiet flat.png
  [ "$status" -eq 1 ]
  [ -z "$stderr" ]
}

@test "crops of equal file names in different folders never collide" {
  mkdir -p a b
  make_image ramp 20 20 a/x.png
  make_image flat 20 20 9 b/x.png
  printf 'a/x.png\nb/x.png\n./a/../b/x.png\n' | edan-crop --out-dir C --detector none --size 8 > out.jsonl
  run cat out.jsonl
  [[ "${lines[0]}" == *'"crop":"C/a/x.png.0.png"'* ]]
  [[ "${lines[1]}" == *'"crop":"C/b/x.png.0.png"'* ]]
  [[ "${lines[2]}" == *'"crop":"C/a/%2E%2E/b/x.png.0.png"'* ]]
  ! cmp -s C/a/x.png.0.png C/b/x.png.0.png
  [ -z "$(find C -name '.*')" ]   # no temporary files left behind
}

@test "bad input never stops the stream: one record per line, errors only on the bad ones, exit 1" {
  make_image ramp 64 64 good1.png
  make_image ramp 30 40 good2.jpg
  : > zero.png
  make_image ramp 64 64 full.png
  head -c 200 full.png > trunc.png
  cat > in.jsonl <<'EOF'
good1.png
{"image": "good1.png", oops
{"image":"missing.png","label":"sad"}
zero.png
{"image":"good2.jpg","label":"happy"}
trunc.png
{"label":"fear"}
good1.png
EOF
  run --separate-stderr edan-crop --out-dir C --detector none --size 16 --threads 2 in.jsonl
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 8 ]
  [[ "${lines[0]}" == '{"image":"good1.png","face":0,'* && "${lines[0]}" != *error* ]]
  [[ "${lines[1]}" == '{"error":"in.jsonl:2: invalid JSON'* ]]
  [ "${lines[2]}" = '{"image":"missing.png","label":"sad","error":"missing.png: cannot open: No such file or directory"}' ]
  [ "${lines[3]}" = '{"image":"zero.png","error":"zero.png: empty file"}' ]
  [[ "${lines[4]}" == '{"image":"good2.jpg","label":"happy","face":0,'* && "${lines[4]}" != *error* ]]
  [[ "${lines[5]}" == '{"image":"trunc.png","error":"trunc.png: truncated PNG'* ]]
  [ "${lines[6]}" = '{"label":"fear","error":"no \"image\" field"}' ]
  [[ "${lines[7]}" == '{"image":"good1.png","face":0,'* && "${lines[7]}" != *error* ]]
  [ "$(png_header C/good2.jpg.0.png)" = "16 16 8 0" ]
  # The same good lines alone: exit 0.
  grep -E '^(good1.png|\{"image":"good2)' in.jsonl | edan-crop --out-dir C --detector none --size 16 > ok.jsonl
  [ "$(count_lines ok.jsonl)" -eq 3 ]
}

@test "records arriving with an error pass through untouched; -o writes the records" {
  make_image ramp 20 20 x.png
  printf '%s\n' '{"image":"x.png","error":"earlier"}' x.png |
    edan-crop --out-dir C --detector none --size 8 -o out.jsonl && status=0 || status=$?
  [ "$status" -eq 1 ]
  run cat out.jsonl
  [ "${lines[0]}" = '{"image":"x.png","error":"earlier"}' ]
  [[ "${lines[1]}" == '{"image":"x.png","face":0,'* ]]
}

@test "--frame detector with fitted landmarks: the detection frames the crop (--detector none: the whole image), the fit is carried into it" {
  require_data fer2013
  img=$(ls "$EDAN_DATA"/fer2013/test/happy/*.jpg | head -1)
  printf '{"image":"%s"}\n' "$img" > in.jsonl
  edan-crop --out-dir C --detector none --landmarks dlib --frame detector in.jsonl > whole.jsonl
  edan-crop --out-dir D --detector none --landmarks dlib in.jsonl > aligned.jsonl
  # 48 px image -> 64 px crop: scale 4/3, no rotation, pixel centres kept.
  [ "$(array_of crop_transform < whole.jsonl | tr "\n" " ")" = "1.3333333333333333 0.0 0.16666666666666785 0.16666666666666785 " ]
  [ "$(array_of crop_transform < aligned.jsonl)" != "$(array_of crop_transform < whole.jsonl)" ]
  # The same 68 fitted points, in each crop's own coordinates.
  array_of landmarks < whole.jsonl > w
  array_of landmarks < aligned.jsonl > a
  [ "$(count_lines w)" -eq 136 ]
  [ "$(count_lines a)" -eq 136 ]
  ! cmp -s w a
}
