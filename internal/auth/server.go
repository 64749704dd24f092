package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/peer"

	"github.com/distq/distq/internal/ratelog"
	distqv1 "github.com/distq/distq/proto/distq/v1"
)

// Defaults of ServerConfig.
const (
	defaultNonceTTL    = 30 * time.Second
	defaultSessionIdle = 10 * time.Minute
	defaultMaxPending  = 10000
	// DefaultMaxSessions bounds the sessions a master holds (ServerConfig).
	DefaultMaxSessions = 100000
)

// ServerConfig configures a Server. Zero values select the defaults.
type ServerConfig struct {
	// Key is the shared authkey. Required, non-empty. It is copied.
	Key []byte
	// Clock tells the time for nonce and session expiry. Default time.Now;
	// tests inject a manual clock so that expiry needs no sleeping.
	Clock func() time.Time
	// NonceTTL is how long a server_nonce stays valid for its one Login.
	// Default 30s (auth.proto).
	NonceTTL time.Duration
	// SessionIdle is how long a session lives without calls and without an
	// open stream. Default 10m (auth.proto).
	SessionIdle time.Duration
	// MaxPending bounds outstanding challenges. Default 10000. When full, the
	// oldest challenge is evicted (see challengeTable for why).
	MaxPending int
	// MaxSessions bounds live sessions. Default 100000. When full, the least
	// recently used session without an open stream is evicted; if every
	// session has an open stream, Login answers RESOURCE_EXHAUSTED.
	MaxSessions int
	// Logger receives failed logins and refused calls, at Warn, with the
	// peer's address; never the key, proofs or MACs. It is used as given
	// (name it, e.g. Named("auth"), at the call site). Default: discard.
	Logger hclog.Logger
	// Refusals, if set, logs refused logins and calls at a bounded rate
	// (shared with the master's other refusals). Default: a ratelog.Log of
	// its own over Logger, closed by Close.
	Refusals *ratelog.Log
}

// Server is the master side: the AuthService handshake and the interceptors
// that check every other call. Safe for concurrent use.
type Server struct {
	distqv1.UnimplementedAuthServiceServer

	key      []byte
	clock    func() time.Time
	log      hclog.Logger
	pending  *challengeTable
	sessions *sessionTable
	closed   atomic.Bool

	refusals    *ratelog.Log
	ownRefusals bool // refusals was made by NewServer, and Close closes it
}

var _ distqv1.AuthServiceServer = (*Server)(nil)

// NewServer validates cfg, fills in defaults and returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if len(cfg.Key) == 0 {
		return nil, errors.New("auth: ServerConfig.Key is empty")
	}
	if cfg.NonceTTL < 0 || cfg.SessionIdle < 0 {
		return nil, errors.New("auth: ServerConfig.NonceTTL and SessionIdle must not be negative")
	}
	if cfg.MaxPending < 0 || cfg.MaxSessions < 0 {
		return nil, errors.New("auth: ServerConfig.MaxPending and MaxSessions must not be negative")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.NonceTTL == 0 {
		cfg.NonceTTL = defaultNonceTTL
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = defaultSessionIdle
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = defaultMaxPending
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	s := &Server{
		key:      append([]byte(nil), cfg.Key...),
		clock:    cfg.Clock,
		log:      cfg.Logger,
		pending:  newChallengeTable(cfg.MaxPending, cfg.NonceTTL),
		sessions: newSessionTable(cfg.MaxSessions, cfg.SessionIdle),
		refusals: cfg.Refusals,
	}
	if s.refusals == nil {
		s.refusals = ratelog.New(cfg.Logger, ratelog.Config{What: "refusals"})
		s.ownRefusals = true
	}
	return s, nil
}

// refused logs a refusal through the rate limit, with the peer and method.
// The method is the peer's to choose, so only its first 128 bytes go into
// the log.
func (s *Server) refused(ctx context.Context, msg, reason, method string) {
	if method != "" {
		if len(method) > maxLoggedMethod {
			method = method[:maxLoggedMethod] + "..."
		}
		s.refusals.Note(msg, reason, peerAddr(ctx), "method", method)
		return
	}
	s.refusals.Note(msg, reason, peerAddr(ctx))
}

// Challenge starts a handshake: it issues a server_nonce and proves that the
// master holds the key. It needs no key from the caller.
func (s *Server) Challenge(ctx context.Context, req *distqv1.ChallengeRequest) (*distqv1.ChallengeResponse, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	cn := req.GetClientNonce()
	if len(cn) != nonceSize {
		s.refused(ctx, "challenge refused", "client_nonce not 32 bytes", "")
		return nil, errBadClientNonce
	}
	sn, err := newNonce()
	if err != nil {
		s.log.Error("drawing server nonce", "error", err)
		return nil, errInternal
	}
	s.pending.add(sn, cn, s.clock())
	return &distqv1.ChallengeResponse{ServerNonce: sn, ServerProof: serverProof(s.key, cn, sn)}, nil
}

// Login finishes a handshake: it checks the client's proof and opens a
// session. The server_nonce is used up whatever the outcome.
func (s *Server) Login(ctx context.Context, req *distqv1.LoginRequest) (*distqv1.LoginResponse, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	sn := req.GetServerNonce()
	if len(sn) != nonceSize {
		s.refused(ctx, "login refused", "server_nonce not 32 bytes", "")
		return nil, errBadServerNonce
	}
	cn, ok := s.pending.take(sn, s.clock())
	if !ok {
		s.refused(ctx, "login refused", "unknown, used or expired server_nonce", "")
		return nil, errLoginFailed
	}
	if !hmac.Equal(req.GetClientProof(), clientProof(s.key, sn, cn)) {
		s.refused(ctx, "login refused", "wrong proof (wrong authkey?)", "")
		return nil, errLoginFailed
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		s.log.Error("drawing session id", "error", err)
		return nil, errInternal
	}
	id := hex.EncodeToString(raw[:])
	if _, err := s.sessions.add(id, sessionKey(s.key, cn, sn), s.clock()); err != nil {
		s.refused(ctx, "login refused", "session table full of open streams", "")
		return nil, err
	}
	s.log.Debug("session opened", "peer", peerAddr(ctx), "session", id)
	return &distqv1.LoginResponse{SessionId: id}, nil
}

// Close forgets all challenges and sessions and makes every later handshake
// and call fail with UNAVAILABLE. There is no goroutine to stop. Safe to call
// more than once.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pending.reset()
	s.sessions.reset()
	if s.ownRefusals {
		s.refusals.Close()
	}
	return nil
}

// maxLoggedMethod bounds the method name a refusal logs.
const maxLoggedMethod = 128

// peerAddr returns the caller's address for logs, or "unknown".
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}
