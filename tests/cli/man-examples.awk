# Prints each edan command of a man page's EXAMPLES section, one per line,
# ready to run: roff escapes undone, continued lines joined, pipelines and
# loops split into their commands, redirections dropped (the test supplies
# stdin and discards stdout). Used by man-examples.bats.
#   awk -f man-examples.awk man/edan-predict.1
/^\.SH/ { examples = ($2 == "EXAMPLES"); next }
!examples { next }
/^\.(nf|RS|EX)/ { block = 1; next }
/^\.(fi|RE|EE)/ { block = 0; flush(); next }
!block || /^#/ { next }
{
  line = $0
  gsub(/\\-/, "-", line); gsub(/\\\(aq/, "'", line); gsub(/\\\(dq/, "\"", line)
  gsub(/\\e/, "\\", line)
  if (line ~ /\\$/) { sub(/\\$/, "", line); text = text line " "; next }
  text = text line
  if (line ~ /\|[ \t]*$/) { text = text " "; next }
  flush()
}
END { flush() }
function flush(   n, parts, i, seg, at) {
  if (text == "") return
  # Commands of a pipeline, a list or a loop.
  gsub(/(\|\||&&|;|\$\()/, "|", text)
  gsub(/\)/, " ", text)
  n = split(text, parts, "|")
  for (i = 1; i <= n; i++) {
    seg = parts[i]
    at = match(seg, /(^|[ \t])edan-[a-z]+/)
    if (!at) continue
    seg = substr(seg, at)
    # Redirections and their targets; xargs/parallel placeholders.
    gsub(/[ \t][0-9]?(>>|>|<)[ \t]*[^ \t]+/, "", seg)
    gsub(/\{\}/, "1", seg)
    gsub(/:::.*/, "", seg)
    sub(/^[ \t]+/, "", seg); sub(/[ \t]+$/, "", seg)
    print seg
  }
  text = ""
}
