#!/usr/bin/env bats
# edan-predict --video / --camera over time: tracks, smoothing, frames
# without a face, frame dropping, the annotated video; and the alert rule
# of examples/in-car (alert.jq) on records written by hand.
load helpers

SCENE="$EDAN_TESTS_BIN/../bench/bench-incar-scene"

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
  "$EDAN_TESTS_BIN/make-model" --size 32 model.edan
}

@test "the in-car scene: every face found, one track per passenger, no id switch" {
  require_data ckplus48
  "$SCENE" make --faces 2 --seconds 5 "$EDAN_DATA/ckplus48" scene.avi truth.json
  run --separate-stderr edan-predict -m "$EDAN_SRC/models/default.edan" --video scene.avi -o rec.jsonl
  [ "$status" -eq 0 ]
  run "$SCENE" score truth.json rec.jsonl
  [ "$status" -eq 0 ]
  # 75 frames, the second passenger hidden for 0.5 s (8 frames).
  [ "$(jq -c '[.frames_scored, .faces, .found, .false_faces, .id_switches, .tracks]' <<< "$output")" = \
    '[75,142,142,0,0,2]' ]
  # Each face record: its frame's face count, a track, raw and smoothed
  # predictions, the rate processed.
  [ "$(jq -s -c 'map(select(.frame == 0)) | map([.faces, .track != null, .pred.label != null,
        .smooth.label != null, .rate >= 0])' rec.jsonl)" = '[[2,true,true,true,true],[2,true,true,true,true]]' ]
}

@test "--empty-frames: a record for each processed frame without a face" {
  "$EDAN_TESTS_BIN/make-video" --frames 6 --fps 10 --size 64 blank.avi
  run edan-predict -m model.edan --video blank.avi --fallback none
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  run edan-predict -m model.edan --video blank.avi --fallback none --empty-frames --every 2
  [ "$status" -eq 0 ]
  [ "$(jq -c '[.frame, .faces, has("pred")]' <<< "$output" | tr -d '\n')" = '[0,0,false][2,0,false][4,0,false]' ]
}

@test "--max-fps drops frames by video time; --realtime never queues them" {
  "$EDAN_TESTS_BIN/make-video" --frames 10 --fps 10 clip.avi
  run edan-predict -m model.edan --detector none --video clip.avi --max-fps 4
  [ "$status" -eq 0 ]
  # 0.25 s slots: frames 0, 3, 5, 8 (times 0, 0.3, 0.5, 0.8) start one each.
  [ "$(jq -c .frame <<< "$output" | tr '\n' ' ')" = '0 3 5 8 ' ]
  "$EDAN_TESTS_BIN/make-video" --frames 40 --fps 100 fast.avi
  run edan-predict -m model.edan --detector none --video fast.avi --realtime
  [ "$status" -eq 0 ]
  # Frames in order, none twice, and the last one read is processed.
  [ "$(jq -s -c 'map(.frame) | . == (unique) and length >= 1 and length <= 40' <<< "$output")" = true ]
  [ "$(tail -1 <<< "$output" | jq .frame)" -eq 39 ]
}

@test "--annotate-video writes the processed frames as a video" {
  "$EDAN_TESTS_BIN/make-video" --frames 6 --fps 10 --size 64 clip.avi
  run edan-predict -m model.edan --detector none --video clip.avi --every 2 --annotate-video out.avi
  [ "$status" -eq 0 ]
  run "$SCENE" frame out.avi 2 last.png
  [ "$status" -eq 0 ]
  [ -s last.png ]
  run "$SCENE" frame out.avi 3 none.png
  [ "$status" -ne 0 ]
  [[ "$output" == *"has no frame 3"* ]]
  run edan-predict -m model.edan --detector none --video clip.avi --annotate-video /no/such/dir/out.avi
  [ "$status" -eq 3 ]
  [[ "$output" == *"/no/such/dir/out.avi"* ]]
}

@test "video options without a video, and bad values, are usage errors" {
  for args in "--empty-frames" "--annotate-video x.avi" "--realtime" "--max-fps 5"; do
    run edan-predict -m model.edan $args < /dev/null
    [ "$status" -eq 2 ]
    [[ "$output" == *"need --video FILE or --camera N"* ]]
  done
  "$EDAN_TESTS_BIN/make-video" --frames 2 clip.avi
  run edan-predict -m model.edan --video clip.avi --max-fps -1
  [ "$status" -eq 2 ]
  run edan-predict -m model.edan --video clip.avi --smooth -0.5
  [ "$status" -eq 2 ]
  [[ "$output" == *"--smooth"* ]]
  run edan-predict -m model.edan --video clip.avi --track-timeout -1
  [ "$status" -eq 2 ]
}

# alert.jq on hand-written records: the rule's timing, per track.
@test "alert.jq fires once per track after P has held for S seconds, and re-arms" {
  rule="$EDAN_SRC/examples/in-car/alert.jq"
  {
    for t in 0 0.5 1 1.5; do echo "{\"track\":1,\"frame\":0,\"time\":$t,\"pred\":{\"probs\":{\"fear\":0.7}}}"; done
    echo '{"track":2,"frame":1,"time":1.5,"pred":{"probs":{"fear":0.9}}}'
    echo '{"video":"v.avi","frame":2,"time":1.6,"faces":0}'
    echo '{"track":1,"frame":3,"time":2,"pred":{"probs":{"fear":0.2}}}'
    for t in 2.5 3 3.5; do echo "{\"track\":1,\"frame\":4,\"time\":$t,\"pred\":{\"probs\":{\"fear\":0.8}}}"; done
    echo '{"track":2,"frame":5,"time":2.4,"pred":{"probs":{"fear":0.95}}}'
  } > rec.jsonl
  run jq -n -c -f "$rule" rec.jsonl
  [ "$status" -eq 0 ]
  [ "$(jq -c '[.track, .time, .since]' <<< "$output" | tr -d '\n')" = '[1,1,0][1,3.5,2.5]' ]
  run jq -n -c -f "$rule" --argjson s 0.5 --argjson p 0.85 rec.jsonl
  [ "$(jq -c '[.alert, .track, .time]' <<< "$output" | tr -d '\n')" = '["fear",2,2.4]' ]
}
