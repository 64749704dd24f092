#!/usr/bin/env bash
# The docker-compose demo cluster, start to end: the master produces
# DISTQ_DEMO_TASKS tasks (default 200,000), three slaves square them, the
# master checks every result; everything exits by itself, then the cluster
# is torn down. The exit status is the master's.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -s deploy/authkey ]; then
  # Readable by the containers' user (nobody); the demo key stays on this host.
  (umask 022; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > deploy/authkey)
fi
trap 'docker-compose down -v --remove-orphans >/dev/null 2>&1 || true' EXIT
docker-compose up --scale slave="${SLAVES:-3}"
master=$(docker-compose ps -q master)
exit "$(docker inspect -f '{{.State.ExitCode}}' "$master")"
