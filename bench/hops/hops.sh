#!/bin/bash
# hops.sh: where one task's round trip spends its time, process by process.
#
# Starts a master and two slaves from BIN on loopback, captures the
# master's port with tcpdump while `distq-bench closed-loop` runs N trips,
# and prints, per trip, the time between a packet arriving at a process and
# the packet it sends on (hops.py): the master from the put to the delivery
# and from the ack to the result, a slave from the delivery to its ack, the
# producer from the result to its next request. Packets are timestamped as
# they cross the loopback device, so each figure is one process's share.
#
# Usage: bench/hops/hops.sh [BIN [N]]   (needs tcpdump and the right to
# capture on lo; BIN defaults to bin, which `make bench-tool` fills)
set -euo pipefail
BIN=${1:-bin}; N=${2:-3000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 32 /dev/urandom | base64 > "$work/key"
"$BIN/master" -listen 127.0.0.1:0 -addr-file "$work/addr" -authkey-file "$work/key" -log-level error &
while [ ! -s "$work/addr" ]; do sleep 0.05; done
addr=$(cat "$work/addr"); port=${addr##*:}
for _ in 1 2; do "$BIN/slave" -master "$addr" -authkey-file "$work/key" -log-level error & done
tcpdump -i lo -nn -tt -q -B 16384 "tcp port $port and (tcp[tcpflags] & tcp-push != 0)" > "$work/cap" 2>/dev/null &
td=$!
sleep 1
"$BIN/distq-bench" closed-loop -master "$addr" -authkey-file "$work/key" -n "$N" -slaves 2 | tail -1
sleep 0.3
kill $td; wait $td 2>/dev/null || true
python3 "$(dirname "$0")/hops.py" "$work/cap" "$port"
