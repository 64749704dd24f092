#!/usr/bin/env python3
"""The recipe's producer on distq: put N random numbers 1..100 into "tasks",
read N results from "results", check that each is the square of its task
and came back once; exit 0 only if all did.

    producer.py HOST:PORT N [--authkey-file FILE] [--close] [--timeout SECONDS] [--tls-ca FILE ...]

--close closes "tasks" once every result is in, so that the slaves drain
it and end. The key is found as slave.py finds it.
"""
import argparse
import os
import random
import sys

try:
    import distq
except ImportError:  # run from a checkout: use the package next to it
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    import distq

import flags

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    flags.add(ap)
    ap.add_argument("n", type=int)
    ap.add_argument("--close", "-close", action="store_true")
    ap.add_argument("--timeout", "-timeout", type=float, default=60.0,
                    help="give up when no result came for this long (seconds)")
    args = ap.parse_args()
    try:
        client = flags.connect(args)
        tasks, results = client.queue("tasks"), client.queue("results")
        numbers = [random.randint(1, 100) for _ in range(args.n)]
        want = {}
        for i in range(0, len(numbers), 1000):
            chunk = numbers[i:i + 1000]
            for id_, n in zip(tasks.put_many([distq.encode_int(n) for n in chunk]), chunk):
                want[id_] = n
        wrong = duplicate = 0
        seen = set()
        for _ in range(args.n):
            r = results.get(timeout=args.timeout)
            if r.reply_to in seen:
                duplicate += 1
                continue
            seen.add(r.reply_to)
            n = want.get(r.reply_to)
            if n is None or distq.decode_int(r.payload) != n * n:
                wrong += 1
        if args.close:
            tasks.close()
        client.close()
    except distq.Empty:
        print(f"producer: no result for {args.timeout}s", file=sys.stderr)
        return 1
    except (distq.DistqError, ValueError, OSError) as e:
        print(f"producer: {e}", file=sys.stderr)
        return 1
    missing = args.n - len(seen)
    print(f"producer: {args.n} tasks, {len(seen)} results, {wrong} wrong, {duplicate} duplicate, {missing} missing")
    return 0 if wrong == duplicate == missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
