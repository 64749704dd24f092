#!/usr/bin/env bash
# Builds static binaries and the FROM scratch images distq-master,
# distq-slave and distq-producer, and distq-prometheus from Debian's
# prometheus when it is installed. No base image is pulled: none is needed.
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
# distq-prometheus (the compose profile "metrics"): Debian's prometheus, the
# libraries it links, its web assets and deploy/prometheus.yml.
if command -v prometheus >/dev/null 2>&1; then
  ctx=bin/prometheus-image # apart from bin/linux, the other images' context
  rm -rf "$ctx" && mkdir -p "$ctx/root/usr/bin" "$ctx/root/etc/prometheus" "$ctx/data"
  bin=$(command -v prometheus)
  cp "$bin" "$ctx/root/usr/bin/prometheus"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$ctx/root$(dirname "$lib")" && cp -L "$lib" "$ctx/root$lib"
  done
  [ -d /usr/share/prometheus ] && mkdir -p "$ctx/root/usr/share" && cp -r /usr/share/prometheus "$ctx/root/usr/share/"
  cp deploy/prometheus.yml "$ctx/root/etc/prometheus/prometheus.yml"
  out=$(docker build -q -f deploy/prometheus.Dockerfile -t distq-prometheus:latest "$ctx" 2>&1) || {
    echo "images: building distq-prometheus failed:" >&2
    echo "$out" >&2
    exit 1
  }
else
  echo "images: prometheus is not installed (Debian: apt-get install prometheus): distq-prometheus, for the compose profile \"metrics\", was not built"
fi
# Rebuilding leaves the previous images untagged: remove them.
docker image prune -f >/dev/null 2>&1 || true
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^distq-'
