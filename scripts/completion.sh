#!/usr/bin/env bash
# Writes the bash completion of one edan program to stdout, generated from
# its --help, which edan::cli::Tool builds from the option declarations: so
# the completion lists exactly the options the program accepts.
#   scripts/completion.sh build/bin/edan-predict [OUTPUT]   (default: stdout)
# An option whose value is a file (metavar FILE or MODEL) completes file
# names, one whose value is a folder (DIR) folder names; other values are
# left to the user. Arguments complete file names.
set -euo pipefail
prog=${1:?usage: completion.sh PROGRAM}
name=$(basename "$prog")
help=$("$prog" --help)
out=${2:-}
[ -z "$out" ] || exec > "$out.tmp"

words=() files=() dirs=() values=()
# Option lines: "  -o, --output FILE   help" or "  --flag   help".
while IFS= read -r line; do
  spec=$(sed -E 's/^  ((-[A-Za-z0-9], )?--[a-z0-9-]+( [A-Z][A-Z0-9/_|]*)?).*/\1/' <<< "$line")
  metavar=$(grep -oE ' [A-Z][A-Z0-9/_|]*$' <<< "$spec" | tr -d ' ' || true)
  names=$(grep -oE -- '-{1,2}[A-Za-z0-9][a-z0-9-]*' <<< "${spec% "$metavar"}" | tr '\n' ' ')
  for n in $names; do
    words+=("$n")
    case $metavar in
      "") ;;
      FILE | MODEL) files+=("$n") ;;
      DIR) dirs+=("$n") ;;
      *) values+=("$n") ;;
    esac
  done
done < <(grep -E '^  (-[A-Za-z0-9], )?--[a-z0-9-]+' <<< "$help")

fn="_${name//-/_}"
join() { local IFS='|'; echo "$*"; }
cat <<EOF
# bash completion for $name (edan), generated from '$name --help' by
# scripts/completion.sh; do not edit.
$fn() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  case \$prev in
EOF
[ ${#files[@]} -gt 0 ] && echo "    $(join "${files[@]}")) COMPREPLY=(\$(compgen -f -- \"\$cur\")); return ;;"
[ ${#dirs[@]} -gt 0 ] && echo "    $(join "${dirs[@]}")) COMPREPLY=(\$(compgen -d -- \"\$cur\")); return ;;"
[ ${#values[@]} -gt 0 ] && echo "    $(join "${values[@]}")) COMPREPLY=(); return ;;"
cat <<EOF
  esac
  if [[ \$cur == -* ]]; then
    COMPREPLY=(\$(compgen -W "${words[*]}" -- "\$cur"))
  else
    COMPREPLY=(\$(compgen -f -- "\$cur"))
  fi
}
complete -o filenames -F $fn $name
EOF
[ -z "$out" ] || mv "$out.tmp" "$out"
