#!/usr/bin/env bats
# edan-train: options, input handling, skipped records, checkpoints.
load helpers

# Writes N random 32x32 grayscale PGM faces and their records to recs.jsonl:
# every record has a label, every other one landmarks too.
make_records() {
  local n=${1:-8} labels=(happy sad neutral anger)
  local lm
  lm=$(awk 'BEGIN { printf "["; for (i = 0; i < 68; i++) {
      a = 6.2832 * i / 68; printf "%s[%.2f,%.2f]", (i ? "," : ""), 16 + 9 * cos(a), 16 + 9 * sin(a) + (i % 3) }
    printf "]" }')
  : > recs.jsonl
  for i in $(seq 1 "$n"); do
    { printf 'P5\n32 32\n255\n'; head -c 1024 /dev/urandom; } > "face$i.pgm"
    if (( i % 2 )); then
      printf '{"crop":"face%d.pgm","label":"%s","subject":"s%d","landmarks":%s}\n' \
        "$i" "${labels[i % 4]}" "$i" "$lm" >> recs.jsonl
    else
      printf '{"crop":"face%d.pgm","label":"%s","subject":"s%d"}\n' \
        "$i" "${labels[i % 4]}" "$i" >> recs.jsonl
    fi
  done
}

TINY=(--size 32 --widths 4,4,8,8 --threads 1 -q)

@test "--help lists the options, each documented in the man page" {
  run edan-train --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--output MODEL"* ]]
  for opt in $(edan-train --help | grep -oE '^  (-[a-zA-Z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+'); do
    grep -q -- "$(printf '%s' "$opt" | sed 's/-/\\\\-/g')" "$EDAN_SRC/man/edan-train.1" ||
      { echo "missing in man page: $opt"; return 1; }
  done
}

@test "--version prints the version" {
  run edan-train --version
  [ "$status" -eq 0 ]
  [[ "$output" == "edan-train (edan) "* ]]
}

@test "a bad flag is a usage error" {
  run edan-train --no-such-flag
  [ "$status" -eq 2 ]
  [[ "$output" == *"Try 'edan-train --help'"* ]]
}

@test "--stages 0 is a usage error, not the preset" {
  make_records 4
  run edan-train "${TINY[@]}" --epochs 0 --stages 0 -o m.edan recs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--stages must be at least 1"* ]]
  [ ! -e m.edan ]
}

@test "no --output is a usage error" {
  make_records 4
  run edan-train "${TINY[@]}" --epochs 0 recs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--output"* ]]
}

@test "--epochs 0 writes an untrained model, reading stdin with no FILE" {
  make_records 6
  run bash -c "edan-train ${TINY[*]} --epochs 0 -o m.edan < recs.jsonl 2>/dev/null"
  [ "$status" -eq 0 ]
  [ -s m.edan ]
  [ -z "$output" ]   # nothing on stdout
}

@test "FILE - reads stdin" {
  make_records 6
  run bash -c "cat recs.jsonl | edan-train ${TINY[*]} --epochs 0 -o m.edan -"
  [ "$status" -eq 0 ]
  [ -s m.edan ]
}

@test "bad records are reported on stderr, the rest trains, exit 1" {
  make_records 6
  printf '%s\n' '{"crop":"face1.pgm","label":"happy","error":"no face"}' \
    '{"crop":"face2.pgm"}' '{"crop":"nope.png","label":"sad"}' >> recs.jsonl
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 0 -o m.edan recs.jsonl
  [ "$status" -eq 1 ]
  [ -s m.edan ]
  [[ "$output" == *"record 7: has an error: no face"* ]]
  [[ "$output" == *"record 8: neither landmarks nor a label"* ]]
  [[ "$output" == *"record 9: nope.png: cannot read image"* ]]
  [[ "$output" == *"6 of 9 records used"* ]]
}

@test "no usable record is fatal" {
  printf '%s\n' '{"crop":"nope.png","label":"sad"}' > bad.jsonl
  run edan-train "${TINY[@]}" --epochs 0 -o m.edan bad.jsonl
  [ "$status" -eq 3 ]
  [ ! -e m.edan ]
}

@test "a short run writes the model, the checkpoint and a JSON Lines log" {
  make_records 10
  run edan-train "${TINY[@]}" --epochs 2 --batch 4 --val-fraction 0.2 --log train.log \
    -o m.edan recs.jsonl
  [ "$status" -eq 0 ]
  [ -s m.edan ] && [ -s m.edan.ckpt ]
  [ "$(count_lines train.log)" -eq 4 ]   # 2 stages x 2 epochs
  grep -q '"stage":2,"epoch":2' train.log
  grep -q '"val":{"loss":' train.log
}

@test "--init keeps a trained model's first stages and trains the next; --stage-init previous" {
  make_records 10
  edan-train "${TINY[@]}" --epochs 1 --batch 4 --val-fraction 0.2 -o a.edan recs.jsonl
  run edan-train "${TINY[@]}" --epochs 1 --batch 4 --val-fraction 0.2 --log b.log \
    --init a.edan --init-stages 1 --stage-init previous -o b.edan recs.jsonl
  [ "$status" -eq 0 ]
  # Only stage 2 was trained; stage 1 is a's, to the bit.
  [ "$(count_lines b.log)" -eq 1 ]
  grep -q '"stage":2,"epoch":1' b.log
  echo '{"crop":"face1.pgm"}' > one.jsonl
  [ "$(edan-predict -m a.edan --stages 1 one.jsonl)" = "$(edan-predict -m b.edan --stages 1 one.jsonl)" ]
  [ "$(edan-predict -m a.edan one.jsonl)" != "$(edan-predict -m b.edan one.jsonl)" ]
  # Nothing left to train, another architecture, a bad --stage-init: usage errors.
  run edan-train "${TINY[@]}" --init a.edan -o c.edan recs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--init-stages 2: a.edan has 2 stage(s) and this run 2; at least one must be left to train"* ]]
  run edan-train --size 32 --widths 4,4,8,16 --threads 1 -q --init a.edan --init-stages 1 -o c.edan recs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"its architecture (size, widths, fc, classes) is not this run's"* ]]
  run edan-train "${TINY[@]}" --stage-init copy -o c.edan recs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--stage-init must be random or previous"* ]]
}

@test "--fine-tune trains a model's stages again from its weights, from stage 1 on" {
  make_records 10
  edan-train "${TINY[@]}" --epochs 1 --batch 4 --val-fraction 0.2 -o a.edan recs.jsonl
  run edan-train "${TINY[@]}" --epochs 1 --batch 4 --val-fraction 0.2 --log b.log \
    --init a.edan --fine-tune -o b.edan recs.jsonl
  [ "$status" -eq 0 ]
  # Both stages trained again; stage 1 changed.
  [ "$(count_lines b.log)" -eq 2 ]
  grep -q '"stage":1,"epoch":1' b.log
  grep -q '"stage":2,"epoch":1' b.log
  echo '{"crop":"face1.pgm"}' > one.jsonl
  [ "$(edan-predict -m a.edan --stages 1 one.jsonl)" != "$(edan-predict -m b.edan --stages 1 one.jsonl)" ]
  # --fine-tune without --init is a usage error.
  run edan-train "${TINY[@]}" --fine-tune -o c.edan recs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--fine-tune needs --init MODEL"* ]]
}

@test "relative crop paths are relative to the current directory, not to the records file" {
  make_records 6
  mkdir sub && mv recs.jsonl sub/
  # From here the crops are found; from sub/ (next to the records) they are not.
  run edan-train "${TINY[@]}" --epochs 0 -o m.edan sub/recs.jsonl
  [ "$status" -eq 0 ]
  cd sub
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 0 -o m.edan recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *"face1.pgm: cannot read image: no such file"* ]]
}

@test "one line per evaluation on a non-terminal stderr" {
  make_records 8
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --stages 1 --epochs 2 --batch 4 \
    -o m.edan recs.jsonl
  [ "$status" -eq 0 ]
  [ "$(grep -c 'stage 1/1 epoch' <<< "$output")" -eq 2 ]
}

@test "SIGTERM checkpoints and exits 143; --resume continues" {
  make_records 8
  edan-train "${TINY[@]}" --epochs 100000 --batch 4 -o m.edan recs.jsonl &
  local pid=$!
  for _ in $(seq 1 100); do [ -e m.edan.ckpt ] && break; sleep 0.1; done
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 143 ]
  [ -s m.edan.ckpt ] && [ ! -e m.edan ]
  edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 100000 --batch 4 \
    --resume -o m.edan recs.jsonl 2> resume.err &
  pid=$!
  for _ in $(seq 1 100); do grep -q 'resuming from' resume.err && break; sleep 0.1; done
  kill -INT "$pid"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 130 ]
  grep -q 'resuming from m.edan.ckpt at stage 1' resume.err
}

@test "--resume refuses a checkpoint of other options" {
  make_records 8
  run edan-train "${TINY[@]}" --epochs 1 --batch 4 --max-steps 1 -o m.edan recs.jsonl
  [ "$status" -eq 0 ]
  [ -s m.edan.ckpt ]
  run edan-train "${TINY[@]}" --epochs 1 --batch 4 --seed 5 --resume -o m.edan recs.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *"other options or data"* ]]
}

@test "a soft \"target\" trains the emotion without a label; a bad one is skipped and named" {
  make_records 8
  # Half the records lose their label for a vote distribution (as FER+ ties).
  jq -c 'if (.crop | test("[2468]")) then del(.label) | .target = {"happiness": 0.5, "sad": 0.5} else . end' \
    recs.jsonl > soft.jsonl
  printf '%s\n' '{"crop":"face1.pgm","target":{"happy":"lots"}}' >> soft.jsonl
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --stages 1 --epochs 1 --batch 4 --val-fraction 0 \
    -o m.edan --log log.jsonl soft.jsonl
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"record 9: target: 'happy' is not a number"* ]]
  [[ "$output" == *"8 of 9 records used"* ]]
  # Accuracy counts the 4 records with a label; the loss all 8.
  [ "$(jq '.train.samples' log.jsonl)" -eq 8 ]
  jq -e '.train.accuracy != null and .train.loss > 0' log.jsonl
}

@test "--input-norm histeq: the model sees a face and its contrast-stretched copy alike" {
  # A face with grey levels 64..127 and the same face through a curve that
  # keeps every level distinct (k + k^2/32, k = v - 64): equalisation maps
  # both alike, per-image standardisation does not.
  { printf 'P5\n32 32\n255\n'; head -c 1024 /dev/urandom | od -An -v -tu1 | tr -s ' ' '\n' | grep . \
      | LC_ALL=C awk '{ printf "%c", 64 + $1 % 64 }'; } > a.pgm
  { printf 'P5\n32 32\n255\n'; tail -c 1024 a.pgm | od -An -v -tu1 | tr -s ' ' '\n' | grep . \
      | LC_ALL=C awk '{ k = $1 - 64; printf "%c", k + int(k * k / 32) }'; } > b.pgm
  make_records 6
  for norm in histeq image; do
    run edan-train "${TINY[@]}" --epochs 0 --input-norm "$norm" -o "$norm.edan" recs.jsonl
    [ "$status" -eq 0 ]
    printf '{"crop":"a.pgm"}\n{"crop":"b.pgm"}\n' | edan-predict -m "$norm.edan" -q > "$norm.out"
    [ "$(count_lines "$norm.out")" -eq 2 ]
  done
  [ "$(jq -c .pred.probs histeq.out | uniq | count_lines)" -eq 1 ]
  # Per-image standardisation alone is not blind to it (the control).
  [ "$(jq -c .pred.probs image.out | uniq | count_lines)" -eq 2 ]
  run edan-train "${TINY[@]}" --epochs 0 --input-norm none -o x.edan recs.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--input-norm must be dataset, image or histeq"* ]]
}

@test "--class-weights: the weights are printed when training starts; a bad mode is a usage error" {
  make_records 8   # labels: sad x2, neutral x2, anger x2, happy x2
  jq -c 'if (.crop | test("[12]")) then .label = "happy" else . end' recs.jsonl > skewed.jsonl
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --stages 1 --epochs 1 --batch 4 \
    --val-fraction 0 --class-weights balanced -o m.edan skewed.jsonl
  echo "$output"
  [ "$status" -eq 0 ]
  # happy 4 records (faces 1, 2, 4, 8), anger 2, sad 1, neutral 1: 8 / (4 m).
  [[ "$output" == *"class weights (balanced): neutral 2.00, happy 0.50, sad 2.00"* ]]
  [[ "$output" == *"anger 1.00"* ]]
  [[ "$output" == *"fear 0.00"* ]]
  # Capped at 1.5: neutral and sad hold 1.5 each, happy and anger share the
  # rest, 8 - 3 = 5 over a mass of 4 * 0.5 + 2 * 1 = 4: happy 0.625, anger 1.25.
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --stages 1 --epochs 0 --batch 4 \
    --val-fraction 0 --class-weights balanced --class-weight-max 1.5 -o c.edan skewed.jsonl
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"class weights (balanced): neutral 1.50, happy 0.62, sad 1.50"* ]] ||
    [[ "$output" == *"class weights (balanced): neutral 1.50, happy 0.63, sad 1.50"* ]]
  [[ "$output" == *"anger 1.25"* ]]
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 0 --class-weights inverse \
    -o n.edan skewed.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--class-weights must be none, balanced or sqrt"* ]]
  run edan-train --size 32 --widths 4,4,8,8 --threads 1 --epochs 0 --class-weights sqrt \
    --class-weight-max 0.5 -o n.edan skewed.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--class-weight-max must be 0 (no cap) or at least 1"* ]]
}
