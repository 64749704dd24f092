"""The authkey handshake and per-call credentials of auth.proto.

The key never crosses the wire: both sides prove they hold it with
HMAC-SHA256 over fresh 32-byte nonces, and this client checks the master's
proof before it sends its own (a fake master learns nothing).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import threading
from typing import List, Optional, Tuple

import grpc

from ._proto import auth_pb2, auth_pb2_grpc
from .errors import AuthFailed, MasterUnverified, from_rpc_error

ENV_KEY = "DISTQ_AUTHKEY"
ENV_KEY_FILE = "DISTQ_AUTHKEY_FILE"

LABEL_SERVER = b"distq-v1 server\n"
LABEL_CLIENT = b"distq-v1 client\n"
LABEL_SESSION = b"distq-v1 session\n"
LABEL_CALL = b"distq-v1 call\n"
NONCE_SIZE = 32


def _sum(key: bytes, label: bytes, *parts: bytes) -> bytes:
    m = hmac.new(key, label, hashlib.sha256)
    for p in parts:
        m.update(p)
    return m.digest()


def server_proof(key: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """HMAC(key, "distq-v1 server\\n" || client_nonce || server_nonce)."""
    return _sum(key, LABEL_SERVER, client_nonce, server_nonce)


def client_proof(key: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """HMAC(key, "distq-v1 client\\n" || server_nonce || client_nonce)."""
    return _sum(key, LABEL_CLIENT, server_nonce, client_nonce)


def session_key(key: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """HMAC(key, "distq-v1 session\\n" || client_nonce || server_nonce)."""
    return _sum(key, LABEL_SESSION, client_nonce, server_nonce)


def call_mac(skey: bytes, method: str, seq: str) -> str:
    """Lowercase hex of HMAC(session_key, "distq-v1 call\\n" || method || "\\n" || seq),
    where method is the full path, e.g. "/distq.v1.QueueService/Consume"."""
    return _sum(skey, LABEL_CALL, method.encode("ascii"), b"\n", seq.encode("ascii")).hex()


def read_key_file(path: str) -> bytes:
    """The key in a file as the Go side reads it: the file's raw bytes with
    exactly one trailing "\\n" or "\\r\\n" removed. Nothing is decoded (a base64
    key is used as its text). An empty key is an error."""
    with open(path, "rb") as f:
        b = f.read()
    if b.endswith(b"\r\n"):
        b = b[:-2]
    elif b.endswith(b"\n"):
        b = b[:-1]
    if not b:
        raise ValueError(f"authkey file {path!r} is empty")
    return b


def load_key(key_file: Optional[str] = None) -> bytes:
    """The authkey, looked up as the Go programs do: key_file if given, else
    the file named by $DISTQ_AUTHKEY_FILE, else $DISTQ_AUTHKEY (its bytes as
    given, nothing trimmed)."""
    if key_file:
        return read_key_file(key_file)
    f = os.environ.get(ENV_KEY_FILE, "")
    if f:
        return read_key_file(f)
    v = os.environb.get(ENV_KEY.encode()) if hasattr(os, "environb") else None
    if v is None:
        s = os.environ.get(ENV_KEY)
        v = None if s is None else s.encode()
    if v is None:
        raise ValueError(f"no authkey: pass authkey or key_file, or set ${ENV_KEY_FILE} or ${ENV_KEY}")
    if not v:
        raise ValueError(f"authkey from ${ENV_KEY} is empty")
    return v


def _valid_session_id(s: str) -> bool:
    return 0 < len(s) <= 128 and all(c in "0123456789abcdef" for c in s)


class Session:
    """One authenticated session with a master: the handshake, and the
    metadata that signs each call. Thread-safe."""

    def __init__(self, channel: grpc.Channel, key: bytes) -> None:
        if not key:
            raise ValueError("empty authkey")
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._key = bytes(key)
        self._lock = threading.Lock()
        self._id = ""
        self._skey = b""
        self._seq = 0
        self.generation = 0  # counts logins, so that threads re-login once

    def login(self, timeout: Optional[float] = None, if_generation: Optional[int] = None,
              wait_for_ready: bool = False) -> None:
        """Run the handshake. With if_generation, only if no other thread has
        logged in since that generation was seen."""
        with self._lock:
            if if_generation is not None and if_generation != self.generation:
                return
            cn = os.urandom(NONCE_SIZE)
            try:
                ch = self._stub.Challenge(auth_pb2.ChallengeRequest(client_nonce=cn), timeout=timeout,
                                         wait_for_ready=wait_for_ready)
            except grpc.RpcError as e:
                raise from_rpc_error(e) from None
            if len(ch.server_nonce) != NONCE_SIZE or not hmac.compare_digest(
                    ch.server_proof, server_proof(self._key, cn, ch.server_nonce)):
                raise MasterUnverified("distq: the master could not prove it holds the authkey "
                                       "(a wrong key on one side, or not a distq master); nothing was sent")
            try:
                r = self._stub.Login(auth_pb2.LoginRequest(
                    server_nonce=ch.server_nonce,
                    client_proof=client_proof(self._key, ch.server_nonce, cn)), timeout=timeout)
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                if isinstance(err, AuthFailed):
                    err = AuthFailed("distq: authentication failed: the master refused the authkey",
                                     err.code, err.reason)
                raise err from None
            if not _valid_session_id(r.session_id):
                raise MasterUnverified("distq: the master sent a malformed session id")
            self._id = r.session_id
            self._skey = session_key(self._key, cn, ch.server_nonce)
            self._seq = 0
            self.generation += 1

    def metadata(self, method: str) -> Tuple[List[Tuple[str, str]], int]:
        """Signed metadata for one call of the full method path, with the
        generation of the session that signed it."""
        with self._lock:
            self._seq += 1
            seq = str(self._seq)
            return ([("distq-session", self._id), ("distq-seq", seq),
                     ("distq-mac", call_mac(self._skey, method, seq))], self.generation)


def is_session_error(err: BaseException) -> bool:
    """A call refused for its session (unknown or expired: a master restart): log in again."""
    return (isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.UNAUTHENTICATED
            and (err.details() or "").startswith("distq: session"))


def is_replay_error(err: BaseException) -> bool:
    """A call refused as a replay: sign it again with a new seq and send it again."""
    return (isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.UNAUTHENTICATED
            and (err.details() or "").startswith("distq: replay"))
