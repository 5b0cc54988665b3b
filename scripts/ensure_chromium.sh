#!/bin/sh
# Makes sure headless Chromium is at /usr/bin/chromium for the browser tests
# (CONTRACT section 1). Quick and silent when it is already there; otherwise installs
# the distribution's package with apt, which needs root and a package mirror.
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

echo "ensure_chromium: $CHROMIUM is missing, installing it with apt-get"
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_chromium: FAILED: installing chromium needs root (run: sudo apt-get install -y chromium)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update && apt-get install -y chromium; }; then
    echo "ensure_chromium: FAILED: apt-get could not install chromium (no network or no package mirror?)" >&2
    exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
    echo "ensure_chromium: FAILED: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
