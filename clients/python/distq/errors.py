"""Exceptions that mirror the Go package's errors (errors.go).

``Full`` and ``Empty`` are also the standard library's ``queue.Full`` and
``queue.Empty``, so code written for the recipe's queues catches them
unchanged.
"""
from __future__ import annotations

import queue as _stdqueue
from typing import Optional

import grpc


class DistqError(Exception):
    """An error from the master or the client; ``code`` is the gRPC status
    code (or None), ``reason`` the master's machine-readable reason
    (``"QUEUE_FULL"``, ``"NO_SPACE"``, ...; admin.proto lists them) or ""."""

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


class Full(DistqError, _stdqueue.Full):
    """The queue is bounded and full, and the put could not wait longer."""


class Empty(DistqError, _stdqueue.Empty):
    """Nothing arrived in time."""


class Closed(DistqError):
    """The queue is closed; from a get: closed and drained, nothing more will come."""


class UnknownQueue(DistqError):
    """The master hosts no queue of that name."""


class AuthFailed(DistqError):
    """The master refused the authkey (a wrong key)."""


class MasterUnverified(AuthFailed):
    """The peer could not prove it holds the authkey; nothing was sent to it.
    With the master's proof checked first, this is what a wrong key on the
    client's side raises; it is an AuthFailed, so one except catches both."""


class LeaseLost(DistqError):
    """A settle or extend of a leased item was refused: the lease ran out
    and the item went to another delivery, it was settled already, or the
    master restarted since it was leased. The settle did nothing."""


class Unavailable(DistqError):
    """The master cannot be reached or is shutting down."""


class Replayed(DistqError):
    """A call was refused as a replay; the client signs it again by itself."""


class PutForgotten(DistqError):
    """A put sent again after its answer was lost came too late to be matched."""


class PermanentFailure(Exception):
    """Raise it from a handler to dead-letter the task at once (no retry)."""


class RetryAfter(Exception):
    """Raise it from a handler to have the task retried after ``delay`` seconds."""

    def __init__(self, delay: float, message: str = "") -> None:
        super().__init__(message or f"retry after {delay}s")
        self.delay = delay


def is_permanent(err: BaseException) -> bool:
    """True when retrying cannot help: a wrong key, an unverified master, an unknown queue."""
    return isinstance(err, (AuthFailed, MasterUnverified, UnknownQueue))


_BY_REASON = {
    "QUEUE_FULL": Full,
    "QUEUE_CLOSED": Closed,
    "UNKNOWN_QUEUE": UnknownQueue,
    "PUT_FORGOTTEN": PutForgotten,
    "SHUTTING_DOWN": Unavailable,
    "LOG_UNAVAILABLE": Unavailable,
    "LOG_CLOSED": Unavailable,
}


def _varint(b: bytes, i: int):
    n = shift = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            return n, i
        shift += 7


def _fields(b: bytes):
    """Yield (field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(b):
        tag, i = _varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type")
        yield num, wt, v


def error_reason(err: grpc.RpcError) -> str:
    """The reason of the google.rpc.ErrorInfo (domain "distq") in a status's
    details, or "". Decoded by hand: google.rpc.Status is not part of the
    protobuf package, and this client depends on nothing else."""
    try:
        md = err.trailing_metadata() or ()
    except Exception:
        return ""
    for k, v in md:
        if k != "grpc-status-details-bin":
            continue
        try:
            for num, wt, any_b in _fields(v):
                if num != 3 or wt != 2:
                    continue
                type_url = value = b""
                for n2, w2, v2 in _fields(any_b):
                    if n2 == 1 and w2 == 2:
                        type_url = v2
                    elif n2 == 2 and w2 == 2:
                        value = v2
                if not type_url.endswith(b"/google.rpc.ErrorInfo"):
                    continue
                reason = domain = b""
                for n3, w3, v3 in _fields(value):
                    if n3 == 1 and w3 == 2:
                        reason = v3
                    elif n3 == 2 and w3 == 2:
                        domain = v3
                if domain == b"distq":
                    return reason.decode("utf-8", "replace")
        except (ValueError, IndexError):
            return ""
    return ""


def from_rpc_error(err: grpc.RpcError) -> Exception:
    """Turn a gRPC error from the master into one of the exceptions above."""
    code = err.code() if hasattr(err, "code") else None
    msg = (err.details() if hasattr(err, "details") else str(err)) or str(code)
    reason = error_reason(err)
    cls = _BY_REASON.get(reason)
    if cls is None:
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and msg.startswith("distq: queue full"):
            cls = Full
        elif code == grpc.StatusCode.FAILED_PRECONDITION and not reason:
            cls = PutForgotten if msg.startswith("distq: put sequence forgotten") else Closed
        elif code == grpc.StatusCode.NOT_FOUND:
            cls = UnknownQueue
        elif code == grpc.StatusCode.UNAVAILABLE:
            cls = Unavailable
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            if msg.startswith("distq: replay"):
                cls = Replayed
            elif msg.startswith("distq: authentication failed"):
                cls = AuthFailed
            else:
                cls = DistqError
        else:
            cls = DistqError
    return cls(msg, code, reason)
