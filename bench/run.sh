#!/usr/bin/env bash
# make bench: prints one JSON document (bench/README.md says what each figure
# is). Every figure is the median, min and max of $EDAN_BENCH_RUNS runs (3),
# with the command line that produced it. Not a timed test: run it on an
# otherwise idle machine.
#
#   bench/run.sh BIN_DIR
# Environment (counts scale the run time; the defaults: an estimated 10-15 min on 2 cores):
#   EDAN_BENCH_RUNS=3            runs per figure
#   EDAN_BENCH_FACES=1500        faces per predict run for small; dan gets 1/48
#                                of it (at least 128), paper 1/192 (at least 64)
#   EDAN_BENCH_PRESETS="small dan paper"
#   EDAN_BENCH_BATCHES="1 8 32"
#   EDAN_BENCH_PYTHON=/usr/bin/python3   the reference's interpreter ("" = skip)
#   EDAN_BENCH_BEFORE=DIR        an older build's bin/ dir (with ../libedan.so):
#                                its edan-predict at batch 8, and after/before ratios
#   EDAN_BENCH_TRAIN_PRESETS="small recipe"  edan-train step figures: a preset
#                                at batch 16, or "recipe": the default model's
#                                training flags at batch 64, against bench/reference.py train
#   EDAN_BENCH_TRAIN_STEPS=8     steps timed (the difference of a 2-step run
#                                and a 2+N-step run: start-up and loading cancel)
#   EDAN_BENCH_PHOTOS=24         640x480 photos per edan-crop run
#   EDAN_BENCH_DETECTORS="blazeface blazeface-front haar lbp dlib none"
#   EDAN_BENCH_STREAM=100000     records of the long peak-RSS stream (vs 1000)
#   EDAN_BENCH_VIDEO_FACES="1 2 4"  passengers of the in-car scene videos
#   EDAN_BENCH_VIDEO_SECONDS=8   their length (15 fps, 640x480)
set -euo pipefail
bin=$(cd "${1:?usage: bench/run.sh BIN_DIR}" && pwd)
build=$(cd "$bin/.." && pwd)
fixtures=$build/tests
src=$(cd "$(dirname "$0")/.." && pwd)
runs=${EDAN_BENCH_RUNS:-3}
faces=${EDAN_BENCH_FACES:-1500}
presets=${EDAN_BENCH_PRESETS:-small dan paper}
batches=${EDAN_BENCH_BATCHES:-1 8 32}
python=${EDAN_BENCH_PYTHON-/usr/bin/python3}
before=${EDAN_BENCH_BEFORE:-}
train_presets=${EDAN_BENCH_TRAIN_PRESETS:-small recipe}
train_steps=${EDAN_BENCH_TRAIN_STEPS:-8}
photos=${EDAN_BENCH_PHOTOS:-24}
detectors=${EDAN_BENCH_DETECTORS:-blazeface blazeface-front haar lbp dlib none}
stream=${EDAN_BENCH_STREAM:-100000}
video_seconds=${EDAN_BENCH_VIDEO_SECONDS:-8}
data=${EDAN_DATA:-$src/../shared/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
start=$(date +%s)

note() { printf 'bench: %s\n' "$*" >&2; }
# The reference is what the speed claims are measured against: a missing
# one is an error (make bench installs it), never an empty column. Only an
# explicit EDAN_BENCH_PYTHON="" skips it.
if [ -n "$python" ] && ! err=$("$python" -c 'import torch' 2>&1); then
  note "the Python reference cannot run: $python -c 'import torch' failed: ${err##*$'\n'}"
  note "install it with: bash scripts/deps.sh bench (Debian's python3-torch), or skip it with EDAN_BENCH_PYTHON=\"\""
  exit 1
fi

# seconds CMD...: runs CMD (stdout discarded), prints its wall-clock seconds.
seconds() {
  local s e
  s=$(date +%s.%N)
  "$@" > /dev/null
  e=$(date +%s.%N)
  awk -v a="$s" -v b="$e" 'BEGIN { printf "%.4f", b - a }'
}
# stats V...: {"median","min","max","runs"} of numbers.
stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    printf "{\"median\":%.2f,\"min\":%.2f,\"max\":%.2f,\"runs\":%d}", v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}
# rate WORK CMD...: runs CMD $runs times; stats of WORK / seconds.
rate() {
  local work=$1 r=() t
  shift
  for _ in $(seq "$runs"); do
    t=$(seconds "$@")
    r+=("$(awk -v n="$work" -v t="$t" 'BEGIN { printf "%.4f", n / t }')")
  done
  stats "${r[@]}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "null" }'; }
median() { jq -r .median <<< "$1"; }
# A PGM face of side S (a smooth gradient with a face-sized blob), which both
# edan (OpenCV) and the Python reference decode.
pgm() {
  { printf 'P5\n%d %d\n255\n' "$1" "$1"
    awk -v s="$1" 'BEGIN { for (y = 0; y < s; y++) for (x = 0; x < s; x++) {
      d = ((x - s / 2) ^ 2 + (y - s / 2) ^ 2) / (s * s); printf "%c", 40 + int(180 * exp(-4 * d)) } }'
  } > "$2"
}
config() {
  case $1 in
    small) echo "48 16,48,96,192" ;;
    dan) echo "112 64,128,256,512" ;;
    paper) echo "224 64,128,256,512" ;;
  esac
}
env_before() { LD_LIBRARY_PATH="$before/..${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

out=$(jq -n --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
  --argjson cores "$(nproc)" --arg kernel "$(uname -r)" \
  --arg torch "$( [ -n "$python" ] && "$python" -c 'import torch; print(torch.__version__)' || echo none)" \
  --arg date "$(date -u +%FT%TZ)" \
  '{machine: {cpu: $cpu, cores: $cores, kernel: $kernel, python_torch: $torch}, date: $date,
    runs_per_figure: '"$runs"'}')

# --- the machine's FP32 peak ---------------------------------------------------
note "peak"
peak=$("$build/bench/bench-kernels" peak --runs "$runs")
out=$(jq --argjson p "$peak" '.peak = ($p + {command: "bench-kernels peak (torch::mm, 2048x2048 fp32)"})' <<< "$out")
peak_gflops=$(jq -r .gflops.median <<< "$peak")

# --- edan-predict vs the Python reference, and the conv body -------------------
predict='[]'
body='[]'
checks='[]'
for preset in $presets; do
  read -r size widths <<< "$(config "$preset")"
  "$fixtures/make-model" --preset "$preset" --size "$size" --widths "$widths" --fc 256 \
    --trained-like "m-$preset.edan" -q
  pgm "$size" "face-$size.pgm"
  # dan and paper: fewer faces (each costs 50 or 200 times more), at least
  # 128 and 64 so that batch 32 runs 4 and 2 full batches: with one batch
  # only, the first touch of its memory (2.5 GB for paper at batch 32) is
  # most of the time, and a larger batch reads slower than it runs.
  case $preset in small) n=$faces ;; dan) n=$((faces / 48)); min=128 ;; *) n=$((faces / 192)); min=64 ;; esac
  [ "$preset" = small ] || [ "$n" -ge "$min" ] || n=$min
  for _ in $(seq "$n"); do echo "{\"crop\":\"face-$size.pgm\"}"; done > "in-$preset.jsonl"
  if [ -n "$python" ]; then
    note "$preset: reference check"
    c=$("$python" "$src/bench/reference.py" check "m-$preset.edan" "$fixtures/predict-raw" --n 4 || true)
    checks=$(jq --arg p "$preset" --argjson c "${c:-null}" '. + [{preset: $p} + ($c | del(.model))]' <<< "$checks")
  fi
  for batch in $batches; do
    note "$preset: batch $batch ($n faces)"
    e=$(rate "$n" "$bin/edan-predict" -m "m-$preset.edan" --batch "$batch" -q "in-$preset.jsonl")
    # Where the time of one more run went (edan-predict --timings).
    tm=$("$bin/edan-predict" -m "m-$preset.edan" --batch "$batch" -q --timings "in-$preset.jsonl" 2>&1 > /dev/null \
      | sed -n 's/^edan-predict: timings //p')
    row=$(jq -n --arg p "$preset" --argjson s "$size" --argjson b "$batch" --argjson n "$n" --argjson e "$e" \
      --argjson tm "${tm:-null}" \
      '{preset: $p, size: $s, batch: $b, faces: $n, edan: ($e + {command: "edan-predict -m \($p).edan --batch \($b) in.jsonl"}),
        breakdown: $tm}')
    if [ -n "$python" ]; then
      py=$(rate "$n" "$python" "$src/bench/reference.py" predict "m-$preset.edan" "in-$preset.jsonl" --batch "$batch")
      row=$(jq --argjson py "$py" --argjson r "$(ratio "$(median "$e")" "$(median "$py")")" --arg c "python3 bench/reference.py predict $preset.edan in.jsonl --batch $batch" \
        '.python = ($py + {command: $c}) | .edan_over_python = $r' <<< "$row")
    fi
    if [ -n "$before" ] && [ "$batch" = 8 ]; then
      b=$(rate "$n" env_before "$before/edan-predict" -m "m-$preset.edan" --batch "$batch" -q "in-$preset.jsonl")
      row=$(jq --argjson b "$b" --argjson r "$(ratio "$(median "$e")" "$(median "$b")")" --arg c "BEFORE/edan-predict -m $preset.edan --batch $batch in.jsonl" \
        '.before = ($b + {command: $c}) | .after_over_before = $r' <<< "$row")
      if [ -n "$python" ]; then
        row=$(jq --argjson r "$(ratio "$(median "$b")" "$(jq -r .python.median <<< "$row")")" '.before_over_python = $r' <<< "$row")
      fi
    fi
    predict=$(jq --argjson r "$row" '. + [$r]' <<< "$predict")
  done
  note "$preset: conv body at batch 8"
  k=$("$build/bench/bench-kernels" body "m-$preset.edan" --batch 8 --runs "$runs")
  k=$(jq --argjson peak "$peak_gflops" --arg c "bench-kernels body $preset.edan --batch 8" \
    '. + {fraction_of_peak: ((.gflops.median / $peak * 1000 | round) / 1000), command: $c}' <<< "$k")
  if [ -n "$before" ]; then
    u=$("$build/bench/bench-kernels" body "m-$preset.edan" --batch 8 --runs "$runs" --unfolded)
    k=$(jq --argjson u "$u" '.unfolded = {gflops: $u.gflops, faces_per_s: $u.faces_per_s, command: "bench-kernels body --unfolded"}' <<< "$k")
  fi
  # End to end: conv FLOPs of edan-predict's batch-8 rate.
  e8=$(jq -r --arg p "$preset" 'map(select(.preset == $p and .batch == 8))[0].edan.median // empty' <<< "$predict")
  if [ -n "$e8" ]; then
    k=$(jq --argjson f "$e8" --argjson peak "$peak_gflops" \
      '.end_to_end_batch8 = {gflops: ((.conv_gflop_per_face * $f * 100 | round) / 100), fraction_of_peak: ((.conv_gflop_per_face * $f / $peak * 1000 | round) / 1000),
                             over_body: (($f / .faces_per_s.median * 1000 | round) / 1000)}' <<< "$k")
  fi
  body=$(jq --argjson k "$k" '. + [$k]' <<< "$body")
done
out=$(jq --argjson p "$predict" --argjson b "$body" --argjson c "$checks" \
  '.predict = $p | .conv_body = $b | .reference_check = $c' <<< "$out")

# --- startup to the first record (the default-size model) ---------------------
note "startup"
echo '{"crop":"face-48.pgm"}' > one.jsonl
[ -f face-48.pgm ] || pgm 48 face-48.pgm
[ -f m-small.edan ] || "$fixtures/make-model" --preset small --size 48 --widths 16,48,96,192 --fc 256 m-small.edan -q
st=()
for _ in $(seq "$runs"); do st+=("$(seconds "$bin/edan-predict" -m m-small.edan -q one.jsonl)"); done
out=$(jq --argjson s "$(stats "${st[@]}")" '.startup_seconds = ($s + {command: "edan-predict -m small.edan one.jsonl (one record)"})' <<< "$out")

# The floor under it: an empty C program, and the same program linked to
# LibTorch (the libraries edan-predict links), started the same way. Loading
# LibTorch and its dependencies is paid before main() runs.
echo 'int main(void) { return 0; }' > empty.c
floor=null
if ${CC:-cc} empty.c -o empty-plain 2>/dev/null &&
   ${CC:-cc} empty.c -o empty-torch -Wl,--no-as-needed -ltorch_cpu -lc10 2>/dev/null; then
  fp=() ft=()
  for _ in $(seq "$runs"); do fp+=("$(seconds ./empty-plain)"); ft+=("$(seconds ./empty-torch)"); done
  floor=$(jq -n --argjson p "$(stats "${fp[@]}")" --argjson t "$(stats "${ft[@]}")" \
    '{empty_program: ($p + {command: "int main(void) { return 0; }"}),
      empty_program_linked_to_libtorch: ($t + {command: "the same, cc -Wl,--no-as-needed -ltorch_cpu -lc10"})}')
fi
out=$(jq --argjson f "$floor" '.startup_floor_seconds = $f' <<< "$out")

# --- edan-train: images/s of a training step ---------------------------------
# A preset at batch 16 (.train), and "recipe": the default model's training
# step (examples/default-model/Makefile: stage 1 of 2, 8 classes, Adam,
# histeq, batch 64; a quarter of the records with 68 landmarks, so that both
# terms of the joint loss are on) against the same step in Python PyTorch
# (.train_recipe).
recipe_size=48
recipe_widths=32,64,128,256
recipe_flags=(--preset small --size "$recipe_size" --widths "$recipe_widths" --stages 2 --classes 8
  --batch 64 --optimizer adam --lr-base 1e-4 --lr-max 1e-3 --dropout 0.25 --input-norm histeq)
# 68 distinct points around the crop's centre, in its pixels (as
# reference.py's face_shape): eye centres some 9 px apart.
face_landmarks() {
  awk -v s="$1" 'BEGIN { printf "["; for (k = 0; k < 68; k++) { a = 2 * 3.141592653589793 * k / 68
    printf "%s[%.3f,%.3f]", (k ? "," : ""), s / 2 + s / 3 * cos(a), s / 2 + s * 3 / 8 * sin(a) } printf "]" }'
}
# train_rate BATCH RECORDS FLAGS...: images/s of edan-train steps, $runs times.
train_rate() {
  local batch=$1 records=$2 r=() t0 t1 base
  shift 2
  for _ in $(seq "$runs"); do
    base=("$@" --epochs 1 --val-fraction 0 -q "$records")
    t0=$(seconds "$bin/edan-train" "${base[@]}" -o t0.edan --checkpoint t0.ckpt --max-steps 2)
    t1=$(seconds "$bin/edan-train" "${base[@]}" -o t1.edan --checkpoint t1.ckpt --max-steps $((2 + train_steps)))
    rm -f t0.* t1.*
    r+=("$(awk -v n=$((batch * train_steps)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", n / (b - a) }')")
  done
  stats "${r[@]}"
}
train='[]'
recipe=null
for preset in $train_presets; do
  if [ "$preset" = recipe ]; then
    pgm "$recipe_size" "train-$recipe_size.pgm"
    lm=$(face_landmarks "$recipe_size")
    labels=(neutral happy sad surprise fear disgust anger contempt)
    # 2+N steps and one batch more, so that both runs stop inside the epoch
    # (an epoch's end adds an evaluation and a checkpoint).
    nrec=$((64 * (train_steps + 3)))
    for i in $(seq 0 $((nrec - 1))); do
      extra=""
      [ $((i % 4)) -eq 0 ] && extra=",\"landmarks\":$lm"
      echo "{\"crop\":\"train-$recipe_size.pgm\",\"label\":\"${labels[$((i % 8))]}\",\"subject\":\"s$((i % 16))\"$extra}"
    done > train-recipe.jsonl
    note "train recipe: $train_steps steps at batch 64"
    e=$(train_rate 64 train-recipe.jsonl "${recipe_flags[@]}")
    recipe=$(jq -n --argjson e "$e" --arg c "edan-train ${recipe_flags[*]} --max-steps K (K = 2 and $((2 + train_steps)), $nrec labelled records, 1 in 4 with 68 landmarks, stage 1): 64*$train_steps / time difference" \
      --argjson s "$recipe_size" --arg w "$recipe_widths" \
      '{size: $s, widths: ($w | split(",") | map(tonumber)), stages: 2, classes: 8, batch: 64, optimizer: "adam",
        edan: {images_per_s: $e, command: $c}}')
    if [ -n "$python" ]; then
      note "train recipe: python, $train_steps steps at batch 64"
      pyargs=(--size "$recipe_size" --widths "$recipe_widths" --stages 2 --fc 256 --classes 8 --dropout 0.25
        --batch 64 --landmarks 0.25 --warmup 2 --steps "$train_steps")
      r=() pj=""
      for _ in $(seq "$runs"); do
        pj=$("$python" "$src/bench/reference.py" train "${pyargs[@]}")
        r+=("$(jq -r .images_per_s <<< "$pj")")
      done
      py=$(stats "${r[@]}")
      recipe=$(jq --argjson py "$py" --argjson pj "$pj" --argjson r "$(ratio "$(median "$e")" "$(median "$py")")" \
        --arg c "python3 bench/reference.py train ${pyargs[*]}: 64*$train_steps / time of the steps after 2 warm-up steps" \
        '.python = {images_per_s: $py, command: $c, threads: $pj.threads, includes: $pj.includes, excludes: $pj.excludes}
         | .edan_over_python = $r' <<< "$recipe")
    fi
    continue
  fi
  read -r size widths <<< "$(config "$preset")"
  pgm "$size" "train-$size.pgm"
  labels=(neutral happy sad surprise fear disgust anger)
  for i in $(seq 0 255); do
    echo "{\"crop\":\"train-$size.pgm\",\"label\":\"${labels[$((i % 7))]}\",\"subject\":\"s$((i % 16))\"}"
  done > "train-$preset.jsonl"
  note "train $preset: $train_steps steps at batch 16"
  s=$(train_rate 16 "train-$preset.jsonl" --preset "$preset" --batch 16)
  train=$(jq --arg p "$preset" --argjson s "$s" --arg c "edan-train --preset $preset --batch 16 --max-steps K (K = 2 and $((2 + train_steps)), 256 labelled records, stage 1): 16*$train_steps / time difference" \
    '. + [{preset: $p, batch: 16, images_per_s: $s, command: $c}]' <<< "$train")
done
out=$(jq --argjson t "$train" --argjson r "$recipe" '.train = $t | .train_recipe = $r' <<< "$out")

# --- edan-crop: faces/s on 640x480 photos per detector --------------------------
crop='[]'
if [ -d "$data/300w-subset/afw" ]; then
  mkdir -p photos
  sources=("$data"/300w-subset/afw/*.jpg)
  for f in "${sources[@]:0:$photos}"; do
    "$fixtures/make-image" photo "$f" 640 480 "photos/$(basename "$f")"
    echo "{\"image\":\"$work/photos/$(basename "$f")\"}"
  done > photos.jsonl
  np=$(wc -l < photos.jsonl)
  for det in $detectors; do
    note "crop: $det ($np photos)"
    found=$( { "$bin/edan-crop" --out-dir crops --detector "$det" -q photos.jsonl || true; } | jq -s 'map(select(has("error") | not)) | length')
    r=()
    for _ in $(seq "$runs"); do
      t=$(seconds "$bin/edan-crop" --out-dir crops --detector "$det" -q photos.jsonl || true)
      r+=("$(awk -v n="$found" -v t="$t" 'BEGIN { printf "%.4f", n / t }')")
    done
    crop=$(jq --arg d "$det" --argjson n "$np" --argjson f "$found" --argjson s "$(stats "${r[@]}")" \
      --arg c "edan-crop --out-dir crops --detector $det photos.jsonl ($np photos, 640x480 JPEG, from 300-W afw)" \
      '. + [{detector: $d, photos: $n, faces: $f, faces_per_s: $s, command: $c}]' <<< "$crop")
  done
else
  note "crop: skipped, no shared data at $data"
fi
out=$(jq --argjson c "$crop" '.crop = $c' <<< "$out")

# --- video: frames per second of edan-predict --video, 640x480, 1/2/4 faces ----
# The in-car scene (examples/in-car): CK+48 faces pasted on a synthetic
# background, moving; the default model and detector, tracks and smoothing
# on. frames_per_s: the whole command (start-up included) over its frames;
# rate: the records' own "rate" (frames processed per second of wall
# clock, last second), its median over the run: the steady state.
video='[]'
if [ -d "$data/ckplus48" ]; then
  for nf in ${EDAN_BENCH_VIDEO_FACES:-1 2 4}; do
    note "video: $nf face(s)"
    "$build/bench/bench-incar-scene" make --faces "$nf" --seconds "$video_seconds" "$data/ckplus48" "scene-$nf.avi" "truth-$nf.json"
    frames=$(jq .frames "truth-$nf.json")
    r=(); rates=()
    for _ in $(seq "$runs"); do
      t=$(seconds "$bin/edan-predict" -q --video "scene-$nf.avi" -o "rec-$nf.jsonl")
      r+=("$(awk -v n="$frames" -v t="$t" 'BEGIN { printf "%.4f", n / t }')")
      rates+=("$(jq -s 'map(select(.frame > 15) | .rate) | sort | .[length / 2 | floor] // 0' "rec-$nf.jsonl")")
    done
    score=$("$build/bench/bench-incar-scene" score "truth-$nf.json" "rec-$nf.jsonl")
    video=$(jq --argjson n "$nf" --argjson f "$frames" --argjson s "$(stats "${r[@]}")" \
      --argjson rate "$(stats "${rates[@]}")" --argjson score "$score" \
      --arg c "edan-predict --video scene-$nf.avi ($frames frames, 640x480, 15 fps; bench-incar-scene make --faces $nf)" \
      '. + [{faces: $n, frames: $f, frames_per_s: $s, rate: $rate,
             id_switches: $score.id_switches, found: $score.found, of: $score.faces, command: $c}]' <<< "$video")
  done
else
  note "video: skipped, no shared data at $data/ckplus48"
fi
out=$(jq --argjson v "$video" '.video = $v' <<< "$out")

# --- peak RSS of edan-predict: a long stream vs a short one ---------------------
note "rss: $stream records"
"$fixtures/make-model" --size 32 --widths 4,8,8,16 --fc 16 tiny.edan -q
pgm 32 face-32.pgm
rss() {
  local r=() kb
  for _ in $(seq "$runs"); do
    kb=$( { yes '{"crop":"face-32.pgm"}' | head -n "$1" | /usr/bin/time -f '%M' "$bin/edan-predict" -m tiny.edan -q > /dev/null; } 2>&1 | tail -1 || true)
    r+=("$kb")
  done
  stats "${r[@]}"
}
short=$(rss 1000)
long=$(rss "$stream")
out=$(jq --argjson s "$short" --argjson l "$long" --argjson n "$stream" \
  '.rss_kb = {short: ($s + {records: 1000}), long: ($l + {records: $n}), long_over_short: ((($l.median / $s.median) * 1000 | round) / 1000),
     command: "yes {\"crop\":...} | head -n N | /usr/bin/time -f %M edan-predict -m tiny.edan (S=32, widths 4,8,8,16)"}' <<< "$out")

out=$(jq --argjson t $(( $(date +%s) - start )) '.seconds = $t' <<< "$out")
echo "$out"
