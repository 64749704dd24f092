"""distq: a client of a distq master, in the shape of Python's multiprocessing
"distributed processes" recipe.

    import distq
    client = distq.connect(("10.0.0.1", 4000), authkey=b"...")   # or key_file=...
    tasks, results = client.queue("tasks"), client.queue("results")
    tasks.put(distq.encode_int(7))
    print(distq.decode_int(results.get().payload))

A worker is one handler:

    client.worker(lambda t: distq.encode_int(distq.decode_int(t.payload) ** 2),
                  concurrency=4).run()

Payloads are bytes; nothing a peer sends is ever unpickled.
"""
from ._auth import load_key, read_key_file
from .client import Client, Lease, Message, Queue, connect
from .codec import decode_int, decode_json, encode_int, encode_json
from .errors import (AuthFailed, Closed, DistqError, Empty, Full, LeaseLost, MasterUnverified, PermanentFailure,
                     PutForgotten, Replayed, RetryAfter, Unavailable, UnknownQueue, is_permanent)
from .inspector import Consumer, DeadItem, DeadItems, Inspector
from .worker import Task, Worker

__all__ = [
    "connect", "Client", "Queue", "Message", "Lease", "Worker", "Task", "load_key", "read_key_file",
    "Inspector", "Consumer", "DeadItem", "DeadItems",
    "encode_int", "decode_int", "encode_json", "decode_json",
    "DistqError", "Full", "Empty", "Closed", "LeaseLost", "UnknownQueue", "AuthFailed", "MasterUnverified",
    "Unavailable", "Replayed", "PutForgotten", "PermanentFailure", "RetryAfter", "is_permanent",
]
