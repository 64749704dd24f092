package auth

import (
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrAuthFailed means the master verified itself but refused our proof.
// With a shared key this is almost always a wrong key; it can also be a
// handshake slower than the 30 s nonce lifetime.
var ErrAuthFailed = errors.New("authkey refused by master: wrong key?")

// ErrMasterUnverified means the peer could not prove it holds the authkey.
// The key is symmetric, so the client cannot tell "the master has a different
// key" from "we have a different key" from "this is not a distq master":
// a client with a wrong key therefore gets this error, not ErrAuthFailed.
var ErrMasterUnverified = errors.New("master did not prove it holds the authkey: wrong key (here or on the master) or not a distq master")

// Messages sent to peers. They are part of the protocol (see auth.proto):
// clients branch on the "distq: session" and "distq: replay" prefixes, so
// keep the prefixes.
const (
	msgAuthFailed    = "distq: authentication failed"
	msgCallRefused   = "distq: call refused"
	msgSessionPrefix = "distq: session"
	msgReplayPrefix  = "distq: replay"
)

// Status errors returned to peers. They are short and carry no internal
// detail; the detail goes to the log. Only a refused Login says
// "authentication failed": that is the one refusal a wrong key causes. A
// call on a session can only be refused for its own metadata, which a
// client with the right key gets right.
var (
	errLoginFailed     = status.Error(codes.Unauthenticated, msgAuthFailed)
	errMissingCreds    = status.Error(codes.Unauthenticated, msgCallRefused+": missing or duplicated distq-session/distq-seq/distq-mac")
	errBadSeq          = status.Error(codes.Unauthenticated, msgCallRefused+": malformed distq-seq")
	errBadMAC          = status.Error(codes.Unauthenticated, msgCallRefused+": bad distq-mac")
	errNotVerified     = status.Error(codes.Unauthenticated, msgCallRefused+": credentials not verified (serve with Server.ServerOptions)")
	errReplayed        = status.Error(codes.Unauthenticated, msgReplayPrefix+": distq-seq already used on this session, or signed more than 60s before it arrived; sign the call again with a new seq")
	errSessionUnknown  = status.Error(codes.Unauthenticated, msgSessionPrefix+" unknown")
	errSessionExpired  = status.Error(codes.Unauthenticated, msgSessionPrefix+" expired")
	errNoClientSession = status.Error(codes.Unauthenticated, msgSessionPrefix+" not established: run Handshake first")
	errTooManySessions = status.Error(codes.ResourceExhausted, "distq: too many sessions")
	errClosed          = status.Error(codes.Unavailable, "distq: authentication service closed")
	errInternal        = status.Error(codes.Internal, "distq: internal error")
	errBadClientNonce  = status.Error(codes.InvalidArgument, "distq: client_nonce must be 32 bytes")
	errBadServerNonce  = status.Error(codes.InvalidArgument, "distq: server_nonce must be 32 bytes")
)

// IsSessionError reports whether err is an UNAUTHENTICATED status whose
// message starts with "distq: session": the session is unknown or expired
// (e.g. the master restarted), so the caller should Reauth and retry. Wrapped
// errors are unwrapped; the message tested is the status's own, not the
// wrapper's.
func IsSessionError(err error) bool {
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		return false
	}
	st := gs.GRPCStatus()
	return st.Code() == codes.Unauthenticated && strings.HasPrefix(st.Message(), msgSessionPrefix)
}

// IsReplayError reports whether err is an UNAUTHENTICATED status whose
// message starts with "distq: replay": the call's seq was already used, or
// the call reached the master more than ReplayHorizon after it was signed.
// A client never reuses a seq, so for a client this means a call that
// waited too long on its way; sending it again signs it anew. It is not a
// wrong key, and it is not final.
func IsReplayError(err error) bool {
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		return false
	}
	st := gs.GRPCStatus()
	return st.Code() == codes.Unauthenticated && strings.HasPrefix(st.Message(), msgReplayPrefix)
}
