#!/bin/sh
# The requirement lines of one deployable part, from the sections of requirements.txt:
#   infra/requirements.sh functions|render [REQUIREMENTS_FILE]
# functions: "both" + "functions only" (the bundle of infra/bundle.sh);
# render: "both" + "render job only" (the image of infra/Dockerfile). POSIX sh + awk: runs in the build.
set -eu
part=${1:?usage: infra/requirements.sh functions|render [FILE]}
file=${2:-$(dirname "$0")/../requirements.txt}
case "$part" in functions) skip="render job only" ;; render) skip="functions only" ;;
  *) echo "infra/requirements.sh: unknown part '$part' (functions or render)" >&2; exit 2 ;; esac
awk -v skip="$skip" '
  /^# *(both|functions only|render job only)/ { on = (index($0, skip) == 0); next }
  on && !/^[[:space:]]*(#|$)/ { print }' "$file"
