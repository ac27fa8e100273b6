#!/usr/bin/env bats
# Contracts every program shares: --help, --version, usage errors, and a man
# page that documents every option --help lists and renders cleanly.
load helpers

programs() {
  for f in "$EDAN_BIN"/edan-*; do
    [ -x "$f" ] && basename "$f"
  done
}

@test "every program has --help (exit 0, usage on stdout) and --version" {
  for p in $(programs); do
    run "$p" --help
    [ "$status" -eq 0 ] || { echo "$p --help: $status"; return 1; }
    [[ "$output" == "Usage: $p "* ]] || { echo "$p: no usage line"; return 1; }
    run "$p" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "$p (edan) "* ]] || { echo "$p --version: $output"; return 1; }
  done
}

@test "a bad flag is a usage error: exit 2, one line and a hint on stderr" {
  for p in $(programs); do
    run --separate-stderr "$p" --no-such-flag
    [ "$status" -eq 2 ] || { echo "$p: status $status"; return 1; }
    [ -z "$output" ]
    [[ "$stderr" == *"Try '$p --help'"* ]] || { echo "$p: $stderr"; return 1; }
  done
}

@test "every program has a man page that lists each option of --help" {
  for p in $(programs); do
    page="$EDAN_SRC/man/$p.1"
    [ -f "$page" ] || { echo "missing $page"; return 1; }
    for opt in $("$p" --help | grep -oE '^  (-[A-Za-z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+'); do
      # roff escapes dashes: accept --opt written as \-\-opt.
      esc=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
      grep -qE -- "(${opt}|${esc})" "$page" || { echo "$p: $opt not in $page"; return 1; }
    done
  done
}

@test "man pages render without warnings" {
  command -v man >/dev/null || skip "man not installed"
  for page in "$EDAN_SRC"/man/*.[17]; do
    run bash -c "MANWIDTH=80 man --warnings -l '$page' 2>&1 >/dev/null"
    [ -z "$output" ] || { echo "$page: $output"; return 1; }
  done
}
