#!/usr/bin/env bash
# Generate the Python stubs of proto/distq/v1/*.proto into DIR (default
# clients/python/distq/_proto), with the pinned Debian tools:
# protobuf-compiler (protoc) and protobuf-compiler-grpc (grpc_python_plugin).
# The versions are checked: another protoc writes other bytes, and
# proto-check would call the committed stubs stale.
#
# protoc 3.21's Python output (the descriptor-pool "builder" form) loads
# with every protobuf runtime from 3.20 on, the C++, upb and pure-Python
# ones alike; the older grpc_tools protoc (3.5) writes descriptors by hand,
# which the upb runtime of current protobuf wheels refuses.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_WANT="libprotoc 3.21.12"
GRPC_PLUGIN_WANT="1.51.1"
out="${1:-clients/python/distq/_proto}"

fail() { echo "python-proto: $*" >&2; exit 1; }
command -v protoc >/dev/null || fail "protoc not found: install Debian's protobuf-compiler ($PROTOC_WANT)"
got="$(protoc --version)"
[ "$got" = "$PROTOC_WANT" ] || fail "protoc is '$got', want '$PROTOC_WANT' (Debian 12's protobuf-compiler); other versions generate other code"
plugin="$(command -v grpc_python_plugin || true)"
[ -n "$plugin" ] || fail "grpc_python_plugin not found: install Debian's protobuf-compiler-grpc ($GRPC_PLUGIN_WANT)"
if command -v dpkg-query >/dev/null; then
  pv="$(dpkg-query -W -f='${Version}' protobuf-compiler-grpc 2>/dev/null || true)"
  case "$pv" in
    "$GRPC_PLUGIN_WANT"-*) ;;
    *) fail "protobuf-compiler-grpc is '${pv:-not installed}', want $GRPC_PLUGIN_WANT (Debian 12)";;
  esac
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd proto && protoc -I. --python_out="$tmp" --grpc_python_out="$tmp" \
  --plugin=protoc-gen-grpc_python="$plugin" distq/v1/auth.proto distq/v1/queue.proto distq/v1/admin.proto)

mkdir -p "$out"
rm -f "$out"/*_pb2.py "$out"/*_pb2_grpc.py
for f in "$tmp"/distq/v1/*.py; do
  # The stubs live in the package distq._proto, not in a top-level distq.v1:
  # make their imports of each other relative.
  sed -e 's/^from distq\.v1 import /from . import /' "$f" > "$out/$(basename "$f")"
done
cat > "$out/__init__.py" <<'PY'
"""Generated protobuf and gRPC stubs of proto/distq/v1 (make proto). Do not edit."""
PY
