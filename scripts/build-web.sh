#!/usr/bin/env bash
# Builds the web pages' vendored assets: installs the pinned npm packages (package-lock.json)
# and copies hls.js into src/golive/web/static/vendor/, where the Python package serves it.
# Runs `npm ci` only when node_modules is missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

vendor=src/golive/web/static/vendor
stamp=node_modules/.golive-installed
if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  command -v npm >/dev/null || { echo "build-web: npm is missing (install Node.js 18+)" >&2; exit 1; }
  npm ci --no-audit --no-fund --ignore-scripts
  touch "$stamp"
fi
mkdir -p "$vendor"
cp node_modules/hls.js/dist/hls.min.js "$vendor/hls.min.js"
cp node_modules/hls.js/LICENSE "$vendor/hls.js.LICENSE.txt"
echo "build-web: hls.js $(node -p 'require("./node_modules/hls.js/package.json").version') -> $vendor"
