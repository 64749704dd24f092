package auth

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	distqv1 "github.com/distq/distq/proto/distq/v1"
)

// Client is the client side: it runs the handshake and, as
// credentials.PerRPCCredentials (grpc.WithPerRPCCredentials), stamps every
// call with the session's MAC. Safe for concurrent use.
type Client struct {
	key []byte

	// sess is swapped whole by a successful handshake, so a call always
	// reads a consistent id, key and counter without taking a lock.
	sess atomic.Pointer[clientSession]

	// handshake serialises handshakes. It is a channel rather than a mutex
	// so that a goroutine waiting for someone else's handshake can give up
	// when its context ends.
	handshake chan struct{}
}

// clientSession is one established session. id and key never change.
type clientSession struct {
	id  string
	key []byte
	seq atomic.Uint64 // last seq used; the first call sends 1
}

var _ credentials.PerRPCCredentials = (*Client)(nil)

// NewClient returns a Client for key, which must not be empty. The key is
// copied. The Client has no session until Handshake succeeds.
func NewClient(key []byte) (*Client, error) {
	if len(key) == 0 {
		return nil, errors.New("auth: empty authkey")
	}
	return &Client{key: append([]byte(nil), key...), handshake: make(chan struct{}, 1)}, nil
}

// Handshake runs Challenge then Login over conn and, on success, replaces the
// current session. It checks the master's proof before sending its own, so a
// peer without the key learns nothing from us.
//
// Errors: ErrMasterUnverified (wrapped) if the master's proof is wrong or
// malformed (which is also what a wrong key on our side looks like);
// ErrAuthFailed (wrapped) if Login is refused with UNAUTHENTICATED; any other
// error, e.g. a network failure, wrapped as is so the caller can inspect its
// status and retry.
func (c *Client) Handshake(ctx context.Context, conn grpc.ClientConnInterface) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	return c.handshakeLocked(ctx, conn)
}

// Reauth runs the handshake again if the current session is still stale, the
// id that a call was just refused with. When many goroutines find the same
// session expired at once, the first one re-handshakes and the others see a
// new id and return nil. Pass "" to establish a first session.
func (c *Client) Reauth(ctx context.Context, conn grpc.ClientConnInterface, stale string) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	if c.Session() != stale {
		return nil
	}
	return c.handshakeLocked(ctx, conn)
}

// Session returns the current session id, or "" before the first successful
// handshake.
func (c *Client) Session() string {
	if s := c.sess.Load(); s != nil {
		return s.id
	}
	return ""
}

// GetRequestMetadata implements credentials.PerRPCCredentials: it returns the
// distq-session, distq-seq and distq-mac entries for the call's method, using
// the next seq of the session. Exempt methods (the handshake itself, health,
// reflection) get no metadata. Before a handshake it fails with an
// UNAUTHENTICATED "distq: session ..." status, so IsSessionError plus Reauth
// recovers from it like from an expired session.
func (c *Client) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok {
		return nil, errors.New("auth: no request info in context")
	}
	if exempt(ri.Method) {
		return nil, nil
	}
	s := c.sess.Load()
	if s == nil {
		return nil, errNoClientSession
	}
	seq := strconv.FormatUint(s.seq.Add(1), 10)
	return map[string]string{
		mdSession: s.id,
		mdSeq:     seq,
		mdMAC:     hex.EncodeToString(callMAC(s.key, ri.Method, seq)),
	}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. It
// returns false: the MAC does not depend on TLS, which stays optional.
func (c *Client) RequireTransportSecurity() bool { return false }

func (c *Client) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.handshake <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) unlock() { <-c.handshake }

func (c *Client) handshakeLocked(ctx context.Context, conn grpc.ClientConnInterface) error {
	ac := distqv1.NewAuthServiceClient(conn)
	cn, err := newNonce()
	if err != nil {
		return fmt.Errorf("auth: drawing nonce: %w", err)
	}
	ch, err := ac.Challenge(ctx, &distqv1.ChallengeRequest{ClientNonce: cn})
	if err != nil {
		return fmt.Errorf("auth: challenge: %w", err)
	}
	sn := ch.GetServerNonce()
	if len(sn) != nonceSize || !hmac.Equal(ch.GetServerProof(), serverProof(c.key, cn, sn)) {
		return fmt.Errorf("auth: %w", ErrMasterUnverified)
	}
	lr, err := ac.Login(ctx, &distqv1.LoginRequest{ServerNonce: sn, ClientProof: clientProof(c.key, sn, cn)})
	if err != nil {
		if status.Code(err) == codes.Unauthenticated {
			return fmt.Errorf("auth: %w", ErrAuthFailed)
		}
		return fmt.Errorf("auth: login: %w", err)
	}
	id := lr.GetSessionId()
	if !validSessionID(id) {
		return errors.New("auth: login: master sent a malformed session id")
	}
	c.sess.Store(&clientSession{id: id, key: sessionKey(c.key, cn, sn)})
	return nil
}
