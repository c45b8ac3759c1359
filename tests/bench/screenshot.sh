#!/bin/sh
# screenshot.sh PAGE.html [OUT.png] — the documented browser check of a `graft report --html`
# page: check it is self-contained and well-formed (check_html.py), then render it with headless
# Chromium (Debian: apt-get install chromium) with networking cut off, so a page that needed
# anything from outside would show it missing; look at OUT.png (default: PAGE.png).
#
#   graft report run.json --html report.html && tests/bench/screenshot.sh report.html
set -eu
PAGE=$1
OUT=${2:-${PAGE%.html}.png}
HERE=$(dirname "$0")
python3 "$HERE/check_html.py" "$PAGE"
BROWSER=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$BROWSER" ]; then
    echo "screenshot.sh: no Chromium here (apt-get install chromium)" >&2
    exit 77
fi
ABS=$(cd "$(dirname "$PAGE")" && pwd)/$(basename "$PAGE")
PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT
# --proxy-server to a closed port: any request for a resource fails instead of reaching a network
timeout 120 "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$PROFILE" --proxy-server=127.0.0.1:9 --window-size=1400,2600 \
    --screenshot="$OUT" "file://$ABS" >/dev/null 2>&1
[ -s "$OUT" ] || { echo "screenshot.sh: Chromium wrote no $OUT" >&2; exit 1; }
echo "screenshot.sh: $OUT ($(wc -c <"$OUT") bytes)"
