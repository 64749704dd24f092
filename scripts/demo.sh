#!/usr/bin/env bash
# The recipe, live: a master with -demo N and two slaves on loopback. The
# master puts N numbers, the slaves square them, the master checks every
# result and shows progress, timed from the moment both slaves read the
# task queue; the slaves end by themselves when it is closed and drained.
set -euo pipefail
n=${1:-1000}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A fresh random key for this run, in a file only we can read.
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/authkey"

./bin/master -listen 127.0.0.1:0 -authkey-file "$work/authkey" -addr-file "$work/addr" -demo "$n" -demo-slaves 2 &
master=$!
pids+=("$master")
for _ in $(seq 100); do [ -s "$work/addr" ] && break; kill -0 "$master" || exit 1; sleep 0.05; done
addr=$(cat "$work/addr")
for i in 1 2; do
  ./bin/slave -master "$addr" -authkey-file "$work/authkey" -concurrency 2 -log-level warn &
  pids+=("$!")
done
status=0
wait "$master" || status=$?
for p in "${pids[@]:1}"; do wait "$p" || true; done
exit "$status"
