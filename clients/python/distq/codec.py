"""Payload encodings. Payloads are bytes; these are the ones people use.
Never pickle: a payload comes from the network."""
from __future__ import annotations

import json
from typing import Any


def encode_int(n: int) -> bytes:
    """An integer as ASCII decimal, the demo's encoding ("25" for 25)."""
    return str(int(n)).encode("ascii")


def decode_int(b: bytes) -> int:
    """ASCII decimal bytes as an integer; ValueError otherwise."""
    s = bytes(b).decode("ascii")
    if not s or s.strip() != s:
        raise ValueError(f"not a decimal integer: {b!r}")
    return int(s, 10)


def encode_json(v: Any) -> bytes:
    """A value as compact UTF-8 JSON."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_json(b: bytes) -> Any:
    """UTF-8 JSON bytes as a value."""
    return json.loads(bytes(b).decode("utf-8"))
