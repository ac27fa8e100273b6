#!/usr/bin/env bats
# edan-eval: prediction records -> one summary. Inputs are hand-made here,
# so every expected number can be checked by hand.
load helpers
bats_require_minimum_version 1.5.0

# Four scored records: happy->happy, sad->happy, anger->anger (by probs),
# neutral->neutral. Accuracy 3/4.
good_preds() {
  cat <<'EOF'
{"image":"a.png","dataset":"ck","label":"happy","pred":{"label":"happy"}}
{"image":"b.png","dataset":"ck","label":"sad","pred":{"label":"happy"}}
{"image":"c.png","dataset":"fer","label":"anger","pred":{"label":"sad","probs":{"anger":0.6,"sad":0.4}}}
{"image":"d.png","dataset":"fer","label":"neutral","pred":{"label":"neutral"}}
EOF
}

@test "--help lists the options" {
  run edan-eval --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"Usage: edan-eval [OPTION]... [FILE]..."* ]]
  for o in --classes --group-by --format --plots --bootstrap --seed --threshold --output; do
    [[ "$output" == *"$o"* ]]
  done
}

@test "--version" {
  run edan-eval --version
  [ "$status" -eq 0 ]
  [[ "$output" == "edan-eval (edan) "* ]]
}

@test "bad flag, bad class set and bad format are usage errors (exit 2)" {
  run edan-eval --no-such-flag
  [ "$status" -eq 2 ]
  [[ "$output" == *"Try 'edan-eval --help'"* ]]
  run edan-eval --classes 5 /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown class set '5'"* ]]
  run edan-eval --format xml /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown format 'xml'"* ]]
  run edan-eval --bootstrap -3 /dev/null
  [ "$status" -eq 2 ]
}

@test "a missing input file is fatal (exit 3) and named" {
  run edan-eval no-such.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *"no-such.jsonl"* ]]
}

@test "hand-made predictions give the exact accuracy" {
  good_preds > p.jsonl
  run edan-eval p.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .accuracy)" = "0.75" ]
  [ "$(echo "$output" | jq -r .n)" = "4" ]
  [ "$(echo "$output" | jq -c .confusion.labels)" = '["neutral","happy","sad","anger"]' ]
  [ "$(echo "$output" | jq -c .confusion.counts)" = '[[1,0,0,0],[0,1,0,0],[0,1,0,0],[0,0,0,1]]' ]
  # sad was predicted once (by label, but probs decide: anger): never predicted.
  [ "$(echo "$output" | jq -r '.per_class[2].precision_defined')" = "false" ]
  [ "$(echo "$output" | jq -r .skipped.total)" = "0" ]
}

@test "stdin via - and via nothing" {
  good_preds > p.jsonl
  run bash -c 'edan-eval - < p.jsonl | jq -r .accuracy'
  [ "$output" = "0.75" ]
  run bash -c 'cat p.jsonl | edan-eval | jq -r .accuracy'
  [ "$output" = "0.75" ]
}

@test "records without a prediction or with an error are in the skip report (exit 1)" {
  good_preds > p.jsonl
  echo '{"image":"e.png","label":"happy","error":"e.png: cannot decode"}' >> p.jsonl
  echo '{"image":"f.png","label":"happy"}' >> p.jsonl
  run --separate-stderr edan-eval p.jsonl
  [ "$status" -eq 1 ]
  [ "$(echo "$output" | jq -r .records)" = "6" ]
  [ "$(echo "$output" | jq -r .n)" = "4" ]
  [ "$(echo "$output" | jq -r .accuracy)" = "0.75" ]
  [ "$(echo "$output" | jq -c .skipped)" = '{"total":2,"reasons":{"error":1,"no_prediction":1}}' ]
  [[ "$stderr" == *"edan-eval: 2 record(s) skipped"* ]]
}

@test "--classes 3: truth surprise skipped (exit 0), probs summed per group, predicted surprise wrong" {
  cat > p.jsonl <<'EOF'
{"label":"surprise","pred":{"label":"surprise"}}
{"label":"sad","pred":{"label":"neutral","probs":{"neutral":0.4,"sad":0.3,"fear":0.3}}}
{"label":"fear","pred":{"label":"surprise"}}
{"label":"contempt","pred":{"label":"happy"}}
EOF
  run edan-eval --classes 3 p.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .skipped.reasons.truth_surprise)" = "1" ]
  [ "$(echo "$output" | jq -r .n)" = "3" ]
  [ "$(echo "$output" | jq -c .confusion.columns)" = '["negative","positive","neutral","other"]' ]
  [ "$(echo "$output" | jq -c .confusion.counts)" = '[[1,0,0,1],[0,1,0,0],[0,0,0,0]]' ]
}

@test "--classes 6: neutral truth skipped, argmax over the six" {
  cat > p.jsonl <<'EOF'
{"label":"neutral","pred":{"label":"neutral"}}
{"label":"sad","pred":{"label":"neutral","probs":{"neutral":0.7,"sad":0.2,"happy":0.1}}}
EOF
  run edan-eval --classes 6 p.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .accuracy)" = "1" ]
  [ "$(echo "$output" | jq -r .skipped.reasons.truth_outside_classes)" = "1" ]
}

@test "--group-by dataset: one row per dataset plus overall (markdown, tsv)" {
  good_preds > p.jsonl
  run edan-eval --group-by dataset --format markdown p.jsonl
  [ "$status" -eq 0 ]
  [[ "$output" == *"| dataset | n | Acc. (%) | Bal. acc. (%) | Macro-F1 (%) | skipped |"* ]]
  [[ "$output" == *"| ck | 2 | 50.0 |"* ]]
  [[ "$output" == *"| fer | 2 | 100.0 |"* ]]
  [[ "$output" == *"| **overall** | 4 | 75.0 |"* ]]
  run edan-eval --group-by dataset --format tsv p.jsonl
  [ "$(echo "$output" | count_lines)" = "4" ]
  [ "$(echo "$output" | awk -F'\t' '$1 == "ck" { print $4 }')" = "0.5" ]
  run edan-eval --group-by dataset p.jsonl
  [ "$(echo "$output" | jq -r '.groups[1].group, .groups[1].accuracy, .overall.accuracy' | tr '\n' ' ')" = "fer 1 0.75 " ]
}

@test "--bootstrap: a 95% CI around the accuracy, the same for the same seed" {
  good_preds > p.jsonl
  run edan-eval --bootstrap 500 --seed 4 p.jsonl
  [ "$status" -eq 0 ]
  first="$(echo "$output" | jq -c .bootstrap.accuracy_ci)"
  run edan-eval --bootstrap 500 --seed 4 p.jsonl
  [ "$(echo "$output" | jq -c .bootstrap.accuracy_ci)" = "$first" ]
  echo "$output" | jq -e '.bootstrap.accuracy_ci[0] <= .accuracy and .accuracy <= .bootstrap.accuracy_ci[1]'
}

@test "landmarks: NME, AUC and failure rate from hand-made shapes" {
  # 68 points on a line: outer eye corners 9 apart, eye centres 6 apart.
  # Shifts of 0.9 and 0.18 px: inter-ocular NME 0.1 and 0.02.
  jq -nc '[range(68)] | map([., 0]) as $t
          | ({landmarks: $t, pred: {landmarks: ($t | map([.[0] + 0.9, 0]))}},
             {landmarks: $t, pred: {landmarks: ($t | map([.[0] + 0.18, 0]))}})' > l.jsonl
  run edan-eval l.jsonl
  [ "$status" -eq 0 ]
  echo "$output" | jq -e '.landmarks.n == 2'
  echo "$output" | jq -e '(.landmarks.inter_ocular.mean_nme - 0.06 | fabs) < 1e-12'
  echo "$output" | jq -e '(.landmarks.inter_pupil.mean_nme - 0.09 | fabs) < 1e-12'
  echo "$output" | jq -e '(.landmarks.inter_ocular.auc - 0.375 | fabs) < 1e-12'
  echo "$output" | jq -e '.landmarks.inter_ocular.failure_rate == 0.5'
}

@test "landmarks of a crop record are compared in the source image's pixels" {
  # The crop is the source scaled by 2 (crop_transform [2,0,0,0]): truth in
  # crop pixels is twice the source; a prediction equal to truth/2 is exact,
  # one shifted by 0.9 source px has inter-ocular NME 0.9/9 = 0.1.
  jq -nc '[range(68)] | map([., 0]) as $t
          | ({landmarks: ($t | map([.[0] * 2, 0])), crop_transform: [2, 0, 0, 0], crop_size: 200,
              pred: {landmarks: $t}},
             {landmarks: ($t | map([.[0] * 2, 0])), crop_transform: [2, 0, 0, 0], crop_size: 200,
              pred: {landmarks: ($t | map([.[0] + 0.9, 0]))}})' > c.jsonl
  run edan-eval c.jsonl
  [ "$status" -eq 0 ]
  echo "$output" | jq -e '(.landmarks.inter_ocular.mean_nme - 0.05 | fabs) < 1e-12'
}

@test "--plots writes PNG figures; -o writes the summary to a file" {
  good_preds > p.jsonl
  run edan-eval --group-by dataset --plots figs -o summary.json p.jsonl
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  jq -e '.overall.accuracy == 0.75' summary.json
  for f in confusion.png confusion-ck.png confusion-fer.png; do
    [[ "$(file -b figs/$f)" == "PNG image data"* ]]
  done
}

@test "every option in --help is in the man page" {
  man="$EDAN_SRC/man/edan-eval.1"
  [ -f "$man" ]
  for o in $(edan-eval --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    grep -qF -- "${o//-/\\-}" "$man" || { echo "missing $o"; false; }
  done
}

@test "the man page examples run" {
  good_preds > preds.jsonl
  run edan-eval --format markdown preds.jsonl
  [ "$status" -eq 0 ]
  run edan-eval --classes 3 --group-by dataset --bootstrap 1000 --plots figs/ preds.jsonl
  [ "$status" -eq 0 ]
  [ -f figs/confusion.png ]
}

@test "examples/cross-dataset/Makefile: given sets are indexed, cropped, predicted, tabulated" {
  mk="$EDAN_SRC/examples/cross-dataset/Makefile"
  run make -s -f "$mk" -n
  [ "$status" -ne 0 ]
  [[ "$output" == *"no dataset given"* ]]
  run make -f "$mk" -n MODEL=m.edan CKPLUS=ck JAFFE=jf FER2013=fer2013.csv
  [ "$status" -eq 0 ]
  [[ "$output" == *"edan-index --layout ckplus --dataset ckplus"*" ck "* ]]
  [[ "$output" == *"edan-index --layout fer2013-csv --dataset fer2013 --out-dir out/fer2013-png"* ]]
  [[ "$output" == *"edan-crop --out-dir out/crops/jaffe --detector haar"* ]]
  [[ "$output" == *"edan-predict -m m.edan"* ]]
  [[ "$output" == *"edan-eval --classes 7 --group-by dataset"* ]]
  [[ "$output" == *"edan-eval --classes 3 --group-by dataset"* ]]
  [[ "$output" != *"affectnet"* ]]
  [[ "$output" != *"ised"* ]]
}

@test "--baseline: every run against one on the same faces, paired" {
  # run a: 3 of 4 right; run b: the same faces in another order, 2 right.
  good_preds | jq -c '.run = "a"' > runs.jsonl
  good_preds | jq -c '.run = "b" | if .image == "d.png" then .pred = {"label": "sad"} else . end' \
    | tac >> runs.jsonl
  edan-eval --classes 7 --group-by run --baseline a --bootstrap 200 runs.jsonl > out.json
  [ "$(jq -c '.groups[1].vs_baseline | [.baseline, .n, .accuracy, .baseline_accuracy, .difference]' out.json)" \
    = '["a",4,0.5,0.75,-0.25]' ]
  [ "$(jq '.groups[1].vs_baseline.difference_ci | (.[0] <= -0.25 and .[1] >= -0.25)' out.json)" = true ]
  [ "$(jq '.groups[0] | has("vs_baseline")' out.json)" = false ]
  edan-eval --classes 7 --group-by run --baseline a --format markdown runs.jsonl > out.md
  grep -F '| b | 4 | 50.0 | 75.0 | -25.0 |' out.md
  run edan-eval --group-by run --baseline nope runs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--baseline nope: no record has run = nope"* ]]
  run edan-eval --baseline a runs.jsonl
  [ "$status" -eq 2 ]
}
