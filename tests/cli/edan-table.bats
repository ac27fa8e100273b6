#!/usr/bin/env bats
# edan-table: records in, one row per face out (CSV / TSV), errors counted.
load helpers

face() {  # face IMAGE INDEX LABEL P_NEUTRAL P_HAPPY
  printf '{"image":"%s","face":%s,"box":[1,2,3,4],"score":0.5,"pred":{"label":"%s","probs":{"neutral":%s,"happy":%s}}}\n' "$@"
}

@test "one CSV row per face record, a header, the class columns of the model" {
  { face a.jpg 0 happy 0.2 0.8; face a.jpg 1 neutral 0.7 0.3; } > in.jsonl
  run --separate-stderr edan-table in.jsonl
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "image,face,box_x,box_y,box_w,box_h,score,label,pred,p_neutral,p_happy,error" ]
  [ "${lines[1]}" = "a.jpg,0,1,2,3,4,0.5,,happy,0.2,0.8," ]
  [ "${lines[2]}" = "a.jpg,1,1,2,3,4,0.5,,neutral,0.7,0.3," ]
  [ "${#lines[@]}" -eq 3 ]
  [ -z "$stderr" ]
}

@test "--format tsv, --no-header, --fields, -o" {
  face 'my,photo.jpg' 0 happy 0.2 0.8 | jq -c '.dataset = "mine"' > in.jsonl
  run edan-table --format tsv --no-header --fields dataset -o out.tsv in.jsonl
  [ "$status" -eq 0 ]
  [ "$(cat out.tsv)" = "$(printf 'my,photo.jpg\t0\t1\t2\t3\t4\t0.5\t\thappy\t0.2\t0.8\tmine\t')" ]
  # The same name in CSV is quoted.
  run edan-table --no-header in.jsonl
  [[ "$output" == '"my,photo.jpg",0,'* ]]
}

@test "an error record is a row with its error, counted on stderr, exit 1" {
  { echo '{"image":"x.jpg","error":"x.jpg: no face found"}'; face a.jpg 0 happy 0.2 0.8; } > in.jsonl
  run --separate-stderr edan-table in.jsonl
  [ "$status" -eq 1 ]
  [ "${lines[1]}" = "x.jpg,,,,,,,,,,,x.jpg: no face found" ]
  [[ "$stderr" == "edan-table: 1 row(s) with an error (see the error column)"* ]]
}

@test "--landmarks adds 136 columns; a bad --format is a usage error" {
  "$EDAN_TESTS_BIN/make-model" --size 32 model.edan
  printf 'P5\n32 32\n255\n' > f.pgm && head -c 1024 /dev/urandom >> f.pgm
  echo '{"crop":"f.pgm"}' | edan-predict -q -m model.edan | edan-table --landmarks > t.csv
  [ "$(head -1 t.csv | tr ',' '\n' | grep -c '^[xy][0-9]')" -eq 136 ]
  [ "$(sed -n 2p t.csv | tr ',' '\n' | wc -l)" -eq "$(head -1 t.csv | tr ',' '\n' | wc -l)" ]
  run edan-table --format xlsx
  [ "$status" -eq 2 ]
  [[ "$output" == *"--format must be csv or tsv"* ]]
}
