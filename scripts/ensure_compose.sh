#!/bin/sh
# Makes sure a docker compose CLI exists for tests/test_compose.py, which validates
# docker-compose.yml with `docker compose config` (or `docker-compose config`). Quick and
# silent when one is there; otherwise installs Debian's `docker-compose` package with apt
# (it needs no Docker engine to check a file), which needs root and a package mirror.
set -u

if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    exit 0
fi

echo "ensure_compose: no docker compose CLI, installing Debian's docker-compose with apt-get"
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_compose: FAILED: installing docker-compose needs root (run: sudo apt-get install -y docker-compose)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update && apt-get install -y --no-install-recommends docker-compose; }; then
    echo "ensure_compose: FAILED: apt-get could not install docker-compose (no network or no package mirror?)" >&2
    exit 1
fi
if ! command -v docker-compose >/dev/null 2>&1; then
    echo "ensure_compose: FAILED: apt-get finished but docker-compose is still missing" >&2
    exit 1
fi
echo "ensure_compose: installed $(docker-compose version --short 2>/dev/null || echo docker-compose)"
