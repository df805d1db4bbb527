#!/usr/bin/env bash
# The README's picture of the report: a real report.html in headless Chromium, top of the page at 1280 px.
#
#   scripts/report_screenshot.sh [REPORT_DIR] [OUT_PNG]     defaults: reports/digits-mlp docs/images/report.png
#
# REPORT_DIR is a sweep's output (`make demo` writes reports/digits-mlp). Needs Debian's chromium
# (apt-get install -y chromium); nothing is fetched: the report is self-contained.
set -euo pipefail
cd "$(dirname "$0")/.."
report="${1:-reports/digits-mlp}/report.html"
out="${2:-docs/images/report.png}"
if [ ! -f "$report" ]; then
  echo "scripts/report_screenshot.sh: $report does not exist; run 'make demo' (or pass a sweep's --out directory)" >&2
  exit 2
fi
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "scripts/report_screenshot.sh: no chromium; install it with 'apt-get install -y chromium'" >&2
  exit 2
fi
mkdir -p "$(dirname "$out")"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$profile" --window-size=1280,1100 \
  --screenshot="$out" "file://$(realpath "$report")" >/dev/null 2>&1
echo "wrote $out from $report"
