#!/usr/bin/env bash
# Render a mechcheck report in headless Chromium (Debian package `chromium`) and save a PNG.
# usage: scripts/screenshot_report.sh reports/latest/index.html out.png [WIDTHxHEIGHT]
# The flags keep Chromium off the network (the page is self-contained; nothing should load).
set -euo pipefail
page=$(realpath "$1"); out=$(realpath -m "$2"); size=${3:-1400,2200}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size="$size" --screenshot="$out" "file://$page" 2>/dev/null
test -s "$out"
