"""The worker: a handler run on a pool of threads, fed by one Consume stream."""
from __future__ import annotations

import logging
import os
import queue as _stdqueue
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import grpc

from ._auth import is_replay_error, is_session_error
from ._proto import queue_pb2 as pb
from .client import Client, nack_for
from .errors import AuthFailed, DistqError, MasterUnverified, from_rpc_error, is_permanent

log = logging.getLogger("distq.worker")


@dataclass
class Task:
    """A task handed to a handler: its payload and what the master says of it."""
    id: int
    lease: int
    payload: bytes
    attempt: int
    headers: Dict[str, str] = field(default_factory=dict)
    lease_ms: int = 0


Reply = Union[bytes, bytearray, memoryview, str, None]
Handler = Callable[[Task], Reply]


class _Held:
    __slots__ = ("task", "renewed", "stream")

    def __init__(self, task: Task, stream: "_Stream") -> None:
        self.task = task
        self.renewed = time.monotonic()
        self.stream = stream


class _Stream:
    """One Consume call: what it holds, and the settles waiting to be sent.

    Acks with a reply travel packed (an AckBatch: ids, leases and the replies
    as one buffer and their sizes), the rest as plain messages. Each request
    grants the credit that keeps ``window()`` deliveries held or on their way,
    as the Go worker does."""

    def __init__(self, first: pb.ConsumeRequest, reply_queue: str, window: Callable[[], int]) -> None:
        self.cond = threading.Condition()
        self.first: Optional[pb.ConsumeRequest] = first
        self.reply_queue = reply_queue
        self.window = window
        self.granted = first.credit  # credit granted in all
        self.received = 0            # deliveries received in all
        self.acks: List[pb.Ack] = []  # acks without a reply
        self.batch_ids: List[int] = []
        self.batch_leases: List[int] = []
        self.replies: List[bytes] = []
        self.nacks: List[pb.Nack] = []
        self.extends: List[pb.Extend] = []
        self.no_credit = False  # stopping: settles grant nothing back
        self.half_close = False
        self.dead = False
        self.held: Dict[Tuple[int, int], _Held] = {}

    def _pending(self) -> bool:
        return bool(self.acks or self.batch_ids or self.nacks or self.extends)

    def requests(self):
        """The request iterator gRPC reads from: every settle that piled up
        while the previous request was being sent goes out in one request."""
        first, self.first = self.first, None
        yield first
        while True:
            with self.cond:
                while not (self._pending() or self.half_close or self.dead):
                    self.cond.wait()
                if self.dead:
                    return
                req = pb.ConsumeRequest(acks=self.acks, nacks=self.nacks, extends=self.extends)
                if self.batch_ids:
                    req.ack_batch.ids.extend(self.batch_ids)
                    req.ack_batch.leases.extend(self.batch_leases)
                    req.ack_batch.reply_queue = self.reply_queue
                    req.ack_batch.replies.sizes.extend(len(r) for r in self.replies)
                    req.ack_batch.replies.data = b"".join(self.replies)
                if not self.no_credit:
                    want = self.window() - (self.granted - self.received) - len(self.held)
                    if want > 0:
                        req.credit = want
                        self.granted += want
                self.acks, self.nacks, self.extends = [], [], []
                self.batch_ids, self.batch_leases, self.replies = [], [], []
                closing = self.half_close
            if req.acks or req.nacks or req.extends or req.credit or req.HasField("ack_batch"):
                yield req
            if closing:
                return

    def received_tasks(self, tasks: List["Task"]) -> None:
        held = {(t.id, t.lease): _Held(t, self) for t in tasks}
        with self.cond:
            self.received += len(tasks)
            self.held.update(held)

    def ack(self, key: Tuple[int, int], reply: Optional[bytes]) -> bool:
        with self.cond:
            if self.dead or self.held.pop(key, None) is None:
                return False  # the stream broke: the master took the task back
            if reply is None:
                self.acks.append(pb.Ack(id=key[0], lease=key[1]))
            else:
                self.batch_ids.append(key[0])
                self.batch_leases.append(key[1])
                self.replies.append(reply)
            self.cond.notify()
            return True

    def settle(self, key: Tuple[int, int], nack: pb.Nack) -> None:
        with self.cond:
            if self.dead or self.held.pop(key, None) is None:
                return  # the stream broke: the master took the task back
            self.nacks.append(nack)
            self.cond.notify()


class Worker:
    """Runs ``handler`` on tasks of ``queue`` with ``concurrency`` threads
    (like Pool(n)), and puts each reply into ``reply_queue`` in the same step
    as the task's ack.

    The handler gets a Task and returns the reply (bytes, or str as UTF-8;
    None acknowledges without a reply). An exception has the task retried
    after the queue's backoff; RetryAfter(d) retries it after d seconds;
    PermanentFailure dead-letters it at once.

    The worker holds ``window()`` tasks at most (``concurrency * prefetch``
    when ``prefetch`` is given, else about 10 ms of work per thread), extends the
    leases of those it holds until their handlers return (unless
    ``auto_extend`` is false), reconnects with backoff and jitter (from
    ``min_backoff`` to ``max_backoff`` seconds) and logs in again after a
    master restart. run() returns when the queue is closed and drained (or,
    with ``keep_running_on_close``, never by itself), and after stop().
    """

    def __init__(self, client: "Client", handler: Handler, *, queue: str = "tasks", reply_queue: str = "results",
                 no_reply: bool = False, concurrency: Optional[int] = None, prefetch: Optional[int] = None,
                 shutdown_timeout: float = 10.0, min_backoff: float = 0.1, max_backoff: float = 10.0,
                 keep_running_on_close: bool = False, auto_extend: bool = True) -> None:
        concurrency = concurrency or os.cpu_count() or 1
        if concurrency < 1 or (prefetch is not None and (prefetch < 1 or concurrency * prefetch > 100_000)):
            raise ValueError("concurrency and prefetch must be at least 1, and their product at most 100000")
        self.client = client
        self.handler = handler
        self.queue = queue
        self.reply_queue = reply_queue
        self.no_reply = no_reply
        self.concurrency = concurrency
        self.prefetch = prefetch
        self._task_seconds = 0.0  # moving average of the handler's time
        self.shutdown_timeout = shutdown_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.keep_running_on_close = keep_running_on_close
        self.auto_extend = auto_extend
        self._work: "_stdqueue.Queue[Optional[Tuple[_Stream, List[Task]]]]" = _stdqueue.Queue()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._stream: Optional[_Stream] = None
        self._call = None
        self._lock = threading.Lock()
        self._running = 0
        self._idle = threading.Condition(self._lock)
        # Counters, for tests and logs.
        self.acked = 0
        self.failed = 0

    def window(self) -> int:
        """How many deliveries the worker wants held or on their way: with
        ``prefetch`` set, concurrency × prefetch; else about 10 ms of work
        per thread (from 1 to 1,024 tasks, 4 until the handler's time is
        known), as the Go worker does, so fast tasks come in batches and
        slow ones are not hoarded."""
        if self.prefetch is not None:
            return self.concurrency * self.prefetch
        per = 4
        if self._task_seconds > 0:
            per = int(min(max(0.010 / self._task_seconds, 1), 1024))
        return min(self.concurrency * per, 100_000)

    def _observe(self, seconds: float, n: int) -> None:
        per = max(seconds / n, 1e-7)
        self._task_seconds = per if self._task_seconds == 0 else self._task_seconds + (per - self._task_seconds) / 8

    # -- life cycle ----------------------------------------------------------

    def run(self) -> None:
        """Work until the queue is closed and drained, or stop() was called.
        Raises AuthFailed, MasterUnverified, UnknownQueue and other errors no
        retry can fix."""
        pool = [threading.Thread(target=self._slot, name=f"distq-slot-{i}", daemon=True)
                for i in range(self.concurrency)]
        for t in pool:
            t.start()
        ext = threading.Thread(target=self._extender, name="distq-extend", daemon=True)
        if self.auto_extend:
            ext.start()
        try:
            self._loop()
        finally:
            self._done.set()
            for _ in pool:
                self._work.put(None)

    def stop(self) -> None:
        """Stop gracefully: take no more tasks, hand back those not started,
        let running ones finish (up to shutdown_timeout), then end. Safe to
        call from a signal handler and more than once."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        threading.Thread(target=self._shutdown, name="distq-shutdown", daemon=True).start()

    def stop_on_signals(self, signals=(signal.SIGINT, signal.SIGTERM)) -> None:
        """Call stop() on SIGINT and SIGTERM (from the main thread; for programs,
        not libraries)."""
        for s in signals:
            signal.signal(s, lambda *_: self.stop())

    # -- the stream ----------------------------------------------------------

    def _loop(self) -> None:
        c = self.client
        backoff = self.min_backoff
        while not self._stopping.is_set():
            st = _Stream(pb.ConsumeRequest(queue=self.queue, credit=self.window(), packed=True),
                         self.reply_queue, self.window)
            md, gen = c._sign("Consume")
            call = c._stub.Consume(st.requests(), metadata=md, wait_for_ready=True)
            with self._lock:
                self._stream, self._call = st, call
            got_any = closed = False
            try:
                for resp in call:
                    got_any = True
                    backoff = self.min_backoff
                    closed = closed or resp.closed
                    self._receive(st, resp)
                # OK, after a closed response: the queue is closed and
                # drained. Without one, the master answered our own
                # half-close (we are stopping) or the stream ended early:
                # open another.
                self._end(st)
                if self._stopping.is_set():
                    return
                if not closed:
                    log.warning("consume stream ended without the queue's closed mark; reconnecting")
                    if self._stopping.wait(self._backoff(backoff)):
                        return
                    continue
                if not self.keep_running_on_close:
                    return
                if self._stopping.wait(self._backoff(backoff)):
                    return
                backoff = min(backoff * 2, self.max_backoff)
                continue
            except grpc.RpcError as e:
                self._end(st)
                if self._stopping.is_set() and e.code() == grpc.StatusCode.CANCELLED:
                    return
                if is_session_error(e):
                    # A master restart: log in again (below, after a backoff
                    # when the master is not back yet) and open a new stream.
                    if self._login(gen):
                        continue
                elif is_replay_error(e):
                    continue
                else:
                    err = from_rpc_error(e)
                    if is_permanent(err) or err.code in (grpc.StatusCode.UNAUTHENTICATED,
                                                         grpc.StatusCode.INVALID_ARGUMENT,
                                                         grpc.StatusCode.PERMISSION_DENIED):
                        raise err from None
                    log.warning("consume stream ended: %s; reconnecting", err)
            if self._stopping.wait(self._backoff(backoff)):
                return
            if not got_any:
                backoff = min(backoff * 2, self.max_backoff)
            # Log in again at once if the master restarted; a wrong key ends here.
            self._login(None)

    def _login(self, generation: Optional[int]) -> bool:
        """Run the handshake (unless another thread did since generation);
        False when the master could not be reached. A refused key raises."""
        try:
            if generation is None:
                self.client._session.login(timeout=self.max_backoff + 5, wait_for_ready=True)
            else:
                self.client._relogin(generation, time.monotonic() + self.max_backoff + 5)
            return True
        except (AuthFailed, MasterUnverified):
            raise
        except DistqError as e:
            log.warning("login failed: %s", e)
            return False

    def _backoff(self, b: float) -> float:
        return random.uniform(b / 2, b)

    def _end(self, st: _Stream) -> None:
        """The stream is over: the master took back what it held."""
        with st.cond:
            st.dead = True
            st.held.clear()
            st.cond.notify_all()
        with self._lock:
            if self._stream is st:
                self._stream = self._call = None

    def _receive(self, st: _Stream, resp: pb.ConsumeResponse) -> None:
        tasks = [Task(d.id, d.lease, bytes(d.payload), d.attempt, dict(d.headers), d.lease_ms)
                 for d in resp.deliveries]
        b = resp.batch
        if b.ids:
            # Copied out of the message once: indexing its repeated fields
            # item by item costs several times more.
            data, sizes, lease_ms = b.payloads.data, list(b.payloads.sizes), b.lease_ms
            off = 0
            for id_, lease, attempt, n in zip(b.ids, b.leases, b.attempts, sizes):
                tasks.append(Task(id_, lease, data[off:off + n], attempt, {}, lease_ms))
                off += n
        for r in resp.refused:
            log.warning("settle refused: id=%d lease=%d: %s", r.id, r.lease, r.reason)
        if not tasks:
            return
        st.received_tasks(tasks)
        if self._stopping.is_set():
            for t in tasks:
                self._release(st, t)  # arrived after stop(): hand it back
            return
        # In about one chunk per thread: a queue hand-off per chunk, not per task.
        size = -(-len(tasks) // self.concurrency)
        for i in range(0, len(tasks), size):
            self._work.put((st, tasks[i:i + size]))

    def _release(self, st: _Stream, t: Task) -> None:
        """Hand a task back untouched: the attempt does not count."""
        st.settle((t.id, t.lease), pb.Nack(id=t.id, lease=t.lease, action=pb.NACK_ACTION_RELEASE,
                                           error="worker stopping"))

    # -- the pool ------------------------------------------------------------

    def _slot(self) -> None:
        while True:
            w = self._work.get()
            if w is None:
                return
            st, chunk = w
            with self._lock:
                self._running += 1
            try:
                start, ran = time.monotonic(), 0
                for t in chunk:
                    with st.cond:
                        if st.dead or (t.id, t.lease) not in st.held:
                            continue
                    if self._stopping.is_set():
                        self._release(st, t)
                        continue
                    self._run_one(st, t)
                    ran += 1
                if ran:
                    self._observe(time.monotonic() - start, ran)
            finally:
                with self._lock:
                    self._running -= 1
                    self._idle.notify_all()

    def _run_one(self, st: _Stream, t: Task) -> None:
        key = (t.id, t.lease)
        try:
            reply = self.handler(t)
        except Exception as e:  # a handler's failure is the task's, not the worker's
            self.failed += 1
            st.settle(key, nack_for(t.id, t.lease, e))
            return
        if isinstance(reply, str):
            reply = reply.encode("utf-8")
        elif reply is not None and not isinstance(reply, (bytes, bytearray, memoryview)):
            self.failed += 1
            st.settle(key, pb.Nack(id=t.id, lease=t.lease, action=pb.NACK_ACTION_DEAD,
                                   error=f"handler returned {type(reply).__name__}, not bytes"))
            return
        if st.ack(key, None if reply is None or self.no_reply else bytes(reply)):
            self.acked += 1

    # -- leases --------------------------------------------------------------

    def _extender(self) -> None:
        """Extend the lease of every held task a quarter of a lease after it
        arrived or was last extended, by this process's clock."""
        while not self._done.wait(0.05):
            with self._lock:
                st = self._stream
            if st is None:
                continue
            now = time.monotonic()
            with st.cond:
                for key, h in st.held.items():
                    ms = h.task.lease_ms
                    if ms and now - h.renewed >= ms / 4000:
                        h.renewed = now
                        st.extends.append(pb.Extend(id=key[0], lease=key[1]))
                if st.extends:
                    st.cond.notify()

    # -- shutdown ------------------------------------------------------------

    def _shutdown(self) -> None:
        with self._lock:
            st, call = self._stream, self._call
        # Hand back what has not started, without counting the attempt.
        while True:
            try:
                w = self._work.get_nowait()
            except _stdqueue.Empty:
                break
            if w is None:
                self._work.put(None)
                break
            st, chunk = w
            for t in chunk:
                self._release(st, t)
        if st is None:
            return
        with st.cond:
            st.no_credit = True
        end = time.monotonic() + self.shutdown_timeout
        with self._lock:
            while self._running and time.monotonic() < end:
                self._idle.wait(end - time.monotonic())
        # Running tasks are settled: send the last settles and half-close the
        # stream; the master then ends it, and takes back anything still held
        # (a delivery that crossed our stop, a handler past shutdown_timeout).
        with st.cond:
            st.half_close = True
            st.cond.notify()
        if call is not None:
            # The settles are sent; give the master a moment to end the stream itself.
            if not self._done.wait(1.0):
                call.cancel()
