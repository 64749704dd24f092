"""The seed's "distributed processes" recipe, written afresh for benchmarking.

A BaseManager master registers a task queue and a result queue on
(host, port) with an authkey; slave processes connect with the same key,
get() numbers, square them and put() the results back. As in the recipe,
every get and put is one round trip through the manager. The only changes
are the ones a benchmark needs: no print per task, no sleep, a sentinel to
stop the slaves, and a timer from the first put to the last result.

    python3 recipe.py --tasks 20000 --slaves 2

prints one JSON line: {"tasks": N, "slaves": K, "seconds": s, "tasks_per_s": r}.
"""

import argparse
import json
import multiprocessing
import queue
import random
import sys
import time
from multiprocessing.managers import BaseManager

AUTHKEY = b"distq-bench"

task_queue = queue.Queue()
result_queue = queue.Queue()


def get_task_queue():
    return task_queue


def get_result_queue():
    return result_queue


class MasterManager(BaseManager):
    pass


MasterManager.register("get_task_queue", callable=get_task_queue)
MasterManager.register("get_result_queue", callable=get_result_queue)


class SlaveManager(BaseManager):
    pass


SlaveManager.register("get_task_queue")
SlaveManager.register("get_result_queue")


def slave(address, ready):
    m = SlaveManager(address=address, authkey=AUTHKEY)
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    ready.set()
    while True:
        n = task.get()
        if n is None:
            return
        result.put(n * n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--slaves", type=int, default=1)
    args = ap.parse_args()

    manager = MasterManager(address=("127.0.0.1", 0), authkey=AUTHKEY)
    manager.start()
    task = manager.get_task_queue()
    result = manager.get_result_queue()

    procs = []
    for _ in range(args.slaves):
        ready = multiprocessing.Event()
        p = multiprocessing.Process(target=slave, args=(manager.address, ready))
        p.start()
        ready.wait()
        procs.append(p)

    numbers = [random.randint(1, 100) for _ in range(args.tasks)]
    start = time.perf_counter()
    for n in numbers:
        task.put(n)
    wrong = 0
    want = sorted(n * n for n in numbers)
    got = []
    for _ in range(args.tasks):
        got.append(result.get())
    elapsed = time.perf_counter() - start
    if sorted(got) != want:
        wrong = 1

    for _ in procs:
        task.put(None)
    for p in procs:
        p.join()
    manager.shutdown()
    out = {"tasks": args.tasks, "slaves": args.slaves, "seconds": elapsed,
           "tasks_per_s": args.tasks / elapsed, "wrong": wrong}
    print(json.dumps(out))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
