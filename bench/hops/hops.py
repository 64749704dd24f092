#!/usr/bin/env python3
"""hops.py CAPTURE PORT: per-process shares of closed-loop trips.

CAPTURE is `tcpdump -nn -tt -q` output of the packets carrying data to and
from the master's PORT while one task is in flight at a time. The producer's
connection is the one with the most packets into the master; the others are
slaves'. A trip: the producer's first packet in (the put), the master's first
packet out to a slave (the delivery), that slave's first packet in (the ack
with the result), the master's next packet out to the producer (the result).

hops.py --echo CAPTURE PORT RATE: the same for grpc-go's echo server on PORT,
pinged RATE times a second: each message in against the answer out.
"""
import collections
import statistics
import sys


def packets(path, port):
    """(time, 'in' or 'out', the peer's port) per packet of the capture."""
    pk = []
    for line in open(path):
        f = line.split()
        if len(f) < 7:
            continue
        t, src, dst = float(f[0]), f[2], f[4].rstrip(':')
        sp, dp = src.rsplit('.', 1)[1], dst.rsplit('.', 1)[1]
        pk.append((t, 'out', dp) if sp == port else (t, 'in', sp))
    return pk


def report(res):
    for k, v in res.items():
        v.sort()
        q = lambda p: v[min(int(len(v) * p), len(v) - 1)] * 1e6
        print('%-45s n=%6d  p50 %5.0f µs  p90 %5.0f µs  p99 %5.0f µs  mean %5.0f µs'
              % (k, len(v), q(.5), q(.9), q(.99), statistics.mean(v) * 1e6))


def echo(path, port, rate):
    pk = packets(path, port)
    hop = [b[0] - a[0] for a, b in zip(pk, pk[1:]) if a[1] == 'in' and b[1] == 'out']
    report({'grpc-go echo server, %s/s: in -> out' % rate: hop})


def main(path, port):
    pk = packets(path, port)
    count = collections.Counter((d, c) for _, d, c in pk)
    producer = max({c for _, _, c in pk}, key=lambda c: count[('in', c)])
    res = collections.defaultdict(list)
    put = deliv = ack = result = None
    for t, d, c in pk:
        if c == producer and d == 'in':
            if result is not None and put is None:
                res['producer: result in -> its next request out'].append(t - result)
            if put is None:
                put = t
        elif d == 'out' and c != producer:
            if put is not None and deliv is None:
                res['master: put in -> delivery out'].append(t - put)
                deliv = t
        elif d == 'in' and c != producer:
            if deliv is not None and ack is None:
                res['slave: delivery in -> ack out'].append(t - deliv)
                ack = t
        elif c == producer and d == 'out' and ack is not None:
            res['master: ack in -> result out'].append(t - ack)
            res['trip at the master: put in -> result out'].append(t - put)
            result, put, deliv, ack = t, None, None, None
    report(res)


if __name__ == '__main__':
    if sys.argv[1] == '--echo':
        echo(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main(sys.argv[1], sys.argv[2])
