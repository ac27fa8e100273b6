#!/usr/bin/env bats
# edan-auoverlap: the EMFACS table and the overlap of gradcam records' most
# activated landmarks with each emotion's action-unit landmarks. The gradcam
# records are made by hand here, so every figure is known exactly.
load helpers

# 68 comma-separated activations: 1 at the listed indices, 0 elsewhere.
act() {
  awk -v hot=" $* " 'BEGIN { for (i = 0; i < 68; i++) printf "%s%s", (i ? "," : ""), (index(hot, " " i " ") ? 1 : 0) }'
}

# A gradcam record: rec IMAGE LABEL LAYER CLASS HOT...
rec() {
  local image=$1 label=$2 layer=$3 cls=$4
  shift 4
  printf '{"image":"%s","label":"%s","gradcam":{"layer":"%s","class":"%s","landmark_activation":[%s],"top_landmarks":[]}}\n' \
    "$image" "$label" "$layer" "$cls" "$(act "$@")"
}

HAPPY="1 2 14 15 48 49 50 51 52 53 54 55 56 57 58 59"

# Two happy images on conv4a: one with half of the happy points and 8 others
# hot, one with all 16 happy points hot. Mean: 8 happy points at 1, the other
# 8 happy points and the 8 others at 0.5 -> ties to the lower indices (the
# others: 0 3-9), so the top 16 hold 8 happy points: 8/16 = 0.5.
make_happy() {
  rec a.png happy conv4a happy 1 2 14 15 48 49 50 51 0 3 4 5 6 7 8 9
  rec b.png happy conv4a happy $HAPPY
}

@test "--help, --version" {
  run edan-auoverlap --help
  [ "$status" -eq 0 ]
  [[ "$output" == "Usage: edan-auoverlap [OPTION]... [FILE]..."* ]]
  for opt in --table --au-table --group-by --per-image --format --output; do
    [[ "$output" == *"$opt"* ]] || { echo "missing $opt"; return 1; }
  done
  run edan-auoverlap --version
  [ "$status" -eq 0 ]
  [[ "$output" == "edan-auoverlap (edan) "* ]]
}

@test "bad flag and bad option values are usage errors (exit 2)" {
  run edan-auoverlap --no-such-flag
  [ "$status" -eq 2 ]
  [[ "$output" == *"Try 'edan-auoverlap --help'"* ]]
  run edan-auoverlap --table --format csv
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown format 'csv'"* ]]
  run edan-auoverlap --table --au-table facs
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown AU table 'facs'"* ]]
  run edan-auoverlap --group-by pred < /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown --group-by 'pred'"* ]]
}

@test "a missing input file is fatal (exit 3)" {
  run edan-auoverlap no-such.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *"no-such.jsonl"* ]]
}

@test "--table: markdown rows and JSON, paper and emfacs" {
  run edan-auoverlap --table --format markdown
  [ "$status" -eq 0 ]
  [[ "$output" == *"| happy | 6+12 | 16 | 1, 2, 14, 15, 48-59 | 0.235 |"* ]]
  [[ "$output" == *"| anger | 4+5+7+23 | 34 | 17-26, 36-59 | 0.500 |"* ]]
  [[ "$output" == *"| contempt * | R12A+R14A | 4 | 48, 54, 60, 64 | 0.059 |"* ]]
  run edan-auoverlap --table
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == '{"table":"paper","emotions":[{"emotion":"happy","action_units":"6+12","k":16,"landmarks":[1,2,14,15,48,49,50,51,52,53,54,55,56,57,58,59],"in_paper":true,"chance":0.23529411764705882},'* ]]
  run edan-auoverlap --table --au-table emfacs -f markdown
  [ "$status" -eq 0 ]
  [[ "$output" == *"| sad | 1+4+15 | 8 | 20-23, 48, 54, 60, 64 | 0.118 |"* ]]
}

@test "hand-made records -> exact overlap, chance and average (JSON); FILE, - and stdin agree" {
  make_happy > in.jsonl
  want='{"table":"paper","group_by":"class","records":2,"scored":2,"skipped":{"error":0,"no_gradcam":0,"malformed":0},"unscored":{},"layers":[{"layer":"conv4a","emotions":[{"emotion":"happy","action_units":"6+12","in_paper":true,"n":2,"k":16,"hits":8,"overlap":0.5,"chance":0.23529411764705882,"top_landmarks":[1,2,14,15,48,49,50,51,0,3,4,5,6,7,8,9]}],"average":{"emotions":1,"overlap":0.5,"chance":0.23529411764705882}}]}'
  run edan-auoverlap in.jsonl
  [ "$status" -eq 0 ]
  [ "$output" = "$want" ]
  run edan-auoverlap - < in.jsonl
  [ "$output" = "$want" ]
  run edan-auoverlap < in.jsonl
  [ "$output" = "$want" ]
  edan-auoverlap -o report.json in.jsonl
  [ "$(cat report.json)" = "$want" ]
}

@test "two layers -> the Table 5 layout in markdown, chance beside; --per-image quartiles" {
  {
    make_happy
    rec c.png happy conv4b happy $HAPPY
    # Surprise (k = 23) on conv4b: only the 13 mouth points 55-67 hot; the
    # other 10 of the top 23 are the lowest indices 0-9 -> 13/23.
    rec d.png surprise conv4b surprise 55 56 57 58 59 60 61 62 63 64 65 66 67
  } > in.jsonl
  run edan-auoverlap --format markdown in.jsonl
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "| Emotion | AUs | k | conv4a | n | conv4b | n | Chance |" ]
  [ "${lines[2]}" = "| happy | 6+12 | 16 | 0.500 | 2 | 1.000 | 1 | 0.235 |" ]
  [ "${lines[3]}" = "| surprise | 1+2+5B+26 | 23 | – | 0 | 0.565 | 1 | 0.338 |" ]
  # conv4b average (1 + 13/23) / 2 = 0.783; chance (16/68 + 23/68) / 2 = 0.287.
  [ "${lines[4]}" = "| **Average** | | | 0.500 | 1 | 0.783 | 2 | 0.287 |" ]
  run edan-auoverlap --format markdown --per-image in.jsonl
  [ "$status" -eq 0 ]
  # Per image on conv4a: 0.5 and 1.0 -> mean 0.75, Q1 0.625, median 0.75, Q3 0.875.
  [[ "$output" == *"| happy | 2 | 0.750 | 0.625 | 0.750 | 0.875 | 0.235 |"* ]]
  [[ "$output" == *"| surprise | 1 | 0.565 | 0.565 | 0.565 | 0.565 | 0.338 |"* ]]
}

@test "--group-by label groups by the record's label, not gradcam.class" {
  # The map is for class happy but the image is labelled sad.
  rec a.png sad conv4a happy $HAPPY > in.jsonl
  run edan-auoverlap in.jsonl
  [[ "$output" == *'"emotion":"happy"'* ]]
  run edan-auoverlap --group-by label in.jsonl
  [ "$status" -eq 0 ]
  [[ "$output" == *'"emotion":"sad"'* ]]
  [[ "$output" != *'"emotion":"happy"'* ]]
}

@test "bad records: counted in the skip report, named on stderr, exit 1; neutral is unscored, exit 0" {
  {
    make_happy
    echo '{"image":"e.png","error":"edan-gradcam: cannot decode"}'
    echo '{"image":"f.png","label":"happy"}'
    echo '{"image":"g.png","gradcam":{"layer":"conv4a","class":"happy","landmark_activation":[1,2,3]}}'
    echo '{"image": broken'
  } > in.jsonl
  run --separate-stderr edan-auoverlap in.jsonl
  [ "$status" -eq 1 ]
  [[ "$output" == *'"records":6,"scored":2,"skipped":{"error":2,"no_gradcam":1,"malformed":1}'* ]]
  [[ "$output" == *'"overlap":0.5'* ]]
  [[ "$stderr" == *"record 3: skipped: e.png: record has an error"* ]]
  [[ "$stderr" == *"record 4: skipped: f.png: no gradcam"* ]]
  [[ "$stderr" == *"record 5: skipped: g.png: gradcam.landmark_activation: 3 values, expected 68"* ]]
  run --separate-stderr edan-auoverlap -q in.jsonl
  [ "$status" -eq 1 ]
  [ -z "$stderr" ]
  run edan-auoverlap -f markdown -q in.jsonl
  [[ "$output" == *"6 records, 2 scored, 4 skipped (error 2, no_gradcam 1, malformed 1)"* ]]
  { make_happy; rec n.png neutral conv4a neutral 1 2 3; } > ok.jsonl
  run edan-auoverlap ok.jsonl
  [ "$status" -eq 0 ]
  [[ "$output" == *'"unscored":{"neutral":1}'* ]]
}
