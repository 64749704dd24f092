// Package auth proves possession of the shared authkey between a distq master
// and its clients, in both directions, without the key ever crossing the wire.
//
// The normative description of the scheme (labels, byte layouts, metadata keys,
// limits and error messages) is the header comment of
// proto/distq/v1/auth.proto; this package implements exactly that. In short:
//
//   - Handshake. The client sends a fresh 32-byte client_nonce (Challenge); the
//     master answers a fresh 32-byte server_nonce and
//     HMAC-SHA256(key, "distq-v1 server\n"||client_nonce||server_nonce). The
//     client checks that proof before it says anything else, then sends
//     HMAC-SHA256(key, "distq-v1 client\n"||server_nonce||client_nonce)
//     (Login). The master accepts each server_nonce once, within 30 s, and
//     answers a session id. Both sides derive a session key from the two nonces.
//   - Every other call carries distq-session, distq-seq and distq-mac metadata:
//     an HMAC under the session key of the method and a per-session counter.
//     The master remembers the counters it accepted (window.go), in any
//     order, for at least a minute after they were used, so a captured call
//     cannot be replayed and a busy client's calls are never taken for
//     replays; it drops sessions idle for 10 minutes (an open stream counts
//     as activity). The tap (TapHandle) checks each call as its headers
//     arrive, before any handler runs or any message is read.
//
// The server side is Server: it implements distqv1.AuthServiceServer and
// provides, in ServerOptions, the tap that checks the per-call MAC and the
// interceptors that keep sessions of open streams alive. The
// client side is Client: it runs the handshake and, as a
// credentials.PerRPCCredentials, stamps every call. A call refused with a
// message starting "distq: session" (IsSessionError) should be retried after
// Reauth, one starting "distq: replay" (IsReplayError) sent again; any
// other UNAUTHENTICATED is final.
//
// The MAC authenticates who opens a call, not the payload that follows; run
// the master with TLS when payloads need confidentiality or integrity.
package auth
