#!/usr/bin/env bats
# examples/peers/Makefile end to end on a handful of real faces: the pinned
# npm packages installed, the weights checked, face-api.js and Human run in
# Node on edan-crop's crops next to edan-predict, and one edan-eval table
# per set with a row per run.
load helpers

# The peers come from the npm registry: without it there is nothing to test.
require_npm_registry() {
  command -v npm > /dev/null || skip "npm not installed"
  command -v node > /dev/null || skip "node not installed"
  timeout 20 npm view face-api.js@0.22.2 version > /dev/null 2>&1 \
    || skip "the npm registry is not reachable (npm view face-api.js@0.22.2 failed)"
}

# Crops DIR's faces as the test set's records, as examples/default-model does.
#   crop_set ck ckplus ck.jsonl
crop_set() {
  edan-index --layout "$([ "$2" = ckplus ] && echo ckplus || echo folders)" --dataset "$2" "$1" \
    | edan-crop --detector none --frame detector --size 48 -q --out-dir "crops/$2" -o "$3"
}

@test "examples/peers/Makefile: face-api.js, Human and edan on the same crops, one table per set" {
  require_data ckplus48
  require_data fer2013
  require_data ferplus
  require_npm_registry
  # Symlinks in the datasets' own layouts: the images stay in the shared data.
  for c in anger happy surprise; do
    mkdir -p "ck/$c"
    ln -s "$(ls "$EDAN_DATA/ckplus48/$c/"*.png | head -1)" "ck/$c/"
  done
  for c in disgust happy sad; do
    mkdir -p "fer/$c"
    ln -s "$(ls "$EDAN_DATA/fer2013/test/$c/"*.jpg | head -1)" "fer/$c/"
  done
  # FER+: the first faces of its test split with a clear majority, in class
  # folders. A label.csv line: name,"(0, 0, 48, 48)", then the votes for
  # neutral happy surprise sad anger disgust fear contempt (fields 6 to 13).
  head -12 "$EDAN_DATA/ferplus/FER2013Test/label.csv" | awk -F, '{
      split("neutral happy surprise sad anger disgust fear contempt", name, " ")
      best = 0; ties = 0
      for (i = 1; i <= 8; i++) { v = $(i + 5); if (v > best) { best = v; k = i; ties = 0 } else if (v == best) ties++ }
      if (!ties && !seen[k]++ && n++ < 3) print $1, name[k] }' > fp.txt
  [ "$(count_lines fp.txt)" -eq 3 ]
  while read -r f c; do
    mkdir -p "fp/$c"; ln -s "$EDAN_DATA/ferplus/FER2013Test/$f" "fp/$c/"
  done < fp.txt
  crop_set ck ckplus ck.jsonl
  crop_set fer fer2013 fer.jsonl
  crop_set fp ferplus fp.jsonl
  # A record that failed upstream passes through every run unchanged.
  echo '{"image":"gone.png","label":"happy","error":"gone.png: cannot open"}' >> ck.jsonl
  # edan's row: a random-weight model, this test is about the peers.
  "$EDAN_TESTS_BIN/make-model" --size 48 -q model.edan

  run make -f "$EDAN_SRC/examples/peers/Makefile" BIN="$EDAN_BIN" OUT=o EDAN_MODEL=model.edan \
    CKPLUS_CROPS=ck.jsonl FER2013_TEST=fer.jsonl FERPLUS_TEST=fp.jsonl PER_CLASS=1 BOOTSTRAP=50
  echo "$output" | tail -30
  [ "$status" -eq 0 ]
  # The weights were checked and sit next to their licences.
  [[ "$output" == *"face_expression_model.bin: OK"* ]]
  [[ "$output" == *"emotion.bin: OK"* ]]
  grep -q 'MIT' o/weights/face-api.js/LICENSE.face-api.js
  grep -q 'MIT' o/weights/human/LICENSE.vladmandic-human
  # One record out per record in, in every run; the balanced sample has one face per class.
  [ "$(count_lines o/sets/fer2013-balanced.jsonl)" -eq 3 ]
  for s in ckplus:4 fer2013-balanced:3 fer2013-test:3 ferplus-test:3; do
    for r in edan face-api.js human; do
      f="o/pred/${s%:*}-$r.jsonl"
      [ "$(count_lines "$f")" -eq "${s#*:}" ]
      [ "$(jq -c 'select(has("error") | not) | [.run, (.pred.probs | length > 0)]' "$f" | sort -u)" = "[\"$r\",true]" ]
    done
    # The peers' records: the 7 canonical labels (no contempt), in edan's
    # order, probabilities that sum to 1 and a label that is their argmax.
    for r in face-api.js human; do
      [ "$(jq -c 'select(has("error") | not)
            | (.pred.probs | keys_unsorted) == ["neutral","happy","sad","surprise","fear","disgust","anger"]
              and ((.pred.probs | add) - 1 | fabs) < 1e-3
              and .pred.label == (.pred.probs | to_entries | max_by(.value) | .key)' \
            "o/pred/${s%:*}-$r.jsonl" | sort -u)" = true ]
    done
  done
  # The failed record, untouched by each run.
  for r in edan face-api.js human; do
    grep -qx '{"image":"gone.png","label":"happy","error":"gone.png: cannot open"}' "o/pred/ckplus-$r.jsonl"
  done
  # One table per set, a row per run and the peers against edan on the same faces.
  for t in ckplus-6 ckplus-3 fer2013-balanced-7 fer2013-test-7 ferplus-test-8; do
    for r in edan face-api.js human; do grep -qE "^\| $r \| [0-9]+ \| [0-9.]+ \|" "o/eval/$t.md"; done
    grep -q '^### Against run = edan' "o/eval/$t.md"
  done
  [ "$(jq -c '[.groups[].group]' o/eval/fer2013-test-7.json)" = '["edan","face-api.js","human"]' ]
  [ "$(jq -c '.groups[1].vs_baseline.n' o/eval/ferplus-test-8.json)" = 3 ]
  [ "$(grep -c "^| " o/speed.md)" -eq 9 ]
}
