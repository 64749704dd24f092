"""The handshake and MAC code against the fixed vectors that the Go tests
(internal/auth/vectors_test.go) check too."""
import json
import os
import tempfile
import unittest
from unittest import mock

from distq import _auth

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "internal", "auth", "testdata", "vectors.json")


def load():
    with open(VECTORS) as f:
        return json.load(f)


class VectorTest(unittest.TestCase):
    def setUp(self):
        self.v = load()
        self.key = bytes.fromhex(self.v["key"])
        self.cn = bytes.fromhex(self.v["client_nonce"])
        self.sn = bytes.fromhex(self.v["server_nonce"])

    def test_proofs_and_session_key(self):
        self.assertEqual(_auth.server_proof(self.key, self.cn, self.sn).hex(), self.v["server_proof"])
        self.assertEqual(_auth.client_proof(self.key, self.sn, self.cn).hex(), self.v["client_proof"])
        self.assertEqual(_auth.session_key(self.key, self.cn, self.sn).hex(), self.v["session_key"])

    def test_call_macs_over_full_method_path(self):
        sk = _auth.session_key(self.key, self.cn, self.sn)
        self.assertTrue(self.v["calls"])
        for c in self.v["calls"]:
            self.assertTrue(c["method"].startswith("/distq.v1."), c)
            self.assertEqual(_auth.call_mac(sk, c["method"], c["seq"]), c["mac"], c)

    def test_key_files(self):
        self.assertTrue(self.v["key_files"])
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "key")
            for kf in self.v["key_files"]:
                with open(p, "wb") as f:
                    f.write(bytes.fromhex(kf["file"]))
                if kf.get("error"):
                    with self.assertRaises(ValueError, msg=kf):
                        _auth.read_key_file(p)
                else:
                    self.assertEqual(_auth.read_key_file(p), bytes.fromhex(kf["key"]), kf)


class LoadKeyTest(unittest.TestCase):
    def test_order_file_then_env_file_then_env(self):
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            with open(a, "wb") as f:
                f.write(b"from-arg\n")
            with open(b, "wb") as f:
                f.write(b"from-env-file\r\n")
            env = {"DISTQ_AUTHKEY_FILE": b, "DISTQ_AUTHKEY": "from-env\n"}
            with mock.patch.dict(os.environ, env, clear=True):
                self.assertEqual(_auth.load_key(a), b"from-arg")
                self.assertEqual(_auth.load_key(), b"from-env-file")
            with mock.patch.dict(os.environ, {"DISTQ_AUTHKEY": "from-env\n"}, clear=True):
                # The variable is taken as it is: nothing trimmed, as in Go.
                self.assertEqual(_auth.load_key(), b"from-env\n")
            with mock.patch.dict(os.environ, {"DISTQ_AUTHKEY_FILE": "", "DISTQ_AUTHKEY": "k"}, clear=True):
                self.assertEqual(_auth.load_key(), b"k")

    def test_no_key_or_empty_key(self):
        with mock.patch.dict(os.environ, {}, clear=True):
            with self.assertRaisesRegex(ValueError, "DISTQ_AUTHKEY"):
                _auth.load_key()
        with mock.patch.dict(os.environ, {"DISTQ_AUTHKEY": ""}, clear=True):
            with self.assertRaisesRegex(ValueError, "empty"):
                _auth.load_key()
        with self.assertRaises(OSError):
            _auth.load_key("/nonexistent/distq-key")


if __name__ == "__main__":
    unittest.main()
