#!/usr/bin/env bats
# examples/default-model/Makefile, the shipped model's recipe, end to end on
# a handful of real faces and a tiny network: FER+ (soft targets), FER2013
# (hard labels) and 300-W (landmarks) mixed in one training, histogram
# equalisation, and every measurement.
load helpers

@test "examples/default-model/Makefile: the mixed training set, a 2-stage model and its measurements" {
  require_data ferplus
  require_data fer2013
  require_data ckplus48
  require_data 300w-subset
  # The datasets' own layouts, as symlinks: the images stay in the shared data.
  for split in FER2013Train FER2013Valid FER2013Test; do
    mkdir -p "fp/$split"
    head -12 "$EDAN_DATA/ferplus/$split/label.csv" > "fp/$split/label.csv"
    for f in $(cut -d, -f1 "fp/$split/label.csv"); do ln -s "$EDAN_DATA/ferplus/$split/$f" "fp/$split/"; done
  done
  for split in train test; do
    for c in angry disgust fear happy neutral sad surprise; do
      mkdir -p "fer/$split/$c"
      for f in $(ls "$EDAN_DATA/fer2013/$split/$c/"*.jpg | head -2); do ln -s "$f" "fer/$split/$c/"; done
    done
  done
  for c in anger contempt disgust fear happy sadness surprise; do
    mkdir -p "ck/$c"
    for f in $(ls "$EDAN_DATA/ckplus48/$c/"*.png | head -2); do ln -s "$f" "ck/$c/"; done
  done
  link_300w 300w-subset/afw 4 lm
  link_300w 300w-subset/helen/testset 3 helen
  run make -f "$EDAN_SRC/examples/default-model/Makefile" BIN="$EDAN_BIN" OUT=o \
    FERPLUS=fp FER2013=fer CKPLUS=ck LM_TRAIN=lm HELEN=helen WIDTHS=4,4,8,8 EPOCHS=1 LM_REPEAT=2 \
    BOOTSTRAP=50 THREADS=1 TRAIN_FLAGS="--batch 8 --optimizer adam --input-norm histeq --stage-init previous" \
    all
  echo "$output" | tail -30
  [ "$status" -eq 0 ]
  [ -s o/model.edan ]
  [[ "$output" == *"--widths 4,4,8,8"* ]]
  [[ "$output" == *"--stages 2 --classes 8 --epochs 1"* ]]
  # Training: FER+ train faces with a target, FER2013 train faces, the 300-W
  # faces twice; validation: FER+ valid faces with a target.
  local fp_train lm
  fp_train=$(jq -c 'select(.split == "train" and has("target"))' o/crops/ferplus.jsonl | count_lines)
  lm=$(jq -c 'select(has("error") | not)' o/crops/lm-train.jsonl | count_lines)
  [ "$lm" -ge 3 ]
  [ "$(count_lines o/train.jsonl)" -eq $((fp_train + 14 + 2 * lm)) ]
  [ "$(jq -c 'select(has("target"))' o/train.jsonl | count_lines)" -eq "$fp_train" ]
  [ "$(jq -c 'select(has("landmarks"))' o/train.jsonl | count_lines)" -eq $((2 * lm)) ]
  [ "$(jq -c 'select(.split != "val")' o/val.jsonl | count_lines)" -eq 0 ]
  # Measurements: FER+ test by majority vote, FER2013 test (14 faces),
  # CK+ (12 faces in the 6 classes), 3 HELEN faces.
  local fp_test
  fp_test=$(jq -c 'select(.split == "test" and has("label"))' o/crops/ferplus.jsonl | count_lines)
  grep -q "\"n\":$fp_test" o/eval/ferplus-test-8.json
  grep -q '"n":14' o/eval/fer2013-test-7.json
  grep -q '"n":12' o/eval/ckplus-6.json
  [ -s o/eval/helen.md ]
}
