#!/usr/bin/env bats
# examples/300w/Makefile end to end on a handful of 300-W faces and a tiny
# model: detector-framed crops, a 2-stage training, stage 1 vs stage 2
# predictions of the same faces, and the paired landmark table.
load helpers

@test "examples/300w/Makefile: crops, trains 2 stages, compares stage 1 with stage 2 on the same faces" {
  require_data 300w-subset
  link_300w 300w-subset/afw 8 tr
  link_300w 300w-subset/helen/testset 3 te
  run make -f "$EDAN_SRC/examples/300w/Makefile" BIN="$EDAN_BIN" OUT=o TRAIN_SETS=tr TEST_SET=te \
    PRESET=small CROP_SIZE=48 EPOCHS=1 BOOTSTRAP=50 TRAIN_FLAGS="--batch 4 --size 32 --widths 4,4,8,8 -q"
  echo "$output" | tail -20
  [ "$status" -eq 0 ]
  [ "$(count_lines o/train.jsonl)" -eq 8 ]
  [ "$(count_lines o/test.jsonl)" -eq 3 ]
  grep -q '"crop_transform"' o/test.jsonl
  # Both runs score the same 3 faces.
  [ "$(grep -c '"run":"stage-1"' o/pred.jsonl)" -eq 3 ]
  [ "$(grep -c '"run":"stage-2"' o/pred.jsonl)" -eq 3 ]
  [ "$(jq -c '.groups[1].vs_baseline.landmarks | [.n, (.difference_ci | length)]' o/eval.json)" = "[3,2]" ]
  grep -q '^#### Landmarks against run = stage-1' o/eval.md
  grep -qE '^\| stage-2 \| 3 \| [0-9.]+ \| [0-9.]+ \| [-+]?[0-9.]+ \| ' o/eval.md
}
