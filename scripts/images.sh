#!/usr/bin/env bash
# Builds static binaries and the FROM scratch images distq-master and
# distq-slave. No base image is pulled: none is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || {
  echo "images: no Docker engine answers here; install Docker to build the images" >&2
  exit 1
}
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/linux/ ./cmd/master ./cmd/slave
docker build -q -f deploy/master.Dockerfile -t distq-master:latest bin/linux >/dev/null 2>&1
docker build -q -f deploy/slave.Dockerfile -t distq-slave:latest bin/linux >/dev/null 2>&1
# Rebuilding leaves the previous images untagged: remove them.
docker image prune -f >/dev/null 2>&1 || true
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^distq-'
