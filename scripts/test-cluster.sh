#!/usr/bin/env bash
# The fault tests of the docker-compose cluster (tests/cluster). Needs a
# Docker engine and docker-compose; says so and fails without them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "test-cluster: no Docker engine answers on this machine; the cluster tests need one" >&2
  exit 1
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "test-cluster: docker-compose is not installed (Debian: apt-get install docker-compose)" >&2
  exit 1
fi
./scripts/images.sh
go build -o bin/ ./cmd/slave   # the slave that joins from the host
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
go test -tags cluster -count=1 -timeout 10m -v ./tests/cluster/ >"$log" 2>&1
code=$?
set -e
if [ "$code" -ne 0 ]; then
  cat "$log"
else
  grep -E '^(=== RUN|--- |PASS|FAIL|ok)|: checked ' "$log" || true
fi
docker image prune -f >/dev/null 2>&1 || true
exit "$code"
