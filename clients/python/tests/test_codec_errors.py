"""Payload helpers and the mapping of the master's refusals to exceptions."""
import queue
import unittest

import grpc

import distq
from distq import errors


class CodecTest(unittest.TestCase):
    def test_int(self):
        self.assertEqual(distq.encode_int(625), b"625")
        self.assertEqual(distq.decode_int(b"-12"), -12)
        for bad in (b"", b" 1", b"1\n", b"x", b"\xff"):
            with self.assertRaises(ValueError, msg=bad):
                distq.decode_int(bad)

    def test_json(self):
        v = {"n": 3, "s": "é", "l": [1, None]}
        self.assertEqual(distq.encode_json(v), '{"n":3,"s":"é","l":[1,null]}'.encode())
        self.assertEqual(distq.decode_json(distq.encode_json(v)), v)


def _ld(num, payload):
    return bytes([num << 3 | 2, len(payload)]) + payload


class _FakeError(grpc.RpcError):
    def __init__(self, code, details, md=()):
        self._c, self._d, self._md = code, details, md

    def code(self):
        return self._c

    def details(self):
        return self._d

    def trailing_metadata(self):
        return self._md


def _status_with_reason(reason, domain=b"distq"):
    info = _ld(1, reason) + _ld(2, domain)
    any_ = _ld(1, b"type.googleapis.com/google.rpc.ErrorInfo") + _ld(2, info)
    return bytes([8, 8]) + _ld(2, b"full") + _ld(3, any_)


class ErrorTest(unittest.TestCase):
    def test_reason_wins_over_message(self):
        md = (("grpc-status-details-bin", _status_with_reason(b"QUEUE_FULL")),)
        e = errors.from_rpc_error(_FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "anything", md))
        self.assertIsInstance(e, distq.Full)
        self.assertIsInstance(e, queue.Full)  # the recipe's except queue.Full still works
        self.assertEqual(e.reason, "QUEUE_FULL")
        md = (("grpc-status-details-bin", _status_with_reason(b"QUEUE_CLOSED")),)
        self.assertIsInstance(errors.from_rpc_error(_FakeError(grpc.StatusCode.FAILED_PRECONDITION, "x", md)),
                              distq.Closed)
        md = (("grpc-status-details-bin", _status_with_reason(b"QUEUE_FULL", b"other")),)
        self.assertEqual(errors.error_reason(_FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "x", md)), "")

    def test_without_reason(self):
        cases = [
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "distq: queue full", distq.Full),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "message larger than max", distq.DistqError),
            (grpc.StatusCode.NOT_FOUND, "distq: unknown queue", distq.UnknownQueue),
            (grpc.StatusCode.UNAVAILABLE, "gone", distq.Unavailable),
            (grpc.StatusCode.UNAUTHENTICATED, "distq: authentication failed", distq.AuthFailed),
            (grpc.StatusCode.UNAUTHENTICATED, "distq: replay: seq 3", distq.Replayed),
            (grpc.StatusCode.FAILED_PRECONDITION, "distq: put sequence forgotten", distq.PutForgotten),
        ]
        for code, msg, cls in cases:
            e = errors.from_rpc_error(_FakeError(code, msg, (("grpc-status-details-bin", b"\xff\xff"),)))
            self.assertIs(type(e), cls, (code, msg))
        self.assertTrue(distq.is_permanent(distq.AuthFailed("x")))
        self.assertFalse(distq.is_permanent(distq.Replayed("x")))


if __name__ == "__main__":
    unittest.main()
