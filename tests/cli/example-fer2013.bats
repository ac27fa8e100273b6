#!/usr/bin/env bats
# examples/fer2013/Makefile, the shipped model's recipe, end to end on a
# handful of real faces and a tiny network: index, teacher-landmark crops,
# the measured input blur, a 2-stage training, every measurement and the
# ablation (with edan-predict --flip against without).
load helpers

@test "examples/fer2013/Makefile: model, measurements and ablation tables on a few faces" {
  require_data fer2013
  require_data ckplus48
  require_data 300w-subset
  # Symlinks in the datasets' own layouts: the images stay in the shared data.
  for split in train test; do
    for c in angry disgust fear happy neutral sad surprise; do
      mkdir -p "fer/$split/$c"
      for f in $(ls "$EDAN_DATA/fer2013/$split/$c/"*.jpg | head -3); do ln -s "$f" "fer/$split/$c/"; done
    done
  done
  for c in anger contempt disgust fear happy sadness surprise; do
    mkdir -p "ck/$c"
    for f in $(ls "$EDAN_DATA/ckplus48/$c/"*.png | head -2); do ln -s "$f" "ck/$c/"; done
  done
  link_300w 300w-subset/helen/testset 3 helen
  link_300w 300w-subset/afw 6 ref
  run make -f "$EDAN_SRC/examples/fer2013/Makefile" BIN="$EDAN_BIN" OUT=o \
    FER2013=fer CKPLUS=ck HELEN=helen BLUR_REF=ref SIZE=32 WIDTHS=4,4,8,8 EPOCHS=1 \
    BOOTSTRAP=50 GRADCAM_LAYERS=conv4b THREADS=1 \
    TRAIN_FLAGS="--batch 8 --optimizer adam --input-norm image --stage-init previous --input-blur-from o/crops/blur-ref.jsonl" \
    all
  echo "$output" | tail -30
  [ "$status" -eq 0 ]
  # The model: the recipe's network, 2 stages, its input blur measured.
  [ -s o/model.edan ]
  [ "$(count_lines o/fer2013-train.jsonl)" -eq 21 ]
  [ "$(count_lines o/fer2013-test.jsonl)" -eq 21 ]
  [[ "$output" == *"--size 32 --widths 4,4,8,8 --stages 2 --epochs 1"* ]]
  [[ "$output" == *"edan-train: input blur "*" px: the training faces are that much blurrier than the 6 faces of o/crops/blur-ref.jsonl"* ]]
  # Measurements: 21 FER2013 test faces, 12 CK+ faces in the 6 classes, 3 HELEN faces.
  grep -q '"n":21' o/eval/fer2013-test-7.json
  grep -q '"n":12' o/eval/ckplus-6.json
  [ -s o/eval/helen.md ]
  grep -q '^| \*\*Average\*\*' o/auoverlap-conv4b.md
  # The ablation: every run scores the same faces; --flip against without.
  for r in joint-2 joint-1 beta-only-1 joint-2-flip; do
    [ "$(jq -c 'select(.dataset == "fer2013")' "o/ablation/pred-$r.jsonl" | count_lines)" -eq 21 ]
  done
  grep -q '^| beta-only-1 | 21 |' o/ablation/table-fer2013.md
  grep -q '^| joint-2-flip | 12 |' o/ablation/flip-ckplus.md
}
