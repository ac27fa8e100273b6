#!/usr/bin/env bats
# bench/reference.py: the Python PyTorch reference of make bench computes the
# same probabilities and landmarks as edan from the same model file.
load helpers

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
  /usr/bin/python3 -c 'import torch' 2>/dev/null || skip "/usr/bin/python3 has no torch"
  [ -x "$EDAN_TESTS_BIN/predict-raw" ] || skip "predict-raw fixture not built"
  ref="$EDAN_SRC/bench/reference.py"
}

@test "reference.py agrees with edan within 1e-4 (2 stages, folded BatchNorm)" {
  "$EDAN_TESTS_BIN/make-model" --size 32 --widths 4,8,8,16 --fc 16 --trained-like "$TMP/m.edan" -q
  run /usr/bin/python3 "$ref" check "$TMP/m.edan" "$EDAN_TESTS_BIN/predict-raw" --n 5
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *'"ok": true'* ]]
}

@test "reference.py check fails when the outputs differ" {
  "$EDAN_TESTS_BIN/make-model" --size 32 --widths 4,8,8,16 --fc 16 --trained-like --seed 1 "$TMP/a.edan" -q
  "$EDAN_TESTS_BIN/make-model" --size 32 --widths 4,8,8,16 --fc 16 --trained-like --seed 2 "$TMP/b.edan" -q
  # edan runs model b through a wrapper while the reference loads model a.
  printf '#!/bin/sh\nexec "%s" "%s" "$2"\n' "$EDAN_TESTS_BIN/predict-raw" "$TMP/b.edan" > "$TMP/other"
  chmod +x "$TMP/other"
  run /usr/bin/python3 "$ref" check "$TMP/a.edan" "$TMP/other" --n 3
  [ "$status" -eq 1 ]
  [[ "$output" == *'"ok": false'* ]]
}

@test "reference.py predict writes edan-predict's record form" {
  "$EDAN_TESTS_BIN/make-model" --size 32 --widths 4,8,8,16 --fc 16 "$TMP/m.edan" -q
  { printf 'P5\n32 32\n255\n'; head -c 1024 /dev/zero | tr '\0' '\100'; } > "$TMP/face.pgm"
  printf '{"id":1,"crop":"%s"}\n{"id":2,"crop":"%s"}\n' "$TMP/face.pgm" "$TMP/face.pgm" > "$TMP/in.jsonl"
  /usr/bin/python3 "$ref" predict "$TMP/m.edan" "$TMP/in.jsonl" --batch 1 > "$TMP/py.jsonl"
  [ "$(count_lines "$TMP/py.jsonl")" -eq 2 ]
  edan-predict -m "$TMP/m.edan" "$TMP/in.jsonl" > "$TMP/edan.jsonl"
  # Same fields in the same order, same label, probs within rounding.
  run /usr/bin/python3 - "$TMP/py.jsonl" "$TMP/edan.jsonl" <<'PY'
import json, sys
py, ed = ([json.loads(l) for l in open(f)] for f in sys.argv[1:3])
for a, b in zip(py, ed):
    assert list(a) == list(b), (list(a), list(b))
    assert a["pred"]["label"] == b["pred"]["label"]
    for k, v in b["pred"]["probs"].items():
        assert abs(a["pred"]["probs"][k] - v) <= 2e-6, k
    assert len(a["pred"]["landmarks"]) == 68
PY
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "reference.py train times training steps and says what it includes" {
  run /usr/bin/python3 "$ref" train --size 32 --widths 4,8,8,16 --fc 16 --batch 4 --warmup 1 --steps 1
  echo "$output"
  [ "$status" -eq 0 ]
  run jq -e '.images_per_s > 0 and .batch == 4 and .steps == 1 and .with_landmarks == 1
             and .config.stages == 2 and .config.classes == 8
             and (.includes | test("backward")) and (.excludes | test("augmentation"))' <<< "$output"
  [ "$status" -eq 0 ]
}
