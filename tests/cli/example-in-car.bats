#!/usr/bin/env bats
# examples/in-car/Makefile end to end on a short scene: the video and its
# truth, tracked records, the annotated video, the alert rule's lines and
# the score that sets them beside the truth.
load helpers

@test "examples/in-car/Makefile: scene, tracked records, annotated frame, alerts, score" {
  require_data ckplus48
  run make -C "$EDAN_SRC/examples/in-car" DATA="$EDAN_DATA" BIN="$EDAN_BIN" \
    SCENE="$EDAN_TESTS_BIN/../bench/bench-incar-scene" OUT="$TMP/o" FACES=2 SECONDS=3 \
    RULE=happy FRAME=20
  echo "$output" | tail -20
  [ "$status" -eq 0 ]
  [ -s o/frame-2.png ]
  [ "$(jq -s 'map(.frame) | unique | length' o/records-2.jsonl)" -eq 45 ]
  # The truth's expected alerts of the rule (passenger 0 happy from 0 s:
  # at 1 s), and an alert line for each alert fired.
  [ "$(jq -c '[.frames_scored, .id_switches, .expected_alerts[0].time, (.alerts | length)]' o/score-2-happy.json)" = \
    "[45,0,1,$(count_lines o/alerts-2-happy.jsonl)]" ]
}
