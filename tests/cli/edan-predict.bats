#!/usr/bin/env bats
# edan-predict: one record out per record in, in order, with "pred" or "error".
load helpers

# A 32×32 grayscale gradient PNG (466 bytes).
PNG_B64='iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAAAAABWESUoAAABmUlEQVR42mNgYOcTlVHWMrSwd/MNiU7KLCiva+2ZPGvhivXb9h45fekmAzOXoIS8mq6JtZNnQHhcak5xVWNH/7S5S1Zv2nng+LmrdxjYeEWklTQNzO1cfYKjEjPyy2pbuifNXLB83dY9h09dvHGfgVNAXE5Vx9jK0cM/LDYlu6iyob1v6pzFqzbu2H/s7JXbjxh4hKUUNfTNbF28gyIT0vNKa5q7Js6Yv2ztlt2HTl64fu8pA7+YrIq2kaWDu19oTHJWYUV9W++U2YtWbti+7+iZy7cevmAQklRQ1zO1cfYKjIhPyy2pbuqcMH3e0jWbdx08cf7a3SevGfD68cHzdwx4/fj41UcGvH589vYLA14/vvzwnQGvH998/sWA14/vv/1lwOvHTz8ZGPD68esfZga8fvzxn40Brx9/M3Ey4PXjP1YeBrx+ZOTgZ8DrRxZuIQa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwa8fgSmVwA10hgfO5PNlQAAAABJRU5ErkJggg=='

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
  echo "$PNG_B64" | base64 -d > face.png
  "$EDAN_TESTS_BIN/make-model" --size 32 model.edan
}

@test "--help lists the options" {
  run edan-predict --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--model"* ]]
  [[ "$output" == *"--batch"* ]]
  [[ "$output" == *"--shard"* ]]
}

@test "--version" {
  run edan-predict --version
  [ "$status" -eq 0 ]
  [[ "$output" == *"0.1.0"* ]]
}

@test "a bad flag is a usage error (exit 2)" {
  run edan-predict --no-such-flag
  [ "$status" -eq 2 ]
  [[ "$output" == *"Try 'edan-predict --help'"* ]]
  run edan-predict -m model.edan --batch 0 < /dev/null
  [ "$status" -eq 2 ]
}

@test "every option of --help is in the man page" {
  for opt in $(edan-predict --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "${opt//-/\\\\-}" "$EDAN_SRC/man/edan-predict.1" || { echo "missing $opt"; false; }
  done
}

@test "a good record round trip: pred with label, all probs, 68 landmarks" {
  echo '{"crop":"face.png","label":"happy","subject":"s1"}' > in.jsonl
  run edan-predict -m model.edan in.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r '.label + " " + .subject')" = "happy s1" ]
  [ "$(echo "$output" | jq '.pred.probs | length')" -eq 7 ]
  [ "$(echo "$output" | jq '.pred.landmarks | length')" -eq 68 ]
  [ "$(echo "$output" | jq -r '.pred.label as $l | .pred.probs | has($l)')" = true ]
  [ "$(echo "$output" | jq '[.pred.probs[]] | add | . > 0.999 and . < 1.001')" = true ]
  [ "$(echo "$output" | jq 'keys_unsorted')" = "$(printf '{"crop":1,"label":1,"subject":1,"pred":1}' | jq keys_unsorted)" ]
}

@test "stdin via - and via nothing" {
  run sh -c 'echo "{\"crop\":\"face.png\"}" | edan-predict -m model.edan -'
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.pred.landmarks | length')" -eq 68 ]
  run sh -c 'echo "{\"crop\":\"face.png\"}" | edan-predict -m model.edan'
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.pred.landmarks | length')" -eq 68 ]
}

@test "bare image paths: the face is detected in memory (--detector none: the whole image)" {
  run sh -c 'ls face.png | edan-predict -m model.edan --detector none'
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .image)" = face.png ]
  # The face's box where edan-crop puts it: at the top level, with its index.
  [ "$(echo "$output" | jq -c '[.face, .box, .pred.box]')" = '[0,[0,0,32,32],null]' ]
  [ "$(echo "$output" | jq '.pred.probs | length')" -eq 7 ]
}

@test "image files and folders as arguments, found by content, recursively in byte order" {
  mkdir -p photos/b
  cp face.png photos/b/2.png
  cp face.png photos/a.jpeg.bak           # an image whatever its name
  echo "not an image" > photos/notes.png  # and a name is not an image
  run --separate-stderr edan-predict -m model.edan --detector none face.png photos
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .image | tr '\n' ' ')" = "face.png photos/a.jpeg.bak photos/b/2.png " ]
  [ "$(echo "$output" | jq -s 'map(select(.pred.probs | length == 7)) | length')" -eq 3 ]
  [[ "$stderr" == *"photos: 1 file is not an image and not read (notes.png)"* ]]
}

@test "every face of a photo by default, one record each; --faces largest keeps one" {
  require_data 300w-subset
  "$EDAN_TESTS_BIN/make-image" pair "$EDAN_DATA/300w-subset/helen/testset/296814969_3.jpg" pair.png
  run edan-predict -m model.edan pair.png
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 2 ]
  [ "$(echo "$output" | jq -c '[.image, .face, (.box | length), (.pred.landmarks | length)]' | tr -d '\n')" = \
    '["pair.png",0,4,68]["pair.png",1,4,68]' ]
  # The two faces are side by side: different boxes.
  [ "$(echo "$output" | jq -s '.[0].box != .[1].box')" = true ]
  # The same box as edan-crop's for each face.
  edan-crop --out-dir C pair.png | jq -c .box > crop-boxes
  [ "$(echo "$output" | jq -c .box)" = "$(cat crop-boxes)" ]
  run edan-predict -m model.edan --faces largest pair.png
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  run edan-predict -m model.edan --faces some < /dev/null
  [ "$status" -eq 2 ]
}

@test "options are never guessed from a prefix: --out is an error naming the options it begins" {
  run edan-predict -m model.edan --out somewhere face.png
  [ "$status" -eq 2 ]
  [[ "$output" == *"did you mean --output?"* ]]
  [ ! -e somewhere ]
}

@test "an image without a face is an error, or the whole image when small or with --fallback full" {
  "$EDAN_TESTS_BIN/make-image" flat 80 70 128 flat.png
  run --separate-stderr edan-predict -m model.edan flat.png
  [ "$status" -eq 1 ]
  [[ "$(echo "$output" | jq -r .error)" == *"no face"* ]]
  # One line on stderr says how many records failed and why.
  [[ "$stderr" == *"1 of 1 record written with an error (1 no face found)"* ]]
  run edan-predict -m model.edan --fallback full flat.png
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -c '[.fallback, .box]')" = '[true,[0,0,80,70]]' ]
  # A 32 px image is a face crop too small to detect: taken whole by default
  # (--fallback small), an error with --fallback none.
  run edan-predict -m model.edan face.png
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq .fallback)" = true ]
  run edan-predict -m model.edan --fallback none face.png
  [ "$status" -eq 1 ]
  run edan-predict -m model.edan --fallback maybe < /dev/null
  [ "$status" -eq 2 ]
}

@test "--video: one record per face per processed frame, with frame and time" {
  "$EDAN_TESTS_BIN/make-video" --frames 6 --fps 10 clip.avi
  run edan-predict -m model.edan --detector none --video clip.avi --every 2
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -c '[.video, .frame, .time, .face]' | tr -d '\n')" = \
    '["clip.avi",0,0,0]["clip.avi",2,0.2,0]["clip.avi",4,0.4,0]' ]
  [ "$(echo "$output" | jq '.pred.landmarks | length' | sort -u)" -eq 68 ]
  run edan-predict -m model.edan --video absent.avi
  [ "$status" -eq 3 ]
  [[ "$output" == *absent.avi* ]]
  run edan-predict -m model.edan --video clip.avi --every 0
  [ "$status" -eq 2 ]
}

@test "-q silences FFmpeg's own messages about a damaged video" {
  "$EDAN_TESTS_BIN/make-video" --frames 30 --fps 10 clip.avi
  head -c 20000 clip.avi > cut.avi
  run --separate-stderr edan-predict -m model.edan --detector none --video cut.avi
  [[ "$stderr" == *"["*" @ 0x"*"]"* ]] || skip "this FFmpeg says nothing about the cut: $stderr"
  run --separate-stderr edan-predict -q -m model.edan --detector none --video cut.avi
  [ "$status" -eq 1 ]
  [ -n "$output" ]
  [ -z "$stderr" ]
}

@test "a truncated video: the frames read, then an error record and a warning naming the cut, exit 1" {
  "$EDAN_TESTS_BIN/make-video" --frames 50 --fps 10 clip.avi
  head -c $(( $(stat -c %s clip.avi) * 2 / 5 )) clip.avi > cut.avi
  run --separate-stderr edan-predict -m model.edan --detector none --video cut.avi
  [ "$status" -eq 1 ]
  frames=$(jq -s 'map(select(has("pred"))) | length' <<< "$output")
  [ "$frames" -gt 0 ] && [ "$frames" -lt 50 ]
  last=$(tail -1 <<< "$output")
  [ "$(jq -r .error <<< "$last")" = "video ends after $frames of the 50 frames it declares (the last frame read is $(( frames - 1 ))): the file is truncated or damaged" ]
  [ "$(jq -r .video <<< "$last")" = cut.avi ]
  [[ "$stderr" == *"1 of $(( frames + 1 )) records written with an error"* ]]
  # ... and a warning that says it at once, naming the last frame read.
  [[ "$stderr" == *"edan-predict: video ends after $frames of the 50 frames it declares (the last frame read is $(( frames - 1 )))"* ]]
  # The whole file: no error record, exit 0.
  run --separate-stderr edan-predict -m model.edan --detector none --video clip.avi
  [ "$status" -eq 0 ]
  [ "$(count_lines <<< "$output")" -eq 50 ]
}

@test "batches reuse their memory: minor page faults do not grow with the batches" {
  # The shipped model at 48 px. Before cli::Tool kept glibc's heap (mallopt),
  # each batch's tensors were handed back to the kernel and faulted in again:
  # 453k minor faults for 1,000 crops at one thread, 42k after (a count of
  # pages, not of time: neither the CPU nor the thread count moves it much).
  [ -x /usr/bin/time ] || skip "/usr/bin/time (Debian package time) not installed"
  # Under make asan, AddressSanitizer's allocator replaces glibc's, whose
  # settings this measures.
  [ -z "${ASAN_OPTIONS:-}" ] || skip "AddressSanitizer's allocator, not glibc's"
  printf 'P5\n48 48\n255\n' > f.pgm && head -c 2304 /dev/urandom >> f.pgm
  for i in $(seq 1000); do echo '{"crop":"f.pgm"}'; done > many.jsonl
  /usr/bin/time -f '%R' -o faults.txt edan-predict -q --threads 1 many.jsonl > out.jsonl
  [ "$(count_lines out.jsonl)" -eq 1000 ]
  echo "minor faults: $(cat faults.txt)"
  [ "$(cat faults.txt)" -lt 150000 ]
}

@test "one record per input record, in order, when some inputs fail" {
  cp face.png other.png
  : > empty.png
  cat > in.jsonl <<'EOF'
{"crop":"face.png","n":1}
{"crop":"missing.png","n":2}
{this is not JSON
{"crop":"empty.png","n":4}
{"n":5}
{"crop":"other.png","n":6,"error":"failed upstream"}
{"crop":"other.png","n":7}
EOF
  run --separate-stderr edan-predict -m model.edan --batch 3 in.jsonl
  [ "$status" -eq 1 ]
  [ "$(echo "$output" | wc -l)" -eq 7 ]
  [ "$stderr" = "edan-predict: 5 of 7 records written with an error (1 No such file or directory, 1 empty file, 1 failed upstream, ...)" ] || { echo "$stderr"; false; }
  [ "$(echo "$output" | jq -c '[.n, has("pred"), has("error")]' | tr -d '\n')" = \
    '[1,true,false][2,false,true][null,false,true][4,false,true][5,false,true][6,false,true][7,true,false]' ]
  [[ "$(echo "$output" | sed -n 2p | jq -r .error)" == *missing.png* ]]
  [ "$(echo "$output" | sed -n 6p | jq -r .error)" = "failed upstream" ]
}

@test "batch size does not change the predictions" {
  for i in 1 2 3 4 5; do echo '{"crop":"face.png"}'; done > in.jsonl
  edan-predict -m model.edan --batch 2 in.jsonl > b2.jsonl
  edan-predict -m model.edan --batch 32 in.jsonl > b32.jsonl
  [ "$(count_lines b2.jsonl)" -eq 5 ]
  # Equal up to float summation order (batch size may change the kernels).
  [ "$(jq -n --slurpfile a b2.jsonl --slurpfile b b32.jsonl \
      '[range(0; 5) as $i | range(0; 7) as $j |
        ([$a[$i].pred.probs[]][$j] - [$b[$i].pred.probs[]][$j]) | fabs] | max < 1e-4')" = true ]
  [ "$(jq -n --slurpfile a b2.jsonl --slurpfile b b32.jsonl \
      '[range(0; 5) as $i | range(0; 68) as $k | range(0; 2) as $c |
        ($a[$i].pred.landmarks[$k][$c] - $b[$i].pred.landmarks[$k][$c]) | fabs] | max < 0.02')" = true ]
}

@test "--shard K/N splits the input into interleaved slices" {
  for i in 1 2 3 4 5; do echo "{\"crop\":\"face.png\",\"n\":$i}"; done > in.jsonl
  [ "$(edan-predict -m model.edan --shard 1/2 in.jsonl | jq -c .n | tr '\n' ' ')" = "1 3 5 " ]
  [ "$(edan-predict -m model.edan --shard 2/2 in.jsonl | jq -c .n | tr '\n' ' ')" = "2 4 " ]
  run edan-predict -m model.edan --shard 3/2 in.jsonl
  [ "$status" -eq 2 ]
}

@test "3- and 8-class models name their classes" {
  "$EDAN_TESTS_BIN/make-model" --size 32 --classes 3 m3.edan
  "$EDAN_TESTS_BIN/make-model" --size 32 --classes 8 --stages 1 m8.edan
  echo '{"crop":"face.png"}' > in.jsonl
  [ "$(edan-predict -m m3.edan in.jsonl | jq -c '.pred.probs | keys_unsorted')" = '["negative","positive","neutral"]' ]
  [ "$(edan-predict -m m8.edan in.jsonl | jq '.pred.probs | has("contempt")')" = true ]
}

@test "a missing or bad model is fatal (exit 3) and named" {
  echo '{"crop":"face.png"}' > in.jsonl
  run edan-predict -m nowhere.edan in.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *nowhere.edan* ]]
  head -c 1000 model.edan > cut.edan
  run edan-predict -m cut.edan in.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *cut.edan* ]]
  run edan-predict -m face.png in.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *face.png* ]]
}

@test "EDAN_MODEL names the default model" {
  echo '{"crop":"face.png"}' > in.jsonl
  EDAN_MODEL="$TMP/model.edan" run edan-predict in.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.pred.landmarks | length')" -eq 68 ]
  EDAN_MODEL="$TMP/absent.edan" run edan-predict in.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *absent.edan* ]]
}

@test "--device cuda without CUDA is fatal with a clear message" {
  echo '{"crop":"face.png"}' > in.jsonl
  run edan-predict -m model.edan --device cuda in.jsonl
  if [ "$status" -eq 0 ]; then skip "CUDA is available here"; fi
  [ "$status" -eq 3 ]
  [[ "$output" == *CUDA* ]]
  run edan-predict -m model.edan --device tpu in.jsonl
  [ "$status" -eq 2 ]
}

@test "-o writes the records to a file" {
  echo '{"crop":"face.png"}' > in.jsonl
  run edan-predict -m model.edan -o out.jsonl in.jsonl
  [ "$status" -eq 0 ]
  [ "$(jq '.pred.landmarks | length' out.jsonl)" -eq 68 ]
}

@test "man page example: shards run with xargs -P join to the unsharded output" {
  for i in 1 2 3 4 5 6 7; do echo "{\"crop\":\"face.png\",\"n\":$i}"; done > crops.jsonl
  edan-predict -m model.edan --threads 1 crops.jsonl | sort > whole.jsonl
  seq 1 3 | xargs -P 3 -I{} \
    edan-predict -m model.edan --threads 1 --shard {}/3 -o part{}.jsonl crops.jsonl
  cat part*.jsonl | sort > joined.jsonl
  [ "$(count_lines joined.jsonl)" -eq 7 ]
  cmp whole.jsonl joined.jsonl
}

@test "edan-crop then edan-predict equals edan-predict on the images (landmarks in image pixels)" {
  require_data 300w-subset
  ls "$EDAN_DATA"/300w-subset/helen/testset/*.jpg | head -3 > images.txt
  "$EDAN_TESTS_BIN/make-model" --size 64 m64.edan
  edan-crop --out-dir C --threads 1 images.txt | edan-predict -m m64.edan \
    | jq -c '[.image, .pred.label, .pred.landmarks]' > via-crops.jsonl
  edan-predict -m m64.edan images.txt | jq -c '[.image, .pred.label, .pred.landmarks]' > direct.jsonl
  [ "$(count_lines direct.jsonl)" -eq 3 ]
  [ "$(jq -c '.[0:2]' via-crops.jsonl)" = "$(jq -c '.[0:2]' direct.jsonl)" ]
  [ "$(jq -n --slurpfile a via-crops.jsonl --slurpfile b direct.jsonl \
      '[range(0; 3) as $i | range(0; 68) as $k | range(0; 2) as $c |
        ($a[$i][2][$k][$c] - $b[$i][2][$k][$c]) | fabs] | max < 0.05')" = true ]
}

@test "--stages K predicts with the first K stages; more than the model has is exit 2" {
  echo '{"crop":"face.png"}' > in.jsonl
  edan-predict -m model.edan in.jsonl > all.jsonl
  edan-predict -m model.edan --stages 2 in.jsonl > s2.jsonl
  edan-predict -m model.edan --stages 1 in.jsonl > s1.jsonl
  cmp all.jsonl s2.jsonl
  # Stage 1's own head: other probabilities and landmarks than stage 2's.
  [ "$(jq -c .pred.probs s1.jsonl)" != "$(jq -c .pred.probs all.jsonl)" ]
  [ "$(jq -c .pred.landmarks s1.jsonl)" != "$(jq -c .pred.landmarks all.jsonl)" ]
  run edan-predict -m model.edan --stages 3 in.jsonl
  [ "$status" -eq 2 ]
  [[ "$output" == *"--stages 3: the model has 2 stages"* ]]
}

@test "--flip averages a face and its mirror image: a face and its mirror get mirrored predictions" {
  "$EDAN_TESTS_BIN/make-image" ramp 32 32 ramp.png
  "$EDAN_TESTS_BIN/make-image" mirror ramp.png mirror.png
  printf '{"crop":"ramp.png"}\n{"crop":"mirror.png"}\n' > in.jsonl
  edan-predict -m model.edan in.jsonl > plain.jsonl
  edan-predict -m model.edan --flip in.jsonl > flip.jsonl
  # Without --flip the two faces score differently (so the checks below can fail).
  [ "$(jq -c '.pred.probs' plain.jsonl | sort -u | wc -l)" -eq 2 ]
  # With it: the mean of the two plain predictions, the same for both faces,
  # and landmarks that are each other's mirror image (x -> 31 - x, point k <-> its mirror).
  jq -s -e '
    def close(a; b; tol): ([a, b] | transpose | map(.[0] - .[1] | fabs) | max) <= tol;
    (.[0:2] | map(.pred.probs | to_entries | sort_by(.key) | map(.value))) as [$p, $m]
    | (.[2:4] | map(.pred.probs | to_entries | sort_by(.key) | map(.value))) as [$f, $g]
    | close($f; [$p, $m] | transpose | map(add / 2); 2e-6) and close($f; $g; 2e-6)' \
    plain.jsonl flip.jsonl
  jq -s -e '
    [16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1,0, 26,25,24,23,22,21,20,19,18,17,
     27,28,29,30, 35,34,33,32,31, 45,44,43,42,47,46, 39,38,37,36,41,40,
     54,53,52,51,50,49,48, 59,58,57,56,55, 64,63,62,61,60, 67,66,65] as $mirror
    | (.[0].pred.landmarks) as $a | (.[1].pred.landmarks) as $b
    | [range(68) | ($a[.][0] - (31 - $b[$mirror[.]][0]) | fabs), ($a[.][1] - $b[$mirror[.]][1] | fabs)]
    | max <= 0.02' flip.jsonl
}

@test "video options that would be ignored or meaningless are usage errors" {
  run edan-predict -m model.edan --camera -3
  [ "$status" -eq 2 ]
  [[ "$output" == *"--camera must be a camera index"* ]]
  run edan-predict -m model.edan --video clip.avi face.png
  [ "$status" -eq 2 ]
  [[ "$output" == *"drop the FILE arguments"* ]]
}

@test "--timings: one JSON line on stderr, with the faces and batches of the run" {
  for i in 1 2 3 4 5; do echo '{"crop":"face.png"}'; done > in.jsonl
  run --separate-stderr edan-predict -q -m model.edan --batch 2 --timings in.jsonl
  [ "$status" -eq 0 ]
  [ "$(count_lines <<< "$output")" -eq 5 ]
  t=$(sed -n 's/^edan-predict: timings //p' <<< "$stderr")
  [ "$(jq -c '[.faces, .batches]' <<< "$t")" = '[5,3]' ]
  [ "$(jq '[.wall_s, .load_s, .read_s, .pack_s, .forward_s, .records_s, .write_s] | all(. >= 0)' <<< "$t")" = true ]
  [ "$(jq '.wall_s >= .load_s + .forward_s' <<< "$t")" = true ]
  # Without the flag: nothing on stderr.
  run --separate-stderr edan-predict -q -m model.edan in.jsonl
  [ -z "$stderr" ]
}
