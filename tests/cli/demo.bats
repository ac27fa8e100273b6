#!/usr/bin/env bats
# make demo's pipeline (examples/demo/run.sh) on local photos: one line per
# face, the records, crops, overlays and an HTML report with a row per face.
# (The real demo fetches its photos from Debian packages: examples/demo/photos.sh.)
load helpers

@test "demo: a summary line and a report row per face, paths relative to the output" {
  require_data 300w-subset
  mkdir two
  ls "$EDAN_DATA/300w-subset/helen/testset/"*.jpg | head -2 | xargs cp -t two/
  "$EDAN_TESTS_BIN/make-model" --size 48 model.edan
  run env EDAN_MODEL="$TMP/model.edan" DEMO_PHOTOS="$TMP/two" DEMO_OUT="$TMP/out" \
    bash "$EDAN_SRC/examples/demo/run.sh" "$EDAN_BIN"
  [ "$status" -eq 0 ]
  faces=$(count_lines out/records.jsonl)
  [ "$faces" -ge 2 ]
  # One "NAME face K: label P% (top 3: ...)" line per face, then the total.
  [ "$(grep -c ' face [0-9]*: [a-z]* [0-9]*%  (top 3: ' <<< "$output")" -eq "$faces" ]
  [[ "$output" == *"demo: $faces faces in "*"report: $TMP/out/report.html"* ]]
  # Every face has a row whose images exist relative to the report.
  [ "$(grep -o '<tr><td>' out/report.html | wc -l)" -eq "$faces" ]
  for src in $(grep -o 'src="[^"]*"' out/report.html | cut -d'"' -f2); do
    [ -f "out/$src" ]
  done
  [ "$(jq -s '[.[] | select(.pred and .gradcam.overlay)] | length' out/records.jsonl)" -eq "$faces" ]
}

@test "demo: a missing model is named" {
  run env EDAN_MODEL="$TMP/none.edan" DEMO_PHOTOS="$TMP" bash "$EDAN_SRC/examples/demo/run.sh" "$EDAN_BIN"
  [ "$status" -eq 3 ]
  [[ "$output" == *"no model at $TMP/none.edan"* ]]
}
