#!/usr/bin/env bash
# make demo: the default model on real photos. The default model and the demo
# pipeline arrive with the model-card work; until then this says so plainly.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -f "$here/models/default.edan" ]; then
  echo "make demo: no default model yet (models/default.edan is not shipped in this version)." >&2
  echo "Train one with edan-train (see man edan-train) and run edan-predict -m MODEL." >&2
  exit 1
fi
echo "make demo: the demo pipeline is not written yet." >&2
exit 1
