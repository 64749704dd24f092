package auth

import (
	"context"
	"crypto/hmac"

	"google.golang.org/grpc"
	"google.golang.org/grpc/tap"
)

// sessionCtxKey keys the verified *session in a call's context.
type sessionCtxKey struct{}

// SessionFromContext returns the session id whose credentials the tap
// verified for this call. It is false for exempt methods.
func SessionFromContext(ctx context.Context) (string, bool) {
	if s, ok := ctx.Value(sessionCtxKey{}).(*session); ok {
		return s.id, true
	}
	return "", false
}

// ServerOptions returns what a gRPC server needs to enforce the scheme: the
// tap that verifies every call's credentials as its headers arrive, and the
// interceptors that keep a session alive while its streams are open and
// refuse any call the tap did not verify. Servers that chain interceptors
// of their own add them after these.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InTapHandle(s.TapHandle),
		grpc.ChainUnaryInterceptor(s.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(s.StreamInterceptor()),
	}
}

// TapHandle checks the credentials of every call except the exempt ones
// (AuthService, health, reflection) when its headers arrive: before gRPC
// starts a goroutine for the call or reads a byte of its message, so a
// peer without a session costs the master next to nothing. A call that
// fails gets UNAUTHENTICATED at once.
//
// gRPC runs the tap on the connection's reader goroutine, so it must be
// quick: one HMAC and a map lookup.
func (s *Server) TapHandle(ctx context.Context, info *tap.Info) (context.Context, error) {
	if exempt(info.FullMethodName) {
		return ctx, nil
	}
	md := info.Header
	id, seq, mac := md.Get(mdSession), md.Get(mdSeq), md.Get(mdMAC)
	if len(id) != 1 || len(seq) != 1 || len(mac) != 1 {
		s.refused(ctx, "call refused", "missing or duplicated distq metadata", info.FullMethodName)
		return nil, errMissingCreds
	}
	sess, err := s.verify(id[0], seq[0], mac[0], info.FullMethodName)
	if err != nil {
		s.refused(ctx, "call refused", reasonOf(err), info.FullMethodName)
		return nil, err
	}
	return context.WithValue(ctx, sessionCtxKey{}, sess), nil
}

// UnaryInterceptor refuses a non-exempt unary call that the tap did not
// verify; with ServerOptions that never happens, and without the tap it
// keeps the service closed rather than open.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !exempt(info.FullMethod) {
			if _, ok := ctx.Value(sessionCtxKey{}).(*session); !ok {
				return nil, errNotVerified
			}
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor keeps the session of a verified stream alive while the
// stream is open (auth.proto: a stream is checked once, when it opens).
// The hold is taken here rather than in the tap because only a stream that
// reaches its handler is sure to end through here and release it.
func (s *Server) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if exempt(info.FullMethod) {
			return handler(srv, ss)
		}
		sess, ok := ss.Context().Value(sessionCtxKey{}).(*session)
		if !ok {
			return errNotVerified
		}
		if err := s.sessions.hold(sess, s.clock()); err != nil {
			return err
		}
		defer func() { s.sessions.release(sess, s.clock()) }()
		return handler(srv, ss)
	}
}

// verify checks one call's credentials as received from the peer: a strict
// seq, a well-formed MAC, a live session, the MAC in constant time, and last
// the replay guard, so that only a peer holding the session key can use up
// a seq.
func (s *Server) verify(id, seqStr, macStr, method string) (*session, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	seq, ok := parseSeq(seqStr)
	if !ok {
		return nil, errBadSeq
	}
	got, ok := parseMAC(macStr)
	if !ok {
		return nil, errBadMAC
	}
	sess, err := s.sessions.lookup(id, s.clock())
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(got, callMAC(sess.key, method, seqStr)) {
		return nil, errBadMAC
	}
	if err := s.sessions.admit(sess, seq, s.clock()); err != nil {
		return nil, err
	}
	return sess, nil
}

// reasonOf names a refusal for the log; never the key, proof or MAC.
func reasonOf(err error) string {
	switch err {
	case errBadSeq:
		return "malformed distq-seq"
	case errBadMAC:
		return "bad distq-mac"
	case errReplayed:
		return "distq-seq replayed or signed too long ago"
	case errSessionUnknown:
		return "session unknown (master restarted, or session evicted; the client logs in again)"
	case errSessionExpired:
		return "session expired (the client logs in again)"
	case errClosed:
		return "master shutting down"
	}
	return "refused"
}
