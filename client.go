package distq

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/window"
	pb "github.com/distq/distq/proto/distq/v1"
)

// Options configure a Client.
type Options struct {
	// AuthKey is the shared secret of the master. Required. Load it with
	// LoadKey rather than putting it on a command line.
	AuthKey []byte
	// TLS, if set, encrypts the connection; nil means plain text.
	TLS *tls.Config
	// MaxMessageSize bounds received messages. Default 4 MiB.
	MaxMessageSize int
	// Logger. Default: a null logger.
	Logger hclog.Logger
	// DialOptions are appended to the client's own gRPC options.
	DialOptions []grpc.DialOption
	// NoPutRetry: never send a put again once it may have reached the
	// master, even to a master that deduplicates puts; a put whose answer
	// was lost then fails (as with a master that does not deduplicate),
	// and may or may not have been stored. For tests, and for producers
	// that prefer to retry by hand, at most once per attempt.
	NoPutRetry bool
}

// Client is a connection to a master: the Go counterpart of a connected
// BaseManager. It is safe for concurrent use. The connection reconnects by
// itself; the authkey handshake runs again whenever the master asks for it
// (for example after a master restart).
//
// A Client names itself to the master with a random producer id, and
// numbers its puts per queue, so that a master that deduplicates puts
// stores a put it sends again once (see Queue.PutBatch).
type Client struct {
	addr string
	conn *grpc.ClientConn
	auth *auth.Client
	qs   pb.QueueServiceClient
	log  hclog.Logger

	transports *transportCounter
	putMu      sync.Mutex
	puts       map[string]*putStream // by queue name
	getMu      sync.Mutex
	gets       map[string]*getStream // by queue name

	producer   [16]byte    // PutRequest.producer_id, drawn at construction
	noPutRetry bool        // Options.NoPutRetry
	dedup      atomic.Bool // the master's latest PutResponse said dedup
	closing    chan struct{}
	closeOnce  sync.Once
}

// reconnect bounds the connection's own backoff between attempts to reach
// a lost master at a second. gRPC's default grows to two minutes: a
// master back from a restart waited that long for its clients, whatever
// the backoff of their calls (WorkerConfig.MaxBackoff, the slave's
// -max-backoff), since a call on a connection waiting out its backoff
// fails at once. A refused connection costs the master nothing.
var reconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 20 * time.Second,
})

// LoadKey reads the authkey from file, or else from the environment
// variables DISTQ_AUTHKEY_FILE or DISTQ_AUTHKEY.
func LoadKey(file string) ([]byte, error) { return auth.LoadKey(file) }

// NewClient prepares a client for the master at addr ("host:port") without
// any network I/O; the handshake runs on the first call. Use Dial to connect
// and verify the master at once.
func NewClient(addr string, opts Options) (*Client, error) {
	if len(opts.AuthKey) == 0 {
		return nil, fmt.Errorf("distq: no authkey given (set Options.AuthKey; see LoadKey)")
	}
	ac, err := auth.NewClient(opts.AuthKey)
	if err != nil {
		return nil, fmt.Errorf("distq: %w", err)
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	transports := &transportCounter{}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(transports),
		grpc.WithPerRPCCredentials(ac),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opts.MaxMessageSize)),
		// A ping every minute on a silent connection (not more often:
		// each costs both ends a wake-up and system calls, which adds up
		// over thousands of idle slaves), so that a master cut off by
		// the network is noticed within 80 s and the client reconnects;
		// the master does not ping clients that ping it (see
		// server.DefaultKeepaliveTime).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                time.Minute,
			Timeout:             20 * time.Second,
			PermitWithoutStream: true,
		}),
		reconnect,
	}
	dopts = append(dopts, window.DialOptions()...)
	dopts = append(dopts, opts.DialOptions...)
	conn, err := grpc.NewClient(addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("distq: master address %q: %w", addr, err)
	}
	c := &Client{
		addr: addr,
		conn: conn,
		auth: ac,
		qs:   pb.NewQueueServiceClient(conn),
		log:  opts.Logger,

		transports: transports,
		noPutRetry: opts.NoPutRetry,
		closing:    make(chan struct{}),
	}
	c.producer = newProducerID()
	return c, nil
}

// newProducerID draws 16 random bytes, never all zero (which names no
// producer).
func newProducerID() [16]byte {
	var id [16]byte
	for id == ([16]byte{}) {
		rand.Read(id[:]) // never fails (crypto/rand)
	}
	return id
}

// Dial connects to the master at addr and runs the authkey handshake, so
// that a wrong key or a master that cannot prove the key fails here.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	c, err := NewClient(addr, opts)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Connect runs the authkey handshake now (it otherwise runs on the first
// call). It fails with ErrAuthFailed on a wrong key and ErrMasterUnverified
// when the master cannot prove the key.
func (c *Client) Connect(ctx context.Context) error {
	return wrapAuth(c.auth.Handshake(ctx, c.conn), c.addr)
}

// Addr is the master's address.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection. Safe to call twice. A put that is sending
// again a put whose answer was lost stops, with the error that lost it.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closing) })
	c.closePuts()
	c.closeGets()
	err := c.conn.Close()
	if err != nil && !isClosing(err) {
		return err
	}
	return nil
}

// Queue returns a handle to the named queue (a BaseManager proxy). No call
// is made until it is used.
func (c *Client) Queue(name string) *Queue { return &Queue{c: c, name: name} }

// Stats returns the counters of every queue on the master.
func (c *Client) Stats(ctx context.Context) ([]Stats, error) {
	var resp *pb.StatsResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = c.qs.Stats(ctx, &pb.StatsRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Stats, len(resp.GetQueues()))
	for i, s := range resp.GetQueues() {
		out[i] = statsFromPB(s)
	}
	return out, nil
}

// ensureSession runs the handshake if there is no session yet.
func (c *Client) ensureSession(ctx context.Context) error {
	if c.auth.Session() != "" {
		return nil
	}
	return wrapAuth(c.auth.Reauth(ctx, c.conn, ""), c.addr)
}

// call runs fn with a session, and once more if the master refused it
// before running it: after a new handshake if the master no longer knows
// the session (it restarted, or the session idled out), or signed anew if
// it took the call for a replay (it waited too long on its way). A call
// the master refused in its tap never reached a handler, so sending it
// again cannot do anything twice.
func (c *Client) call(ctx context.Context, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		if err := c.ensureSession(ctx); err != nil {
			return err
		}
		stale := c.auth.Session()
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if attempt < 2 && auth.IsSessionError(err) {
			c.log.Debug("session unknown to the master; authenticating again")
			if rerr := c.auth.Reauth(ctx, c.conn, stale); rerr != nil {
				return wrapAuth(rerr, c.addr)
			}
			continue
		}
		if attempt < 2 && auth.IsReplayError(err) {
			c.log.Debug("call refused as stale; sending it again", "error", err)
			continue
		}
		return fromStatus(err)
	}
}

func isClosing(err error) bool {
	return err != nil && errors.Is(err, grpc.ErrClientConnClosing)
}
