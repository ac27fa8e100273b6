#!/usr/bin/env bats
# edan-index: dataset layouts -> records. Synthetic layouts are made here;
# the counts on the shared datasets are checked when those are present.
load helpers

# A 48x48 FER2013 pixel string (values i mod 256).
fer_pixels() { awk 'BEGIN { for (i = 0; i < 2304; i++) printf "%s%d", (i ? " " : ""), i % 256 }'; }

# A 300-W .pts file with $1 point lines (claims 68).
pts_file() {
  printf 'version: 1\nn_points:  68\n{\n'
  for ((i = 1; i <= $1; i++)); do printf '%d.5 %d\n' "$i" "$((2 * i))"; done
  printf '}\n'
}

# Number of "[" after "landmarks": 1 for the array + 1 per point.
landmark_brackets() { awk -F'"landmarks":' '{ n = gsub(/\[/, "[", $2); print n }'; }

@test "--help lists the layouts and options" {
  run edan-index --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"Usage: edan-index [OPTION]... DIR..."* ]]
  [[ "$output" == *"--layout"* ]]
  [[ "$output" == *"affectnet-csv"* ]]
}

@test "--version" {
  run edan-index --version
  [ "$status" -eq 0 ]
  [[ "$output" == "edan-index (edan) "* ]]
}

@test "bad flag, unknown layout and no DIR are usage errors (exit 2)" {
  run edan-index --no-such-flag .
  [ "$status" -eq 2 ]
  [[ "$output" == *"Try 'edan-index --help'"* ]]
  run edan-index --layout nope .
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown layout 'nope'"* ]]
  # A generator reads no records: without DIR (or with -) there is nothing to index.
  run edan-index
  [ "$status" -eq 2 ]
  [[ "$output" == *"missing DIR"* ]]
  run edan-index --layout fer2013-csv x.csv
  [ "$status" -eq 2 ]
  [[ "$output" == *"--out-dir"* ]]
}

@test "a nonexistent DIR or unreadable CSV is fatal (exit 3) and named" {
  run edan-index no-such-dir
  [ "$status" -eq 3 ]
  [[ "$output" == *"no-such-dir"* ]]
  mkdir d
  run edan-index --layout fer2013-csv --out-dir png d
  [ "$status" -eq 3 ]
  [[ "$output" == *"fer2013.csv"* ]]
  echo "a,b" > other.csv
  run edan-index --layout fer2013-csv --out-dir png other.csv
  [ "$status" -eq 3 ]
  [[ "$output" == *"missing column emotion"* ]]
}

@test "folders: label, split, dataset, sorted; unknown class is an error record (exit 1)" {
  mkdir -p ds/train/angry ds/train/happy ds/PublicTest/sadness ds/test/smirk
  touch ds/train/happy/b.jpg ds/train/happy/A.JPG ds/train/angry/z.png \
        ds/PublicTest/sadness/s.webp ds/test/smirk/x.jpg ds/train/happy/notes.txt
  edan-index ds > out.jsonl && status=0 || status=$?
  [ "$status" -eq 1 ]
  [ "$(count_lines out.jsonl)" -eq 5 ]
  run cat out.jsonl
  [ "${lines[0]}" = '{"image":"ds/PublicTest/sadness/s.webp","label":"sad","dataset":"ds","split":"val"}' ]
  [ "${lines[1]}" = '{"image":"ds/test/smirk/x.jpg","dataset":"ds","error":"ds/test/smirk/x.jpg: unknown class folder '"'smirk'"'"}' ]
  [ "${lines[2]}" = '{"image":"ds/train/angry/z.png","label":"anger","dataset":"ds","split":"train"}' ]
  [ "${lines[3]}" = '{"image":"ds/train/happy/A.JPG","label":"happy","dataset":"ds","split":"train"}' ]
  [ "${lines[4]}" = '{"image":"ds/train/happy/b.jpg","label":"happy","dataset":"ds","split":"train"}' ]
}

@test "folders: a UTF-8 class folder is named intact; symlinked class folders are walked, a loop is an error" {
  mkdir -p ds/grüße ds/happy elsewhere/sad
  touch ds/grüße/a.jpg ds/happy/b.jpg elsewhere/sad/c.jpg
  ln -s ../elsewhere/sad ds/sad
  run --separate-stderr edan-index ds
  [ "$status" -eq 1 ]
  [ "${lines[0]}" = '{"image":"ds/grüße/a.jpg","dataset":"ds","error":"ds/grüße/a.jpg: unknown class folder '"'grüße'"'"}' ]
  [ "${lines[1]}" = '{"image":"ds/happy/b.jpg","label":"happy","dataset":"ds"}' ]
  [ "${lines[2]}" = '{"image":"ds/sad/c.jpg","label":"sad","dataset":"ds"}' ]
  [ "${#lines[@]}" -eq 3 ]
  # A link to a folder above it would never end: exit 3, naming it.
  ln -s .. ds/happy/up
  run --separate-stderr edan-index ds
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"ds/happy/up: a symbolic link to a folder above it"* ]]
}

@test "folders: several DIRs in order, --dataset, -o" {
  mkdir -p a/fear b/neutral
  touch a/fear/1.png b/neutral/2.png
  run edan-index --dataset mine -o recs.jsonl b a
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  run cat recs.jsonl
  [ "${lines[0]}" = '{"image":"b/neutral/2.png","label":"neutral","dataset":"mine"}' ]
  [ "${lines[1]}" = '{"image":"a/fear/1.png","label":"fear","dataset":"mine"}' ]
}

@test "jaffe: subject and label from the file name; a bad name is an error record" {
  mkdir j
  touch j/KA.HA1.29.tiff j/NA.su2.203.TIFF j/KA.XX1.3.tiff j/README
  run --separate-stderr edan-index --layout jaffe j
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 3 ]
  [[ "${lines[0]}" == *'"image":"j/KA.HA1.29.tiff","label":"happy","dataset":"jaffe","subject":"KA"'* ]]
  [[ "${lines[1]}" == *'"error":"j/KA.XX1.3.tiff: unknown JAFFE expression code '"'XX'"'"'* ]]
  [[ "${lines[2]}" == *'"label":"surprise","dataset":"jaffe","subject":"NA"'* ]]
}

@test "ckplus: subject from S005_001_... names, aliases normalised" {
  mkdir -p ck/sadness ck/anger
  touch ck/sadness/S005_001_00000010.png ck/anger/S138_008_00000009.png ck/anger/bad.png
  run edan-index --layout ckplus ck
  [ "$status" -eq 1 ]
  [ "${lines[0]}" = '{"image":"ck/anger/S138_008_00000009.png","label":"anger","dataset":"ckplus","subject":"S138"}' ]
  [[ "${lines[1]}" == *'"image":"ck/anger/bad.png"'*'"error":"ck/anger/bad.png: not a CK+ name'* ]]
  [ "${lines[2]}" = '{"image":"ck/sadness/S005_001_00000010.png","label":"sad","dataset":"ckplus","subject":"S005"}' ]
}

@test "fer2013-csv: PNGs written under --out-dir, split from Usage, bad rows are error records" {
  px=$(fer_pixels)
  {
    echo "emotion,pixels,Usage"
    echo "0,$px,Training"
    echo "3,\"$px\",PublicTest"
    echo "6,$px,PrivateTest"
    echo "7,$px,Training"
    echo "2,1 2 3,Training"
  } > fer2013.csv
  run --separate-stderr edan-index --layout fer2013-csv --out-dir png fer2013.csv
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 5 ]
  [ "${lines[0]}" = '{"image":"png/train/anger/fer2013-00000.png","label":"anger","dataset":"fer2013","split":"train"}' ]
  [ "${lines[1]}" = '{"image":"png/val/happy/fer2013-00001.png","label":"happy","dataset":"fer2013","split":"val"}' ]
  [ "${lines[2]}" = '{"image":"png/test/neutral/fer2013-00002.png","label":"neutral","dataset":"fer2013","split":"test"}' ]
  [[ "${lines[3]}" == *'"error":"fer2013.csv:5: emotion '"'7'"' is not a code 0..6"'* ]]
  [[ "${lines[4]}" == *'"error":"fer2013.csv:6: 3 pixels, expected 2304 (48x48)"'* ]]
  [ "$(find png -type f | wc -l)" -eq 3 ]
  # A real 48x48 8-bit grayscale PNG: signature, then IHDR width/height/depth/colour.
  [ "$(head -c 8 png/train/anger/fer2013-00000.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
  [ "$(head -c 26 png/train/anger/fer2013-00000.png | tail -c 10 | od -An -tx1 | tr -d ' \n')" = 00000030000000300800 ]
  [ -z "$(find png -name '*.tmp*')" ]
}

@test "affectnet-csv: box, 68 landmarks; None/Uncertain/No-Face and bad rows are error records" {
  mkdir an
  lm=$(awk 'BEGIN { for (i = 0; i < 136; i++) printf "%s%d.5", (i ? ";" : ""), i }')
  {
    echo "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    echo "689/a.jpg,10,20,100,110,$lm,1,0.5,-0.25"
    echo "689/b.jpg,10,20,100,110,$lm,8,-2,-2"
    echo "689/c.jpg,10,20,100,110,1;2;3,0,0,0"
    echo "689/d.jpg,10,20,100,110,,10,-2,-2"
  } > an/training.csv
  run --separate-stderr edan-index --layout affectnet-csv an
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 4 ]
  [[ "${lines[0]}" == '{"image":"an/689/a.jpg","dataset":"affectnet","split":"train","label":"happy","box":[10,20,100,110],"landmarks":[[0.5,1.5],'* ]]
  [ "$(echo "${lines[0]}" | landmark_brackets)" -eq 69 ]
  [[ "${lines[1]}" == *'"image":"an/689/b.jpg"'*'"error":"an/training.csv:3: expression 8 (None) has no emotion label"'* ]]
  [[ "${lines[2]}" == *'"image":"an/689/c.jpg"'*'"error":"an/training.csv:4: facial_landmarks has 3 numbers, expected 136"'* ]]
  [[ "${lines[3]}" == *'"error":"an/training.csv:5: expression 10 (No-Face)'* ]]
  run edan-index --layout affectnet-csv --images /data/affectnet an/training.csv
  [[ "${lines[0]}" == '{"image":"/data/affectnet/689/a.jpg",'* ]]
}

@test "300w: landmarks from .pts (1-based -> 0-based), dataset and split from the path" {
  mkdir -p w/helen/trainset w/afw
  touch w/helen/trainset/a.jpg w/helen/trainset/b.jpg w/helen/trainset/c.png w/afw/d.jpg
  pts_file 68 > w/helen/trainset/a.pts
  pts_file 67 > w/helen/trainset/b.pts
  { pts_file 68; echo garbage; } > w/afw/d.pts
  run --separate-stderr edan-index --layout 300w w
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 4 ]
  [[ "${lines[0]}" == *'"image":"w/afw/d.jpg","dataset":"afw","error":"w/afw/d.pts: line 73: unexpected text after'* ]]
  [[ "${lines[1]}" == '{"image":"w/helen/trainset/a.jpg","dataset":"helen","split":"train","landmarks":[[0.5,1],[1.5,3],'* ]]
  [ "$(echo "${lines[1]}" | landmark_brackets)" -eq 69 ]
  [[ "${lines[2]}" == *'"error":"w/helen/trainset/b.pts: found 67 points, n_points says 68"'* ]]
  [[ "${lines[3]}" == *'"error":"w/helen/trainset/c.png: no landmarks: cannot read w/helen/trainset/c.pts"'* ]]
  run edan-index --layout 300w --pts-base 0 w/helen/trainset/
  [[ "${lines[0]}" == '{"image":"w/helen/trainset/a.jpg","dataset":"helen","split":"train","landmarks":[[1.5,2],'* ]]
}

@test "ferplus: votes, majority label and soft target per row; a bad row and a missing image are error records" {
  mkdir -p fp/FER2013Train fp/FER2013Test
  touch fp/FER2013Train/fer0000000.png fp/FER2013Train/fer0000001.png fp/FER2013Train/fer0000002.png \
    fp/FER2013Test/fer0032298.png
  cat > fp/FER2013Train/label.csv <<'EOF'
fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0,
fer0000001.png,"(0, 0, 48, 48)",4,4,0,0,0,0,0,0,2,0,
fer0000002.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,0,1,9,
fer0000003.png,"(0, 0, 48, 48)",0,10,0,0,0,0,0,0,0,0,
fer0000004.png,"(0, 0, 48, 48)",0,10,0,x,0,0,0,0,0,0,
EOF
  printf '%s\n' 'fer0032298.png,"(0, 0, 48, 48)",0,0,1,0,0,0,0,9,0,0,' > fp/FER2013Test/label.csv
  run --separate-stderr edan-index --layout ferplus fp
  echo "$output"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 6 ]
  # A majority, its votes and the target (the single sad vote dropped).
  [ "${lines[0]}" = '{"image":"fp/FER2013Train/fer0000000.png","dataset":"ferplus","split":"train","label":"neutral","votes":{"neutral":4,"happy":0,"surprise":0,"sad":1,"anger":3,"disgust":2,"fear":0,"contempt":0,"unknown":0,"not_face":0},"target":{"neutral":0.444444,"anger":0.333333,"disgust":0.222222}}' ]
  # A tie: a target, no label. Not a face: neither.
  echo "${lines[1]}" | jq -e '(has("label") | not) and .target == {"neutral": 0.5, "happy": 0.5}'
  echo "${lines[2]}" | jq -e '(has("label") | not) and (has("target") | not) and .votes.not_face == 9'
  [[ "${lines[3]}" == *'"error":"fp/FER2013Train/label.csv:4: fp/FER2013Train/fer0000003.png: no such image"'* ]]
  [[ "${lines[4]}" == *'"error":"fp/FER2013Train/label.csv:5: vote count '"'"'x'"'"' (sad) is not an integer 0..10"'* ]]
  echo "${lines[5]}" | jq -e '.split == "test" and .label == "contempt"'
  # One split folder alone.
  run edan-index --layout ferplus fp/FER2013Test
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  mkdir empty
  run edan-index --layout ferplus empty
  [ "$status" -eq 3 ]
  [[ "$output" == *"empty: no label.csv or FER2013Train/label.csv or FER2013Valid/label.csv or FER2013Test/label.csv in this directory"* ]]
}

@test "shared data: ferplus gives the README's majority-vote counts" {
  require_data ferplus
  edan-index --layout ferplus "$EDAN_DATA/ferplus" > fp.jsonl
  [ "$(count_lines fp.jsonl)" -eq $((28558 + 3579 + 3573)) ]
  [ "$(grep -c '"error"' fp.jsonl)" -eq 0 ]
  jq -r 'select(.split != "val" and has("label")) | "\(.split) \(.label)"' fp.jsonl | sort | uniq -c |
    awk '{ print $2, $3, $1 }' > counts.txt
  cat > expected.txt <<'EOF'
test anger 312
test contempt 28
test disgust 20
test fear 97
test happy 909
test neutral 1163
test sad 428
test surprise 428
train anger 2415
train contempt 168
train disgust 186
train fear 654
train happy 7418
train neutral 9431
train sad 3444
train surprise 3381
EOF
  diff expected.txt counts.txt
}

@test "shared data: fer2013 folders give 35887 records with the README's per-class counts" {
  require_data fer2013
  edan-index --layout folders "$EDAN_DATA/fer2013" > fer.jsonl
  [ "$(count_lines fer.jsonl)" -eq 35887 ]
  [ "$(grep -c '"error"' fer.jsonl)" -eq 0 ]
  sed -E 's/.*"label":"([a-z]+)".*"split":"([a-z]+)".*/\2 \1/' fer.jsonl | sort | uniq -c |
    awk '{ print $2, $3, $1 }' > counts.txt
  cat > expected.txt <<'EOF'
test anger 958
test disgust 111
test fear 1024
test happy 1774
test neutral 1233
test sad 1247
test surprise 831
train anger 3995
train disgust 436
train fear 4097
train happy 7215
train neutral 4965
train sad 4830
train surprise 3171
EOF
  diff expected.txt counts.txt
}

@test "shared data: ckplus48 gives 981 records of 118 subjects" {
  require_data ckplus48
  edan-index --layout ckplus "$EDAN_DATA/ckplus48" > ck.jsonl
  [ "$(count_lines ck.jsonl)" -eq 981 ]
  [ "$(grep -c '"dataset":"ckplus","subject":"S[0-9]*"}$' ck.jsonl)" -eq 981 ]
  [ "$(grep -o '"subject":"S[0-9]*"' ck.jsonl | sort -u | wc -l)" -eq 118 ]
  [ "$(grep -o '"label":"[a-z]*"' ck.jsonl | sort | uniq -c | awk '{ printf "%s %s;", $2, $1 }')" = \
    '"label":"anger" 135;"label":"contempt" 54;"label":"disgust" 177;"label":"fear" 75;"label":"happy" 207;"label":"sad" 84;"label":"surprise" 249;' ]
}

@test "shared data: 300w-subset gives 1537 records with 68 landmarks each" {
  require_data 300w-subset
  edan-index --layout 300w "$EDAN_DATA/300w-subset" > w.jsonl
  [ "$(count_lines w.jsonl)" -eq 1537 ]
  [ "$(grep -c '"error"' w.jsonl)" -eq 0 ]
  [ "$(landmark_brackets < w.jsonl | sort -u)" = 69 ]
  [ "$(grep -o '"dataset":"[a-z]*","split":"[a-z]*"' w.jsonl | sort | uniq -c | awk '{ printf "%s %s;", $2, $1 }')" = \
    '"dataset":"helen","split":"test" 330;"dataset":"helen","split":"train" 870;' ]
  [ "$(grep -c '"dataset":"afw","landmarks"' w.jsonl)" -eq 337 ]
}

@test "man page: renders without warnings and documents every option of --help" {
  man_page="$EDAN_SRC/man/edan-index.1"
  [ -f "$man_page" ]
  command -v man >/dev/null || skip "man (man-db) not installed"
  run bash -c 'MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null' _ "$man_page"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  for opt in $(edan-index --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    grep -qF -- "${opt//-/\\-}" "$man_page" || { echo "missing $opt"; false; }
  done
}
