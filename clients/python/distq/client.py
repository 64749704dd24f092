"""The client: a connection to a master, and its queues in the recipe's shape."""
from __future__ import annotations

import os
import queue as _stdqueue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple, Union

import grpc

from ._auth import Session, is_replay_error, is_session_error, load_key
from ._proto import queue_pb2 as pb
from ._proto import queue_pb2_grpc
from .errors import (Closed, Empty, Full, LeaseLost, PermanentFailure, RetryAfter, Unavailable,
                     from_rpc_error)

SERVICE = "/distq.v1.QueueService/"
Address = Union[str, Tuple[str, int]]
Payload = Union[bytes, bytearray, memoryview]

# The master's default -max-message-size; a client must take messages that big.
MAX_MESSAGE = 4 << 20


@dataclass
class Message:
    """An item taken from a queue: its payload and what the master says of it.
    ``lease`` names the delivery of an item taken under a lease (0 when it
    was settled as it was taken), ``lease_ms`` is how long the lease lasts."""
    id: int
    payload: bytes
    reply_to: int = 0
    attempt: int = 0
    headers: Dict[str, str] = field(default_factory=dict)
    lease: int = 0
    lease_ms: int = 0


def _target(address: Address) -> str:
    if isinstance(address, tuple):
        host, port = address
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{int(port)}"
    return address


def _ms(seconds: Optional[float]) -> int:
    if seconds is None or seconds <= 0:
        return 0
    return max(1, min(int(seconds * 1000), 0xFFFFFFFF))


def _messages(resp: pb.GetResponse) -> List[Message]:
    out = [Message(d.id, bytes(d.payload), d.reply_to, d.attempt, dict(d.headers), d.lease, d.lease_ms)
           for d in resp.deliveries]
    b = resp.batch
    if b.ids:
        data, off = b.payloads.data, 0
        for i, id_ in enumerate(b.ids):
            n = b.payloads.sizes[i]
            out.append(Message(id_, bytes(data[off:off + n]), b.reply_to[i] if b.reply_to else 0,
                               b.attempts[i] if b.attempts else 0, {}, b.leases[i] if b.leases else 0,
                               b.lease_ms))
            off += n
    return out


def nack_for(id_: int, lease: int, err: Optional[BaseException]) -> pb.Nack:
    """The Nack that settles a failed task as the Go package's Task.Fail does:
    PermanentFailure dead-letters it at once, RetryAfter retries it after its
    delay, anything else after the queue's backoff."""
    if isinstance(err, PermanentFailure):
        return pb.Nack(id=id_, lease=lease, error=str(err) or type(err).__name__, action=pb.NACK_ACTION_DEAD)
    if isinstance(err, RetryAfter):
        return pb.Nack(id=id_, lease=lease, error=str(err), action=pb.NACK_ACTION_RETRY,
                       delay_ms=max(1, min(int(err.delay * 1000), 24 * 3600 * 1000)))
    msg = "task failed" if err is None else f"{type(err).__name__}: {err}"
    return pb.Nack(id=id_, lease=lease, error=msg[:4096], action=pb.NACK_ACTION_RETRY)


class Client:
    """A connection to a master, authenticated with the shared authkey.

    The key is ``authkey`` (bytes), or read from ``key_file`` (its bytes, one
    trailing newline dropped), or found as the Go programs find it
    ($DISTQ_AUTHKEY_FILE, then $DISTQ_AUTHKEY). The constructor logs in,
    waiting up to ``connect_timeout`` seconds for the master to be reachable
    (None: until it is, as the Go slave waits for a master started after
    it); it raises Unavailable when the time runs out. ``retry_for`` bounds
    how long a call keeps trying a master that cannot be reached (seconds).

    TLS as the Go programs' flags: ``tls_ca`` (a PEM file of the CA that
    signed the master's certificate) turns it on; ``tls_cert`` and
    ``tls_key`` add a client certificate for a master that asks for one
    (its -tls-client-ca); ``tls_server_name`` is the name to verify in the
    master's certificate (default: the host of ``address``). Or pass gRPC
    ``credentials`` of your own. Without either the connection is plain text.
    """

    def __init__(self, address: Address, authkey: Optional[bytes] = None, *, key_file: Optional[str] = None,
                 connect_timeout: Optional[float] = 10.0, retry_for: float = 60.0,
                 credentials: Optional[grpc.ChannelCredentials] = None, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 tls_server_name: Optional[str] = None) -> None:
        key = bytes(authkey) if authkey is not None else load_key(key_file)
        self.address = _target(address)
        opts = [("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.keepalive_timeout_ms", 20_000)]
        if tls_ca or tls_cert or tls_key:
            if credentials is not None:
                raise ValueError("distq: pass credentials or the tls_ files, not both")
            if not tls_ca:
                raise ValueError("distq: tls_cert and tls_key need tls_ca")
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
        if tls_server_name:
            opts.append(("grpc.ssl_target_name_override", tls_server_name))
        if credentials is not None:
            self._channel = grpc.secure_channel(self.address, credentials, options=opts)
        else:
            self._channel = grpc.insecure_channel(self.address, options=opts)
        self._stub = queue_pb2_grpc.QueueServiceStub(self._channel)
        self._session = Session(self._channel, key)
        self.retry_for = retry_for
        self.producer_id = os.urandom(16)
        self._seq_lock = threading.Lock()
        self._put_seq: Dict[str, int] = {}
        self._gets: Dict[str, _GetStream] = {}
        self._gets_lock = threading.Lock()
        try:
            self._session.login(timeout=connect_timeout, wait_for_ready=True)
        except BaseException:
            self._channel.close()
            raise

    # -- plumbing ------------------------------------------------------------

    def _relogin(self, generation: int, deadline: Optional[float]) -> None:
        t = None if deadline is None else max(0.1, deadline - time.monotonic())
        self._session.login(timeout=t, if_generation=generation, wait_for_ready=True)

    def _unary(self, name: str, req, timeout: Optional[float] = None, retry: bool = True):
        """One unary QueueService call (see _call)."""
        return self._call(self._stub, SERVICE, name, req, timeout, retry)

    def _call(self, stub, service: str, name: str, req, timeout: Optional[float] = None, retry: bool = True):
        """One unary call of stub's service (its full path prefix, which the
        call's MAC covers), signed; logs in again after a master restart,
        signs again after a replay refusal, and, if ``retry``, retries an
        unreachable master for retry_for seconds.

        Settles pass retry=False, as the Go client's do: UNAVAILABLE can
        come after the master took the call, and an ack sent again after its
        answer was lost would be refused as settled already, and reported as
        a LeaseLost that never happened. Unavailable tells the truth: the
        outcome is unknown, and an ack that did not land lets the lease run
        out and the task run again. Puts retry safely: each carries its
        producer id and sequence, and the master stores it once."""
        path = service + name
        mc = getattr(stub, name)
        retry_end = time.monotonic() + (self.retry_for if retry else 0)
        backoff = 0.05
        while True:
            md, gen = self._session.metadata(path)
            try:
                return mc(req, metadata=md, timeout=timeout)
            except grpc.RpcError as e:
                backoff = self._recover(e, gen, retry_end, backoff)

    def _recover(self, e: grpc.RpcError, gen: Optional[int], retry_end: float, backoff: float) -> float:
        """What a signed call that failed with e does before it is sent again:
        after a master restart it logs in again, after a replay refusal
        nothing (the next send is signed anew), while the master is
        unreachable and retry_end has not passed it waits. Returns the next
        backoff; raises e as a DistqError when no retry helps."""
        if is_session_error(e):
            self._relogin(gen, max(retry_end, time.monotonic() + 10))
            return backoff
        if is_replay_error(e):
            return backoff
        err = from_rpc_error(e)
        if isinstance(err, Unavailable) and time.monotonic() < retry_end:
            time.sleep(backoff * random.uniform(0.5, 1.0))
            return min(backoff * 2, 2.0)
        raise err from None

    def _sign(self, name: str) -> Tuple[List[Tuple[str, str]], int]:
        return self._session.metadata(SERVICE + name)

    # -- public --------------------------------------------------------------

    def queue(self, name: str) -> "Queue":
        """The queue ``name`` (``"tasks"``, ``"results"``, ...)."""
        return Queue(self, name)

    def stats(self, queue: str = "") -> List[pb.QueueStats]:
        """The master's counters of one queue, or of all when queue is ""."""
        return list(self._unary("Stats", pb.StatsRequest(queue=queue), timeout=30).queues)

    def worker(self, handler, **kwargs):
        """A Worker on this client; see distq.Worker for the arguments."""
        from .worker import Worker
        return Worker(self, handler, **kwargs)

    def close(self) -> None:
        """Close the connection; calls in flight end with an error."""
        with self._gets_lock:
            for g in self._gets.values():
                g.reset()
            self._gets.clear()
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _next_put_seq(self, queue: str) -> int:
        with self._seq_lock:
            n = self._put_seq.get(queue, 0) + 1
            self._put_seq[queue] = n
            return n

    def _get_stream(self, queue: str) -> "_GetStream":
        with self._gets_lock:
            g = self._gets.get(queue)
            if g is None:
                g = self._gets[queue] = _GetStream(self)
            return g


def tls_credentials(ca_file: str, cert_file: Optional[str] = None,
                    key_file: Optional[str] = None) -> grpc.ChannelCredentials:
    """Channel credentials from PEM files, as the Go programs' -tls-ca,
    -tls-cert and -tls-key make them: the CA that signed the master's
    certificate, and optionally a client certificate and its key."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("distq: tls_cert and tls_key go together")

    def read(path: Optional[str]) -> Optional[bytes]:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()
    return grpc.ssl_channel_credentials(root_certificates=read(ca_file), private_key=read(key_file),
                                        certificate_chain=read(cert_file))


def connect(address: Address, authkey: Optional[bytes] = None, **kwargs) -> Client:
    """Connect to a master at ``(host, port)`` (or ``"host:port"``) and log in:
    the recipe's ``manager.connect()``. See Client for the arguments."""
    return Client(address, authkey, **kwargs)


class _GetStream:
    """One GetStream call kept open per queue, as the Go client keeps it: each
    get sends one request and reads its one answer."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.call = None
        self.reqs: Optional[_stdqueue.SimpleQueue] = None
        self.gen = 0

    def reset(self) -> None:
        if self.call is not None:
            self.reqs.put(None)
            self.call.cancel()
        self.call = self.reqs = None

    def ask(self, req: pb.GetRequest, timeout: Optional[float]) -> pb.GetResponse:
        if self.call is None:
            self.reqs = _stdqueue.SimpleQueue()
            md, self.gen = self.client._sign("GetStream")
            self.call = self.client._stub.GetStream(iter(self.reqs.get, None), metadata=md, wait_for_ready=True)
        self.reqs.put(pb.GetStreamRequest(get=req))
        try:
            return next(self.call).get
        except StopIteration:
            self.reset()
            raise Unavailable("distq: the master ended the get stream", grpc.StatusCode.UNAVAILABLE) from None
        except BaseException:
            self.reset()
            raise


class Queue:
    """A named queue of the master, with the methods of queue.Queue."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self._held_lock = threading.Lock()
        self._held: List["Lease"] = []  # leases taken by this handle, not settled, oldest first

    def __repr__(self) -> str:
        return f"distq.Queue({self.name!r})"

    # -- put -----------------------------------------------------------------

    def put(self, item: Payload, block: bool = True, timeout: Optional[float] = None) -> int:
        """Put one item and return its id. While a bounded queue is full it
        waits (up to ``timeout`` seconds; for ever when None) unless
        ``block`` is false; then it raises Full. A closed queue raises Closed."""
        return self.put_many([item], block, timeout)[0]

    def put_nowait(self, item: Payload) -> int:
        """put(item, block=False)."""
        return self.put(item, block=False)

    def put_many(self, items: Iterable[Payload], block: bool = True, timeout: Optional[float] = None) -> List[int]:
        """Put items in one batch, in order, and return their ids. A put whose
        answer is lost (a broken connection, a master restart) is sent again
        and stored once (the producer id and sequence of queue.proto). When
        the queue fills up part way, Full is raised with ``ids`` naming the
        items stored."""
        c = self.client
        # Packed (one buffer and the sizes): a message per item would cost
        # more to build than the put takes to send.
        payloads = [bytes(p) for p in items]
        req = pb.PutRequest(queue=self.name, nowait=not block, timeout_ms=_ms(timeout) if block else 0,
                            producer_id=c.producer_id, sequence=c._next_put_seq(self.name))
        req.packed.sizes.extend(len(p) for p in payloads)
        req.packed.data = b"".join(payloads)
        if block and timeout is not None and timeout <= 0:
            req.nowait = True
        deadline = None if timeout is None or not block else time.monotonic() + timeout
        retry_end = time.monotonic() + c.retry_for
        backoff = 0.05
        while True:
            md, gen = c._sign("Put")
            call = c._stub.Put(iter([req]), metadata=md, wait_for_ready=True,
                               timeout=None if deadline is None else max(0.05, deadline - time.monotonic()) + 5)
            ids: List[int] = []
            try:
                for r in call:
                    ids.extend(r.ids)
                return ids
            except grpc.RpcError as e:
                try:
                    backoff = c._recover(e, gen, retry_end, backoff)
                except Full as err:
                    err.ids = ids  # type: ignore[attr-defined]
                    raise

    # -- get -----------------------------------------------------------------

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Message:
        """Take one item, settled as it is taken (queue.Queue.get). Waits up to
        ``timeout`` seconds (for ever when None) unless ``block`` is false;
        raises Empty when nothing came, Closed when the queue is closed and
        drained."""
        return self._take(block, timeout, True)[0]

    def get_nowait(self) -> Message:
        """get(block=False)."""
        return self.get(block=False)

    def lease(self, block: bool = True, timeout: Optional[float] = None) -> "Lease":
        """Take one item under a lease (JoinableQueue.get): it stays the
        master's until it is settled with done(), reply(), fail() or
        release(), or task_done(); if the lease runs out first (the master's
        -lease, ``lease_ms``), or this process dies, the item is delivered
        again. Waits as get() does."""
        msg, incarnation = self._take(block, timeout, False)
        lease = Lease(self, msg, incarnation)
        with self._held_lock:
            self._held.append(lease)
        return lease

    def _take(self, block: bool, timeout: Optional[float], auto_ack: bool) -> Tuple[Message, int]:
        """One item and the incarnation of the master that handed it out."""
        c = self.client
        nowait = not block or (timeout is not None and timeout <= 0)
        deadline = None if nowait or timeout is None else time.monotonic() + timeout
        retry_end = time.monotonic() + c.retry_for
        backoff = 0.05
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Empty("distq: queue empty", None, "")
            req = pb.GetRequest(queue=self.name, max_items=1, nowait=nowait, timeout_ms=_ms(left), auto_ack=auto_ack)
            gs = c._get_stream(self.name)
            gen = None
            try:
                if gs.lock.acquire(blocking=False):
                    try:
                        resp = gs.ask(req, left)
                    finally:
                        gen = gs.gen
                        gs.lock.release()
                else:
                    # Another thread reads this queue on the stream: a unary Get.
                    md, gen = c._sign("Get")
                    resp = c._stub.Get(req, metadata=md, wait_for_ready=True,
                                       timeout=None if left is None else left + 5)
            except grpc.RpcError as e:
                backoff = c._recover(e, gen, retry_end, backoff)
                continue
            except Unavailable:
                if time.monotonic() < retry_end:
                    continue
                raise
            msgs = _messages(resp)
            if msgs:
                return msgs[0], resp.incarnation
            if resp.closed:
                raise Closed("distq: queue closed and drained", None, "QUEUE_CLOSED")
            if nowait or deadline is not None:
                raise Empty("distq: queue empty", None, "")

    # -- the rest of queue.Queue ----------------------------------------------

    def stats(self) -> pb.QueueStats:
        """The master's counters of this queue (ready, leased, delayed, dead, ...)."""
        return self.client.stats(self.name)[0]

    def qsize(self) -> int:
        """Items ready to be taken (items delayed before a retry are not counted)."""
        return int(self.stats().ready)

    def empty(self) -> bool:
        """qsize() == 0."""
        return self.qsize() == 0

    def full(self) -> bool:
        """A bounded queue holds maxsize ready items."""
        s = self.stats()
        return s.maxsize > 0 and s.ready >= s.maxsize

    def task_done(self) -> None:
        """JoinableQueue.task_done: settles (done) the oldest item this handle
        took with lease() and has not settled. Items taken with get() are
        settled as they are taken, so after get() there is nothing left to
        do and it does nothing, as code written for the recipe expects.
        join() waits on the master's own count. Raises LeaseLost if the
        lease ran out before."""
        with self._held_lock:
            oldest = self._held[0] if self._held else None
        if oldest is not None:
            oldest.done()

    def _forget(self, lease: "Lease") -> None:
        with self._held_lock:
            try:
                self._held.remove(lease)
            except ValueError:
                pass

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the queue holds nothing ready, leased or delayed: every
        item put has been acknowledged or dead-lettered (JoinableQueue.join).
        Returns False if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 30.0 if deadline is None else min(30.0, deadline - time.monotonic())
            if left <= 0:
                return False
            r = self.client._unary("Join", pb.JoinRequest(queue=self.name, timeout_ms=_ms(left)), timeout=left + 5)
            if r.done:
                return True

    def close(self) -> None:
        """Refuse further puts; consumers drain what is left and end cleanly
        (no sentinel needed)."""
        self.client._unary("Close", pb.CloseRequest(queue=self.name), timeout=30)

    def dead(self, limit: int = 100, offset: int = 0) -> List[Message]:
        """Dead items of this queue (``<name>.dead``), oldest first; their
        ``headers`` hold nothing of the error, which is in ``error``."""
        r = self.client._unary("Peek", pb.PeekRequest(queue=self.name + ".dead", limit=limit, offset=offset),
                               timeout=30)
        out = []
        for d in r.items:
            m = Message(d.id, bytes(d.payload), d.reply_to, d.attempt, dict(d.headers))
            m.error = d.error  # type: ignore[attr-defined]
            out.append(m)
        return out



class Lease(Message):
    """An item taken with Queue.lease(): the Message's fields, and the calls
    that settle it (each one round trip, answered once the master has it on
    disk when it keeps one). Settle it once. A settle the master refuses,
    because the lease ran out and the item went to another, or the master
    restarted since, raises LeaseLost.

    As a context manager it settles itself: done() when the block ends
    cleanly, fail(exc) when it raises (PermanentFailure dead-letters the
    item, RetryAfter chooses the delay), unless the block settled it::

        with tasks.lease() as t:
            t.reply(square(t.payload))
    """

    # One delivery is one object: compared and hashed by identity, not by
    # the Message's fields.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(self, queue: Queue, msg: Message, incarnation: int) -> None:
        super().__init__(msg.id, msg.payload, msg.reply_to, msg.attempt, msg.headers, msg.lease, msg.lease_ms)
        self.queue = queue
        self.incarnation = incarnation
        self.settled = False

    def __repr__(self) -> str:
        return f"distq.Lease(queue={self.queue.name!r}, id={self.id}, attempt={self.attempt})"

    def done(self) -> None:
        """Acknowledge the item: it is gone from the queue (task_done)."""
        self._ack(pb.Ack(id=self.id, lease=self.lease))

    def reply(self, payload: Payload, queue: str = "results") -> None:
        """Acknowledge the item and, in the same step, put ``payload`` into
        ``queue`` as its reply (reply_to is the item's id): a result is kept
        exactly when its task is settled."""
        self._ack(pb.Ack(id=self.id, lease=self.lease, reply=pb.Item(payload=bytes(payload)), reply_queue=queue))

    def fail(self, error: Optional[BaseException] = None) -> None:
        """Hand the item back as failed with ``error``: retried after the
        queue's backoff, or RetryAfter's delay; dead-lettered at once for a
        PermanentFailure, or once the master's max attempts are used up."""
        self._settle("Nack", pb.NackRequest(queue=self.queue.name, nacks=[nack_for(self.id, self.lease, error)],
                                            incarnation=self.incarnation))

    def release(self) -> None:
        """Hand the item back untouched: ready again at once, the attempt not counted."""
        self._settle("Nack", pb.NackRequest(queue=self.queue.name, incarnation=self.incarnation, nacks=[
            pb.Nack(id=self.id, lease=self.lease, error="released", action=pb.NACK_ACTION_RELEASE)]))

    def extend(self, seconds: Optional[float] = None) -> None:
        """Keep the lease for ``seconds`` from now (None: the master's lease
        time), for work longer than a lease. It does not settle the item."""
        r = self.queue.client._unary("Extend", pb.ExtendRequest(
            queue=self.queue.name, incarnation=self.incarnation,
            extends=[pb.Extend(id=self.id, lease=self.lease, lease_ms=_ms(seconds))]), timeout=30, retry=False)
        _raise_refused(r.refused)

    def _ack(self, ack: pb.Ack) -> None:
        self._settle("Ack", pb.AckRequest(queue=self.queue.name, acks=[ack], incarnation=self.incarnation))

    def _settle(self, method: str, req) -> None:
        if self.settled:
            raise LeaseLost("distq: this lease was settled already", None, "")
        r = self.queue.client._unary(method, req, timeout=30, retry=False)
        self.settled = True
        self.queue._forget(self)
        _raise_refused(r.refused)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.settled:
            return False
        if exc is None:
            self.done()
        elif isinstance(exc, Exception):
            self.fail(exc)
        else:
            self.release()  # KeyboardInterrupt, SystemExit: not the item's fault
        return False


def _raise_refused(refused) -> None:
    if refused:
        raise LeaseLost(f"distq: settle refused: {refused[0].reason}", None, "")
