#!/usr/bin/env bash
# Builds the web pages' vendored assets: installs the pinned npm packages (package-lock.json),
# copies hls.js into src/golive/web/static/vendor/, where the Python package serves it, and
# copies the players the browser tests and bench/players.py play with (Shaka Player, video.js,
# hls.js), and axe-core for the pages' accessibility checks, into build/players/, which is
# gitignored and never part of the wheel.
# Runs `npm ci` only when node_modules is missing or older than the lock file; where there is
# no npm, first installs Debian's nodejs and npm (scripts/apt-install.sh). NPM names another npm.
set -euo pipefail
cd "$(dirname "$0")/.."
npm=${NPM:-npm}

vendor=src/golive/web/static/vendor
players=build/players
stamp=node_modules/.golive-installed
if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  if ! command -v "$npm" >/dev/null; then
    echo "build-web: npm is missing: installing Debian's nodejs and npm"
    bash scripts/apt-install.sh nodejs npm
    command -v "$npm" >/dev/null || { echo "build-web: npm is still missing (install Node.js 18+ and npm)" >&2; exit 1; }
  fi
  "$npm" ci --no-audit --no-fund --ignore-scripts
  touch "$stamp"
fi
version() { node -p "require('./node_modules/$1/package.json').version"; }

mkdir -p "$vendor"
cp node_modules/hls.js/dist/hls.min.js "$vendor/hls.min.js"
cp node_modules/hls.js/LICENSE "$vendor/hls.js.LICENSE.txt"
echo "build-web: hls.js $(version hls.js) -> $vendor"

mkdir -p "$players"
cp node_modules/hls.js/dist/hls.min.js "$players/hls.min.js"
cp node_modules/shaka-player/dist/shaka-player.compiled.js "$players/shaka-player.compiled.js"
cp node_modules/video.js/dist/video.min.js "$players/video.min.js"
cp node_modules/video.js/dist/video-js.min.css "$players/video-js.min.css"
cp node_modules/axe-core/axe.min.js "$players/axe.min.js"  # the accessibility checks' engine
# The tests check these against what they expect to play with.
cat > "$players/versions.json" <<JSON
{"hls.js": "$(version hls.js)", "shaka-player": "$(version shaka-player)", "video.js": "$(version video.js)", "@videojs/http-streaming": "$(version @videojs/http-streaming)"}
JSON
echo "build-web: players $(tr -d '\n' < "$players/versions.json") -> $players"
