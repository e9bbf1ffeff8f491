#!/usr/bin/env bash
# Renders a cache-analytics job summary the way GitHub shows it and screenshots it:
#   tools/preview-summary/preview.sh SUMMARY.md [OUT.png]
# (make SUMMARY.md with `cache-analytics --format markdown ...`). Needs node/npm (the
# first run installs marked and mermaid here) and Chromium (`apt-get install chromium`).
# A check for people changing the Markdown, not part of the test suite.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
md=$(realpath "$1")
out=$(realpath -m "${2:-${md%.md}.png}")
[ -d "$here/node_modules" ] || (cd "$here" && npm install --no-audit --no-fund --silent)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node "$here/render.mjs" "$md" "$tmp/summary.html"
# The flags keep Chromium off the network (a closed network refuses its background
# connections) and out of any profile.
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/profile" --window-size=1100,3000 --virtual-time-budget=5000 \
  --screenshot="$out" "file://$tmp/summary.html" 2>/dev/null
echo "$out"
