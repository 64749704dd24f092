package auth

import (
	"context"
	"crypto/hmac"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// sessionCtxKey keys the verified session id in a handler's context.
type sessionCtxKey struct{}

// SessionFromContext returns the session id the interceptors verified for
// this call, for logging. It is false for exempt methods.
func SessionFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(sessionCtxKey{}).(string)
	return id, ok
}

// UnaryInterceptor checks the per-call MAC of every unary call except the
// exempt ones (AuthService, health, reflection). A call that fails gets
// UNAUTHENTICATED and never reaches its handler.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if exempt(info.FullMethod) {
			return handler(ctx, req)
		}
		sess, err := s.verifyContext(ctx, info.FullMethod, false)
		if err != nil {
			return nil, err
		}
		return handler(context.WithValue(ctx, sessionCtxKey{}, sess.id), req)
	}
}

// StreamInterceptor checks the per-call MAC when a stream opens (auth.proto:
// once per stream). The session cannot expire while the stream is open.
func (s *Server) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if exempt(info.FullMethod) {
			return handler(srv, ss)
		}
		sess, err := s.verifyContext(ss.Context(), info.FullMethod, true)
		if err != nil {
			return err
		}
		defer func() { s.sessions.release(sess, s.clock()) }()
		return handler(srv, &sessionStream{
			ServerStream: ss,
			ctx:          context.WithValue(ss.Context(), sessionCtxKey{}, sess.id),
		})
	}
}

// sessionStream gives a stream handler a context carrying the session id.
type sessionStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *sessionStream) Context() context.Context { return s.ctx }

// verifyContext pulls the three metadata entries out of ctx and verifies
// them, logging refusals with the peer's address.
func (s *Server) verifyContext(ctx context.Context, method string, stream bool) (*session, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	id, seq, mac := md.Get(mdSession), md.Get(mdSeq), md.Get(mdMAC)
	if len(id) != 1 || len(seq) != 1 || len(mac) != 1 {
		s.log.Debug("call refused", "peer", peerAddr(ctx), "method", method, "reason", "missing metadata")
		return nil, errMissingCreds
	}
	sess, err := s.verify(id[0], seq[0], mac[0], method, stream)
	if err != nil {
		switch err {
		case errSessionUnknown, errSessionExpired, errClosed:
			s.log.Debug("call refused", "peer", peerAddr(ctx), "method", method, "error", err)
		default:
			s.log.Warn("call refused", "peer", peerAddr(ctx), "method", method, "error", err)
		}
		return nil, err
	}
	return sess, nil
}

// verify checks one call's credentials as received from the peer: a strict
// seq, a well-formed MAC, a live session, the MAC in constant time, and last
// the replay window, so that only a peer holding the session key can use up
// a seq. With stream set, a successful verify must be paired with
// sessions.release when the stream ends.
func (s *Server) verify(id, seqStr, macStr, method string, stream bool) (*session, error) {
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
	if err := s.sessions.admit(sess, seq, s.clock(), stream); err != nil {
		return nil, err
	}
	return sess, nil
}
