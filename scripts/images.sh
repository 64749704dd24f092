#!/usr/bin/env bash
# Builds static binaries and the FROM scratch images distq-master,
# distq-slave and distq-producer. No base image is pulled: none is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || {
  echo "images: no Docker engine answers here; install Docker to build the images" >&2
  exit 1
}
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/linux/ ./cmd/master ./cmd/slave ./cmd/producer
# The master image's /data (deploy/master.Dockerfile): an empty directory.
rm -rf bin/linux/data && mkdir bin/linux/data
build() { # name: quiet unless the build fails
  local out
  out=$(docker build -q -f "deploy/$1.Dockerfile" -t "distq-$1:latest" bin/linux 2>&1) || {
    echo "images: building distq-$1 failed:" >&2
    echo "$out" >&2
    exit 1
  }
}
build master
build slave
build producer
# Rebuilding leaves the previous images untagged: remove them.
docker image prune -f >/dev/null 2>&1 || true
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^distq-'
