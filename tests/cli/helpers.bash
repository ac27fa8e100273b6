bats_require_minimum_version 1.5.0
# Shared setup for the BATS suites. EDAN_BIN is set by `make cli`.
: "${EDAN_BIN:=$BATS_TEST_DIRNAME/../../build/bin}"
EDAN_SRC="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
EDAN_DATA="${EDAN_DATA:-$EDAN_SRC/../shared/data}"
export PATH="$EDAN_BIN:$PATH"

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
}

# Skips the test when the shared datasets are absent.
require_data() {
  [ -d "$EDAN_DATA/$1" ] || skip "shared data $1 not found at $EDAN_DATA"
}

# Counts lines of a file or stdin.
count_lines() { wc -l < "${1:-/dev/stdin}" | tr -d ' '; }
: "${EDAN_TESTS_BIN:=$BATS_TEST_DIRNAME/../../build/tests}"   # test fixtures (e.g. make-model)

# Symlinks the first N 300-W faces of a shared-data folder (each .jpg and
# its .pts) into DEST, created if needed: the images stay in the shared data.
#   link_300w 300w-subset/afw 8 train
link_300w() {
  local src="$EDAN_DATA/$1" n=$2 dest=$3 f
  mkdir -p "$dest"
  for f in $(ls "$src/"*.jpg | head -"$n"); do
    ln -s "$f" "$dest/"; ln -s "${f%.jpg}.pts" "$dest/"
  done
}

# True when stderr ($1) holds nothing but the one-line summary a program
# prints when records were written with an error (no library's own noise).
only_summary() {
  [ -z "$(grep -v ' written with an error (' <<< "$1" | grep -v '^$')" ]
}
