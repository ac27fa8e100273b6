#!/usr/bin/env bats
# edan-gradcam: one record out per record in, with "gradcam" (and "pred")
# or "error"; map and overlay files; mean maps with --mean.
load helpers

# A 32×32 grayscale cartoon face PNG (167 bytes): bright oval, dark eyes and mouth.
PNG_B64='iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAAAAABWESUoAAAAbklEQVR42tXTwQ3AIAgFUMbxzBAd9q/RxdoYpEUhSNJL/4nIizEq1JJQDaAnBNC4ACYrAHxBQV/FLgAiQWFfRAEw8+hI+QBZHEJLA5wdJtBz3rGH+CNYr7LyFscrZdA88PGXy391Phf5ZG3MppsLfXuiWCtPN/0AAAAASUVORK5CYII='

# Another face (bigger eyes, round mouth), for a second set of landmarks.
PNG2_B64='iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAAAAABWESUoAAAAZklEQVR42mMQIQAYqKzgBAzgUHDiBKYKBqzSSEpIUHDiBFYVDDjloSqIVgASkJOTg0pBWWgK5ORgKmAsUk3A7ojhqUADBLApEEFIw5WIkKZABEMB9hSFpp+0NEkwVRORL+iRN7EAADCEYGjEKdCtAAAAAElFTkSuQmCC'

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
  echo "$PNG_B64" | base64 -d > face.png
  "$EDAN_TESTS_BIN/make-model" --size 32 model.edan
}

@test "--help lists the options, --version" {
  run edan-gradcam --help
  [ "$status" -eq 0 ]
  [[ "$output" == "Usage: edan-gradcam [OPTION]... [FILE]..."* ]]
  for opt in --model --out-dir --layer --class --mean --frontal-eps --top-k --batch --threads --device; do
    [[ "$output" == *"$opt"* ]] || { echo "missing $opt"; return 1; }
  done
  run edan-gradcam --version
  [ "$status" -eq 0 ]
  [[ "$output" == "edan-gradcam (edan) "* ]]
}

@test "a bad flag or option value is a usage error (exit 2)" {
  run edan-gradcam --no-such-flag
  [ "$status" -eq 2 ]
  [[ "$output" == *"Try 'edan-gradcam --help'"* ]]
  run edan-gradcam -m model.edan < /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"--out-dir"* ]]
  run edan-gradcam -m model.edan --out-dir cams --layer conv5a < /dev/null
  [ "$status" -eq 2 ]
  run edan-gradcam -m model.edan --out-dir cams --class bored < /dev/null
  [ "$status" -eq 2 ]
  run edan-gradcam -m model.edan --out-dir cams --class contempt < /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"not one of the model's classes"* ]]
}

@test "a good record round trip: files, gradcam fields, 68 activations, pred" {
  echo '{"crop":"face.png","label":"happy","subject":"s1"}' > in.jsonl
  run --separate-stderr edan-gradcam -m model.edan --out-dir cams in.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -c 'keys_unsorted')" = '["crop","label","subject","pred","gradcam"]' ]
  [ "$(echo "$output" | jq -c '.gradcam | keys_unsorted')" = \
    '["layer","class","size","max","map","overlay","landmark_activation","top_landmarks"]' ]
  [ "$(echo "$output" | jq -r .gradcam.layer)" = conv4a ]
  # --class pred: the map is for the predicted class.
  [ "$(echo "$output" | jq -r '.gradcam.class == .pred.label')" = true ]
  [ "$(echo "$output" | jq '.gradcam.landmark_activation | length')" -eq 68 ]
  [ "$(echo "$output" | jq '.gradcam.landmark_activation | (min >= 0) and (max <= 1)')" = true ]
  [ "$(echo "$output" | jq '.gradcam.top_landmarks | length')" -eq 10 ]
  # top_landmarks are the highest activations, highest first.
  [ "$(echo "$output" | jq '.gradcam as $g | [$g.top_landmarks[] | $g.landmark_activation[.]] |
      . == (sort | reverse)')" = true ]
  [ "$(echo "$output" | jq '.gradcam as $g | [$g.top_landmarks[0] | $g.landmark_activation[.]][0] ==
      ($g.landmark_activation | max)')" = true ]
  map=$(echo "$output" | jq -r .gradcam.map)
  overlay=$(echo "$output" | jq -r .gradcam.overlay)
  [ "$map" = "cams/face.png.0.conv4a.$(echo "$output" | jq -r .gradcam.class).map.png" ]
  [ "$overlay" = "${map%.map.png}.overlay.png" ]
  # The raw map: 16-bit grayscale PNG, S×S; the overlay: RGB, upscaled to 256.
  file "$map" | grep -q '32 x 32, 16-bit grayscale'
  file "$overlay" | grep -q '256 x 256, 8-bit/color RGB'
  [ -z "$(ls cams | grep -v -e '\.map\.png$' -e '\.overlay\.png$')" ]  # no temporaries left
}

@test "--class label and NAME, --layer conv4b, an existing pred is kept" {
  echo '{"crop":"face.png","label":"SA","pred":{"label":"x"}}' > in.jsonl
  run edan-gradcam -m model.edan --out-dir cams --class label --layer conv4b in.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r '.gradcam.class + " " + .gradcam.layer + " " + .pred.label')" = "sad conv4b x" ]
  run edan-gradcam -m model.edan --out-dir cams --class surprise in.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .gradcam.class)" = surprise ]
}

@test "maps of two classes of the same face differ" {
  echo '{"crop":"face.png"}' > in.jsonl
  edan-gradcam -m model.edan --out-dir a --class happy in.jsonl > a.jsonl
  edan-gradcam -m model.edan --out-dir b --class anger in.jsonl > b.jsonl
  [ "$(jq -c .gradcam.landmark_activation a.jsonl)" != "$(jq -c .gradcam.landmark_activation b.jsonl)" ]
  ! cmp -s a/face.png.0.conv4a.happy.map.png b/face.png.0.conv4a.anger.map.png
}

@test "stdin via - and via nothing; bare image paths with --detector none" {
  run sh -c 'echo "{\"crop\":\"face.png\"}" | edan-gradcam -m model.edan --out-dir cams -'
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.gradcam.landmark_activation | length')" -eq 68 ]
  run sh -c 'echo "{\"crop\":\"face.png\"}" | edan-gradcam -m model.edan --out-dir cams'
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.gradcam.landmark_activation | length')" -eq 68 ]
  run sh -c 'ls face.png | edan-gradcam -m model.edan --out-dir cams --detector none'
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .image)" = face.png ]
  [ -f "$(echo "$output" | jq -r .gradcam.overlay)" ]
}

@test "bad records get an error, the stream continues, exit 1" {
  : > empty.png
  cat > in.jsonl <<'EOF'
{"crop":"face.png","n":1}
{"crop":"missing.png","n":2}
{this is not JSON
{"crop":"empty.png","n":4}
{"n":5}
{"crop":"face.png","n":6,"error":"failed upstream"}
{"crop":"face.png","n":7,"label":"contempt"}
{"crop":"face.png","n":8,"label":"happy"}
EOF
  run --separate-stderr edan-gradcam -m model.edan --out-dir cams --class label --batch 3 in.jsonl
  [ "$status" -eq 1 ]
  [ "$(echo "$output" | wc -l)" -eq 8 ]
  [ "$(echo "$output" | jq -c '[.n, has("gradcam"), has("error")]' | tr -d '\n')" = \
    '[1,false,true][2,false,true][null,false,true][4,false,true][5,false,true][6,false,true][7,false,true][8,true,false]' ]
  [[ "$(echo "$output" | sed -n 1p | jq -r .error)" == *'no "label"'* ]]
  [[ "$(echo "$output" | sed -n 2p | jq -r .error)" == *missing.png* ]]
  [ "$(echo "$output" | sed -n 6p | jq -r .error)" = "failed upstream" ]
  [[ "$(echo "$output" | sed -n 7p | jq -r .error)" == *contempt* ]]
}

@test "batch size does not change the activations" {
  for i in 1 2 3; do echo "{\"crop\":\"face.png\",\"face\":$i}"; done > in.jsonl
  edan-gradcam -m model.edan --out-dir c1 --batch 1 in.jsonl > b1.jsonl
  edan-gradcam -m model.edan --out-dir c3 --batch 3 in.jsonl > b3.jsonl
  [ "$(jq -n --slurpfile a b1.jsonl --slurpfile b b3.jsonl \
      '[range(0; 3) as $i | range(0; 68) as $k |
        ($a[$i].gradcam.landmark_activation[$k] - $b[$i].gradcam.landmark_activation[$k]) | fabs] | max < 1e-3')" = true ]
  # Distinct faces, distinct files.
  [ "$(jq -r .gradcam.map b3.jsonl | sort -u | wc -l)" -eq 3 ]
}

@test "maps of one face for other classes or layers get their own files" {
  for l in happy sad; do echo "{\"crop\":\"face.png\",\"label\":\"$l\"}"; done > in.jsonl
  edan-gradcam -m model.edan --out-dir cams --class label in.jsonl > a.jsonl
  edan-gradcam -m model.edan --out-dir cams --class label --layer conv4b in.jsonl >> a.jsonl
  [ "$(jq -r .gradcam.map a.jsonl | tr '\n' ' ')" = \
    "cams/face.png.0.conv4a.happy.map.png cams/face.png.0.conv4a.sad.map.png cams/face.png.0.conv4b.happy.map.png cams/face.png.0.conv4b.sad.map.png " ]
  [ "$(ls cams | wc -l)" -eq 8 ]
}

@test "--mean writes a map per class, the grid and a summary" {
  cp face.png f2.png
  for l in happy happy sad; do echo "{\"crop\":\"face.png\",\"label\":\"$l\"}"; done > in.jsonl
  echo '{"crop":"f2.png","label":"sad"}' >> in.jsonl
  run --separate-stderr edan-gradcam -m model.edan --out-dir cams --mean means --class label in.jsonl
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | wc -l)" -eq 4 ]
  [[ "$stderr" == *"mean maps of 4 of 4 faces in means"* ]]
  file means/happy.png | grep -q '32 x 32, 16-bit grayscale'
  file means/sad.png | grep -q '32 x 32, 16-bit grayscale'
  [ ! -e means/anger.png ]
  # Grid: 7 classes × 256 px rows; a 120 px label column and 3 cells of 256.
  file means/grid.png | grep -q '888 x 1792, 8-bit/color RGB'
  [ "$(jq -c '[.faces, .frontal, .classes.happy.frontal, .classes.sad.frontal, .classes.anger.frontal]' \
      means/means.json)" = '[4,4,2,2,0]' ]
  [ "$(jq '.classes.happy.top_landmarks | length' means/means.json)" -eq 10 ]
  # zero_maps counts the faces whose map is 0 everywhere.
  [ "$(jq -s '[.[] | select(.label == "happy" and .gradcam.max == 0)] | length' <<< "$output")" = \
    "$(jq '.classes.happy.zero_maps' means/means.json)" ]
  # Identical faces: the mean of the class is each face's map.
  [ "$(jq '.classes.happy.closest_distance < 1e-3' means/means.json)" = true ]
}

@test "--frontal-eps keeps only faces near the mean eye corners" {
  echo '{"crop":"face.png","label":"happy"}' > in.jsonl
  run --separate-stderr edan-gradcam -m model.edan --out-dir cams --mean means --class label \
    --frontal-eps 0 in.jsonl
  [ "$status" -eq 0 ]
  # One face is its own mean: distance 0 <= 0.
  [ "$(jq -c '[.faces, .frontal]' means/means.json)" = '[1,1]' ]
  # Two different faces: neither has its eye corners exactly at the mean.
  echo "$PNG2_B64" | base64 -d > face2.png
  echo '{"crop":"face2.png","label":"happy"}' >> in.jsonl
  run --separate-stderr edan-gradcam -m model.edan --out-dir cams --mean m0 --class label \
    --frontal-eps 0 in.jsonl
  [ "$status" -eq 0 ]
  [ "$(jq -c '[.faces, .frontal, .classes.happy.frontal]' m0/means.json)" = '[2,0,0]' ]
  [ ! -e m0/happy.png ]
  [ -f m0/grid.png ]
  run --separate-stderr edan-gradcam -m model.edan --out-dir cams --mean m1 --class label \
    --frontal-eps 1000 in.jsonl
  [ "$(jq -c '[.faces, .frontal, .frontal_eps == 1000]' m1/means.json)" = '[2,2,true]' ]
}

@test "piping into edan-auoverlap gives the per-layer report" {
  for l in happy sad surprise; do echo "{\"crop\":\"face.png\",\"label\":\"$l\"}"; done > in.jsonl
  run --separate-stderr sh -c 'edan-gradcam -m model.edan --out-dir cams --class label in.jsonl | edan-auoverlap'
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r '.scored')" -eq 3 ]
  [ "$(echo "$output" | jq -c '[.layers[].layer]')" = '["conv4a"]' ]
  [ "$(echo "$output" | jq -c '[.layers[0].emotions[] | [.emotion, .n]]')" = '[["happy",1],["sad",1],["surprise",1]]' ]
  run sh -c 'edan-gradcam -m model.edan --out-dir cams --class label --layer conv4b in.jsonl | edan-auoverlap -f markdown'
  [ "$status" -eq 0 ]
  [[ "$output" == *conv4b* ]]
}

@test "a missing model is fatal (exit 3) and named" {
  echo '{"crop":"face.png"}' > in.jsonl
  run edan-gradcam -m nowhere.edan --out-dir cams in.jsonl
  [ "$status" -eq 3 ]
  [[ "$output" == *nowhere.edan* ]]
}

@test "the man page's jq example ranks faces by their mouth-corner activation" {
  echo "$PNG2_B64" | base64 -d > face2.png
  printf '{"crop":"face.png"}\n{"crop":"face2.png"}\n' > crops.jsonl
  run sh -c "edan-gradcam -m model.edan --out-dir cams crops.jsonl |
    jq -r '[.gradcam.landmark_activation[48], .gradcam.overlay] | @tsv' | sort -rn | head"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | wc -l)" -eq 2 ]
  for f in $(echo "$output" | cut -f2); do [ -f "$f" ]; done
  first=$(echo "$output" | head -1 | cut -f1)
  last=$(echo "$output" | tail -1 | cut -f1)
  [ "$(jq -n "$first >= $last")" = true ]
}

@test "the pred it adds is edan-predict's: landmarks mapped through the crop geometry" {
  # The crop is the source image scaled by 2: pred landmarks are in source pixels.
  echo '{"image":"src.png","crop":"face.png","crop_transform":[2,0,0,0],"crop_size":32}' > in.jsonl
  run edan-gradcam -m model.edan --out-dir cams -q in.jsonl
  [ "$status" -eq 0 ]
  got=$(echo "$output" | jq -c '.pred')
  run edan-predict -m model.edan -q in.jsonl
  [ "$status" -eq 0 ]
  want=$(echo "$output" | jq -c '.pred')
  [ "$got" = "$want" ] || { echo "gradcam: $got"; echo "predict: $want"; return 1; }
}
