"""The inspector: an operator's view of a running master, and its commands.

It mirrors the Go package's Inspector (inspector.go): the master's
AdminService (admin.proto) and the operator's part of QueueService (Stats,
Requeue, Close). It is a type apart from Client and Worker, as in Go, so
that a producer's code offers no purge to call by mistake; it borrows a
Client's connection and session, since the master has no roles and whoever
holds the authkey may do all of this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Optional

from ._proto import admin_pb2, admin_pb2_grpc
from ._proto import queue_pb2 as pb
from .client import Client

ADMIN_SERVICE = "/distq.v1.AdminService/"


@dataclass
class Consumer:
    """One connected consumer (a Consume stream: a Worker, a Go slave) as the
    master sees it.

    ``peer`` is its address ("" for one inside the master). ``credit`` is how
    many more deliveries the master may send it now, ``held`` how many items
    are leased to it. ``delivered``, ``acked`` and ``failed`` count since it
    connected (failed: nacked, or its lease ran out). ``connected_at`` is when
    its stream opened, ``last_seen`` when it last sent anything (credit,
    settles), both by the master's clock: a consumer whose last_seen falls
    far behind while it holds items is stuck."""
    queue: str
    peer: str
    credit: int
    held: int
    delivered: int
    acked: int
    failed: int
    connected_at: datetime
    last_seen: datetime


@dataclass
class DeadItem:
    """An item of a dead-letter queue: ``attempts`` is its failed deliveries
    (at least one, unless a consumer dead-lettered it as it came), ``error``
    the error of the last one, ``reply_to`` the item it answered (a reply)."""
    id: int
    attempts: int
    error: str
    payload: bytes
    headers: Dict[str, str] = field(default_factory=dict)
    reply_to: int = 0


class DeadItems(list):
    """A page of dead items (a list of DeadItem), with ``total``: how many
    the queue holds in all, for paging, as the Go Inspector.Dead returns."""

    def __init__(self, items: Iterable[DeadItem] = (), total: int = 0) -> None:
        super().__init__(items)
        self.total = total


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class Inspector:
    """Sees and steers a running master: the state of every queue, the
    connected consumers, the dead items, and an operator's commands
    (requeue, purge, pause, resume, close).

    It works over a Client (``distq.Inspector(distq.connect(...))``) and
    uses its connection and session: no second login, and the client's
    re-login after a master restart and retries while the master cannot be
    reached apply to these calls too. Closing the client ends it; the
    inspector has nothing of its own to close. ``timeout`` bounds each call
    (seconds). Errors are the package's: an unknown queue raises
    UnknownQueue, a closed one Closed. Safe to use from several threads, as
    the Client is.
    """

    def __init__(self, client: Client, *, timeout: Optional[float] = 30.0) -> None:
        self.client = client
        self.timeout = timeout
        self._stub = admin_pb2_grpc.AdminServiceStub(client._channel)

    def __repr__(self) -> str:
        return f"distq.Inspector({self.client.address!r})"

    # -- plumbing ------------------------------------------------------------

    def _admin(self, name: str, req):
        """One unary AdminService call, made as the client makes its own."""
        return self.client._call(self._stub, ADMIN_SERVICE, name, req, self.timeout)

    # -- seeing --------------------------------------------------------------

    def queues(self) -> List[pb.QueueStats]:
        """The gauges and counters of every queue (QueueStats messages, as
        Client.stats returns them), dead-letter queues included ("tasks.dead"
        after "tasks"), with ``paused`` set for the queues an operator paused."""
        return list(self.client._unary("Stats", pb.StatsRequest(queue=""), timeout=self.timeout).queues)

    def consumers(self, queue: str = "") -> List[Consumer]:
        """The consumers of ``queue``, or of every queue when it is "", oldest
        first within a queue."""
        r = self._admin("ListConsumers", admin_pb2.ListConsumersRequest(queue=queue))
        return [Consumer(c.queue, c.peer, c.credit, c.held, c.delivered, c.acked, c.failed,
                         _time(c.connected_ms), _time(c.last_seen_ms)) for c in r.consumers]

    def dead(self, queue: str, limit: int = 100, offset: int = 0) -> DeadItems:
        """Up to ``limit`` dead items of ``queue`` ("tasks", or "tasks.dead"),
        oldest first, skipping ``offset``, with their last error and attempts;
        the list's ``total`` says how many there are. Items dead but leased
        (someone reads the dead-letter queue) are not listed. The master
        takes at most 10,000 a page; limit 0 means 100."""
        r = self._admin("ListDead", admin_pb2.ListDeadRequest(queue=queue, offset=max(offset, 0),
                                                              limit=max(limit, 0)))
        return DeadItems((DeadItem(d.id, d.attempts, d.error, bytes(d.payload), dict(d.headers), d.reply_to)
                          for d in r.items), r.total)

    # -- steering ------------------------------------------------------------

    def requeue(self, queue: str, ids: Iterable[int]) -> int:
        """Move the dead items ``ids`` of ``queue`` ("tasks", not "tasks.dead")
        back into it with their attempts reset, and return how many moved
        (ids that are not dead are skipped). No ids moves nothing: on the
        wire an empty list means every dead item, and an empty list that
        reached here by accident must not do that; requeue_all says so."""
        ids = list(ids)
        if not ids:
            return 0
        return self._requeue(queue, ids)

    def requeue_all(self, queue: str) -> int:
        """Move every dead item of ``queue`` back into it; returns how many."""
        return self._requeue(queue, [])

    def _requeue(self, queue: str, ids: List[int]) -> int:
        return int(self.client._unary("Requeue", pb.RequeueRequest(queue=queue, ids=ids),
                                      timeout=self.timeout).requeued)

    def purge(self, queue: str) -> int:
        """Throw away the ready and delayed items of ``queue`` (leased ones stay
        with their consumers), or on "<name>.dead" its dead items, and return
        how many. They are gone for good: not dead-lettered, and not back
        after a restart. A purge whose answer was lost to a broken connection
        is sent again, and counts only what the second one found."""
        return int(self._admin("Purge", admin_pb2.PurgeRequest(queue=queue)).purged)

    def pause(self, queue: str) -> None:
        """Stop the deliveries of ``queue``: workers and gets wait as on an
        empty queue while puts go on. A durable master stays paused across
        restarts. Pausing a paused queue does nothing."""
        self._admin("Pause", admin_pb2.PauseRequest(queue=queue))

    def resume(self, queue: str) -> None:
        """Undo pause(): the ready items go to the waiting consumers."""
        self._admin("Resume", admin_pb2.ResumeRequest(queue=queue))

    def close_queue(self, queue: str) -> None:
        """Close ``queue`` to puts (they raise Closed); its consumers drain what
        is left and end cleanly. Named apart from a close of the connection,
        which is the Client's."""
        self.client._unary("Close", pb.CloseRequest(queue=queue), timeout=self.timeout)
