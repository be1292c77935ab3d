#!/usr/bin/env bash
# Installs the system packages golive's tests and benchmarks use (Debian/Ubuntu).
# Idempotent: does nothing when every package is already present.
set -euo pipefail

packages=(
  ffmpeg                      # ffprobe for tests, and a second ffmpeg build
  gstreamer1.0-tools          # gst-launch-1.0: an independent RTMP publisher and HLS client
  gstreamer1.0-plugins-base   # playbin3, decodebin3
  gstreamer1.0-plugins-good   # hlsdemux2 (adaptivedemux2), souphttpsrc, qtdemux
  gstreamer1.0-plugins-bad    # rtmp2sink; srtsink and mpegtsmux (an SRT publisher)
  gstreamer1.0-plugins-ugly   # x264enc
  gstreamer1.0-libav          # avenc_aac; avdec_h264 for the HLS client
  vlc-bin vlc-plugin-base     # cvlc: a third HLS client (VLC's own adaptive demuxer)
  nginx-light                 # edge cache in tests
  varnish                     # the other edge cache in tests (deploy/varnish)
  libnginx-mod-rtmp           # the peer in bench/ingest.py
  postgresql                  # the store on PostgreSQL in tests (tests/pgserver.py; version 15)
  chromium                    # the browser the Playwright tests drive (tests/web)
  fonts-dejavu-core           # so pages render text in headless Chromium
  srt-tools                   # srt-live-transmit: the reference libsrt caller in SRT tests
  prometheus                  # prometheus + promtool: scrape and rule checks in tests/health
  redis-server                # the bus between nodes in tests/cluster (GOLIVE_REDIS_URL)
  caddy                       # deploy/caddy/Caddyfile in tests/httpserver/test_caddy_proxy.py
)

# Node.js and npm build the web pages' vendored players (scripts/build-web.sh). Debian's,
# only where there is no npm at all: a machine's own Node.js (NodeSource's, say) is kept.
if ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

exec bash "$(dirname "$0")/apt-install.sh" "${packages[@]}"
