#!/usr/bin/env bash
# Build the Cloud Functions (gen2) source bundle: what `gcloud functions deploy --source` and
# Terraform's google_cloudfunctions2_function upload.
#   infra/bundle.sh DEST          fill folder DEST (created; emptied first) and print its path
#   infra/bundle.sh --zip FILE    the same as a zip archive (Terraform uploads it to a bucket)
# Contents: main.py (functions/main.py at the root, as the Python runtime requires), shared/ and
# requirements.txt with the functions' requirements only (infra/requirements.sh functions).
# Each entry point then starts with: functions-framework --target NAME --source main.py
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ZIP=
if [[ "${1:-}" == "--zip" ]]; then ZIP=${2:?usage: infra/bundle.sh --zip FILE}; DEST=$(mktemp -d); else
  DEST=${1:?usage: infra/bundle.sh DEST | --zip FILE}; fi
mkdir -p "$DEST"
# only ever empty a folder this script made (it leaves a marker): never a random non-empty one
if [[ -n "$(ls -A "$DEST")" && ! -f "$DEST/.sceneflow-bundle" ]]; then
  echo "infra/bundle.sh: $DEST is not empty and not a bundle; refusing to empty it" >&2; exit 2; fi
find "$DEST" -mindepth 1 -delete
touch "$DEST/.sceneflow-bundle"
cp "$ROOT/functions/main.py" "$DEST/main.py"
cp -R "$ROOT/shared" "$DEST/shared"
find "$DEST" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
# the functions' sections of requirements.txt (not the render job's PyAV, pysubs2, Pillow, imageio-ffmpeg)
sh "$ROOT/infra/requirements.sh" functions "$ROOT/requirements.txt" > "$DEST/requirements.txt"
printf '%s\n' '__pycache__/' '*.pyc' .sceneflow-bundle > "$DEST/.gcloudignore"
if [[ -n "$ZIP" ]]; then
  mkdir -p "$(dirname "$ZIP")"
  ZIP_ABS="$(cd "$(dirname "$ZIP")" && pwd)/$(basename "$ZIP")"
  rm -f "$ZIP_ABS"
  # fixed timestamps: the same tree gives the same archive (Terraform re-deploys only on change)
  (cd "$DEST" && rm -f .sceneflow-bundle && python3 -c 'import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, fs in sorted(os.walk(".")):
        for f in sorted(fs):
            p = os.path.join(d, f)
            info = zipfile.ZipInfo(p[2:], (2000, 1, 1, 0, 0, 0)); info.external_attr = 0o644 << 16
            z.writestr(info, open(p, "rb").read(), zipfile.ZIP_DEFLATED)' "$ZIP_ABS")
  rm -rf "$DEST"
  echo "$ZIP_ABS"
else
  echo "$DEST"
fi
