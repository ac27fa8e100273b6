# An alert rule over edan-predict's video records: one line when a track's
# EMOTION probability has stayed above P for S seconds (video time), then
# quiet for that track until the probability falls below P again.
#
#   edan-predict --camera 0 | jq -n -c --unbuffered -f alert.jq
#   ... | jq -n -c --unbuffered -f alert.jq --arg emotion surprise --argjson p 0.6 --argjson s 1
#
# Parameters (all optional): emotion (default "fear"), p (0.6), s (1, in
# seconds), field ("pred": each frame's own probabilities, or "smooth": the
# track's smoothed ones). Records without a "track" (errors, "faces": 0)
# pass without effect. Out: {"alert", "track", "time", "frame", "since",
# "p"} plus "video" or "camera" as the record had it.
($ARGS.named.emotion // "fear") as $emotion
| ($ARGS.named.p // 0.6) as $p
| ($ARGS.named.s // 1) as $s
| ($ARGS.named.field // "pred") as $field
| foreach (inputs | select(.track != null)) as $r ({};
    ($r.track | tostring) as $t
    | ($r[$field].probs[$emotion] // 0) as $v
    | if $v > $p then
        (if .[$t].since == null then .[$t] = {since: $r.time, fired: false} else . end)
        | .[$t].emit = (($r.time - .[$t].since) >= $s and (.[$t].fired | not))
        | if .[$t].emit then .[$t].fired = true else . end
      else .[$t] = {since: null, fired: false, emit: false} end;
    ($r.track | tostring) as $t
    | select(.[$t].emit)
    | {alert: $emotion, track: $r.track, time: $r.time, frame: $r.frame,
       since: .[$t].since, p: ($r[$field].probs[$emotion] // 0)}
      + ($r | with_entries(select(.key == "video" or .key == "camera"))))
