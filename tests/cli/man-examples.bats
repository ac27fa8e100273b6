#!/usr/bin/env bats
# Every example in the man pages' EXAMPLES sections is run, so that an
# example cannot rot: each edan command of it (man-examples.awk splits the
# pipelines) runs in an empty folder with empty input and must not be a
# usage error (exit 2). Its files are absent, so most end with exit 1 or 3:
# what this checks is the command line (options that exist, values they
# accept, required options given), not the result.
load helpers

@test "the man pages' examples are valid command lines" {
  local failures="" n=0 page cmd
  for page in "$EDAN_SRC"/man/*.[17]; do
    while IFS= read -r cmd; do
      n=$((n + 1))
      mkdir -p "$TMP/run$n" && cd "$TMP/run$n"
      # Loop variables and array indexes of the examples get a value.
      run --separate-stderr timeout 60 env l=conv4a SLURM_ARRAY_TASK_ID=1 \
        bash -c "$cmd" < /dev/null
      if [ "$status" -eq 2 ] || [[ "$stderr" == *"Try 'edan-"* ]]; then
        failures+="$(basename "$page"): $cmd -> exit $status: ${stderr%%$'\n'*}"$'\n'
      fi
    done < <(awk -f "$EDAN_SRC/tests/cli/man-examples.awk" "$page")
  done
  echo "$n commands"
  [ "$n" -ge 40 ]
  [ -z "$failures" ] || { echo "$failures"; return 1; }
}
