#!/usr/bin/env python3
"""The recipe's slave on distq: square the numbers of "tasks" into "results"
until the queue is closed and drained.

    slave.py HOST:PORT [--authkey-file FILE] [--concurrency N] [--delay SECONDS]
             [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]

The key comes from --authkey-file, else $DISTQ_AUTHKEY_FILE, else
$DISTQ_AUTHKEY, as for the Go slave. Payloads are ASCII decimal numbers.
"""
import argparse
import os
import sys
import time

try:
    import distq
except ImportError:  # run from a checkout: use the package next to it
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    import distq

import flags

DELAY = 0.0


def square(task: distq.Task) -> bytes:
    n = distq.decode_int(task.payload)  # ValueError: retried, then dead-lettered with its error
    if DELAY:
        time.sleep(DELAY)  # simulated work, like the recipe's time.sleep
    return distq.encode_int(n * n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    flags.add(ap)
    ap.add_argument("--concurrency", "-concurrency", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--delay", "-delay", type=float, default=0.0, help="simulated work per task (seconds)")
    args = ap.parse_args()
    global DELAY
    DELAY = args.delay
    try:
        # Waits for a master that is not up yet, as the Go slave does.
        print(f"slave: connecting to {args.master}", file=sys.stderr, flush=True)
        client = flags.connect(args, connect_timeout=None)
        worker = client.worker(square, concurrency=args.concurrency)
        worker.stop_on_signals()
        worker.run()
    except (distq.DistqError, ValueError, OSError) as e:
        print(f"slave: {e}", file=sys.stderr)
        return 1
    print(f"slave: done, {worker.acked} tasks squared, {worker.failed} failed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
