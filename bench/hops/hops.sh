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
# Then, as the reference for one hop, it runs grpc-go's own echo server
# (`distq-bench grpc-echo`) with `grpc-ping` paced at the trips' rate, one
# message at a time as a closed loop's processes get them, and times the
# server the same way: packet in to packet out.
#
# Usage: bench/hops/hops.sh [BIN [N]]   (needs tcpdump and the right to
# capture on lo; BIN defaults to bin, which `make bench-tool` fills)
set -euo pipefail
BIN=${1:-bin}; N=${2:-3000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 32 /dev/urandom | base64 > "$work/key"

# addr_of FILE: the address a server wrote to FILE once it listens.
addr_of() { while [ ! -s "$1" ]; do sleep 0.05; done; cat "$1"; }

# captured PORT FILE CMD...: runs CMD while tcpdump writes the packets that
# carry data to and from PORT to FILE.
captured() {
	local port=$1 file=$2 td; shift 2
	tcpdump -i lo -nn -tt -q -B 16384 "tcp port $port and (tcp[tcpflags] & tcp-push != 0)" > "$file" 2>/dev/null &
	td=$!
	sleep 1
	"$@"
	sleep 0.3
	kill $td; wait $td 2>/dev/null || true
}

"$BIN/master" -listen 127.0.0.1:0 -addr-file "$work/addr" -authkey-file "$work/key" -log-level error &
addr=$(addr_of "$work/addr"); port=${addr##*:}
for _ in 1 2; do "$BIN/slave" -master "$addr" -authkey-file "$work/key" -log-level error & done
captured "$port" "$work/cap" "$BIN/distq-bench" closed-loop -master "$addr" -authkey-file "$work/key" -n "$N" -slaves 2 > "$work/trips"
tail -1 "$work/trips"
python3 "$(dirname "$0")/hops.py" "$work/cap" "$port"

# The reference: grpc-go's echo server, one message per distq trip.
rate=$(tail -1 "$work/trips" | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["achieved_rate"])')
"$BIN/distq-bench" grpc-echo -addr-file "$work/echo" &
echo_addr=$(addr_of "$work/echo"); echo_port=${echo_addr##*:}
captured "$echo_port" "$work/echocap" "$BIN/distq-bench" grpc-ping -server "$echo_addr" -rate "$rate" -duration "$(( N / rate + 1 ))s" > /dev/null
python3 "$(dirname "$0")/hops.py" --echo "$work/echocap" "$echo_port" "$rate"
