// Command master serves named task queues to slaves over gRPC, guarded by a
// shared authkey: the BaseManager side of Python's "distributed processes"
// recipe. With -demo N it is also the recipe's producer.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	runtimedebug "runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/term"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/dashboard"
	"github.com/distq/distq/internal/debug"
	"github.com/distq/distq/internal/demo"
	"github.com/distq/distq/internal/durable"
	"github.com/distq/distq/internal/fdlimit"
	"github.com/distq/distq/internal/healthcheck"
	"github.com/distq/distq/internal/logging"
	"github.com/distq/distq/internal/metrics"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/ratelog"
	"github.com/distq/distq/internal/server"
	"github.com/distq/distq/internal/tlsconfig"
	"github.com/distq/distq/internal/wal"
)

func main() {
	m := NewMain(os.Stdout, os.Stderr)
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "master:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "master:", err)
		os.Exit(1)
	}
}

// Main is the master program: flags in, Run until a signal or the end of
// the demo.
type Main struct {
	stdout, stderr io.Writer

	listen          string
	authkeyFile     string
	queues          queueFlags
	lease           time.Duration
	maxAttempts     int
	retryMin        time.Duration
	retryMax        time.Duration
	maxMessageSize  int
	authTimeout     time.Duration
	maxConns        int
	maxUnauthConns  int
	maxStreams      int
	maxWaits        int
	maxSessions     int
	refusalLogEvery time.Duration
	shutdownTimeout time.Duration
	tlsCert         string
	tlsKey          string
	tlsClientCA     string
	logLevel        string
	logFormat       string
	debugAddr       string
	httpAddr        string
	dashboard       bool
	dashCredFile    string
	healthcheck     bool
	demoN           int
	demoProgress    string
	demoSlaves      int
	addrFile        string
	dataDir         string
	fsync           string
	fsyncInterval   time.Duration
	salvageLog      bool
	dedupWindow     time.Duration
}

// NewMain returns a Main writing to stdout and stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr}
}

// queueFlags collects repeated -queue NAME[:MAXSIZE][,retry-min=D][,retry-max=D]
// flags.
type queueFlags []queue.QueueConfig

func (q *queueFlags) String() string {
	parts := make([]string, len(*q))
	for i, c := range *q {
		parts[i] = c.Name
		if c.MaxSize > 0 {
			parts[i] += ":" + strconv.Itoa(c.MaxSize)
		}
		if c.RetryMin > 0 {
			parts[i] += ",retry-min=" + c.RetryMin.String()
		}
		if c.RetryMax > 0 {
			parts[i] += ",retry-max=" + c.RetryMax.String()
		}
	}
	return strings.Join(parts, " ")
}

func (q *queueFlags) Set(v string) error {
	head, opts, hasOpts := strings.Cut(v, ",")
	name, size, hasSize := strings.Cut(head, ":")
	c := queue.QueueConfig{Name: name}
	if hasSize {
		n, err := strconv.Atoi(size)
		if err != nil || n < 0 {
			return fmt.Errorf("maxsize %q is not a whole number >= 0", size)
		}
		c.MaxSize = n
	}
	if err := queue.ValidateName(name); err != nil {
		return err
	}
	for hasOpts {
		var opt string
		opt, opts, hasOpts = strings.Cut(opts, ",")
		key, val, ok := strings.Cut(opt, "=")
		var dst *time.Duration
		switch key {
		case "retry-min":
			dst = &c.RetryMin
		case "retry-max":
			dst = &c.RetryMax
		default:
			return fmt.Errorf("queue %q: unknown option %q (want retry-min=DURATION or retry-max=DURATION)", name, opt)
		}
		d, err := time.ParseDuration(val)
		switch {
		case !ok || err != nil || d <= 0:
			return fmt.Errorf("queue %q: %s %q is not a positive duration such as 250ms or 1m", name, key, val)
		case *dst != 0:
			return fmt.Errorf("queue %q: %s given twice", name, key)
		}
		*dst = d
	}
	*q = append(*q, c)
	return nil
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	fs.StringVar(&m.listen, "listen", ":4000", "`host:port` to serve on (port 0 picks a free port)")
	fs.StringVar(&m.authkeyFile, "authkey-file", "", "`file` holding the shared authkey (else $"+auth.EnvKeyFile+" or $"+auth.EnvKey+")")
	fs.Var(&m.queues, "queue", "queue to serve, as `name[:maxsize][,retry-min=D][,retry-max=D]`; repeat for more (default tasks and results, unbounded)")
	fs.DurationVar(&m.lease, "lease", queue.DefaultLeaseTime, "how long a slave may hold a task without acking or extending it")
	fs.IntVar(&m.maxAttempts, "max-attempts", queue.DefaultMaxAttempts, "deliveries of a task before it moves to <queue>.dead")
	fs.DurationVar(&m.retryMin, "retry-min", queue.DefaultRetryMin, "wait before the first retry of a failed task, doubled for each retry after")
	fs.DurationVar(&m.retryMax, "retry-max", 0, "longest wait before a retry (default "+queue.DefaultRetryMax.String()+", or -retry-min if that is longer)")
	fs.IntVar(&m.maxMessageSize, "max-message-size", server.DefaultMaxMessageSize, "largest message in `bytes` a peer may send")
	fs.DurationVar(&m.authTimeout, "auth-timeout", server.DefaultAuthTimeout, "close a connection that has not authenticated within this time")
	fs.IntVar(&m.maxConns, "max-conns", server.DefaultMaxConns, "most connections open at once (lowered to fit the open-file limit); past it a new connection is refused")
	fs.IntVar(&m.maxUnauthConns, "max-unauth-conns", server.DefaultMaxUnauthConns, "most connections not yet authenticated; past it the oldest of them is closed to make room")
	fs.IntVar(&m.maxStreams, "max-streams", server.DefaultMaxStreams, "most Consume, Put and GetStream streams open at once per connection and per session")
	fs.IntVar(&m.maxWaits, "max-waits", server.DefaultMaxWaits, "most calls waiting at once (Get for items, Join, Put for room) per connection and per session")
	fs.DurationVar(&m.refusalLogEvery, "refusal-log-interval", ratelog.DefaultInterval, "log the first few refusals of each interval this long one by one, and the rest as one summary line at its end")
	fs.IntVar(&m.maxSessions, "max-sessions", auth.DefaultMaxSessions, "most sessions (logins) held at once; past it the least recently used one without an open stream is forgotten")
	fs.DurationVar(&m.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long slaves get to finish the tasks they hold")
	fs.StringVar(&m.tlsCert, "tls-cert", "", "PEM certificate `file`; enables TLS with -tls-key")
	fs.StringVar(&m.tlsKey, "tls-key", "", "PEM private key `file` of -tls-cert")
	fs.StringVar(&m.tlsClientCA, "tls-client-ca", "", "PEM CA `file`; slaves must present a certificate it signed (mutual TLS)")
	fs.StringVar(&m.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.StringVar(&m.logFormat, "log-format", "text", "text, or json for machines")
	fs.BoolVar(&m.healthcheck, "healthcheck", false, "probe the health service of the master at -listen, exit 0 if SERVING, 1 otherwise (for container healthchecks)")
	fs.StringVar(&m.debugAddr, "debug-addr", "", "serve Go profiles (/debug/pprof/) on this `host:port`; off when empty")
	fs.StringVar(&m.httpAddr, "http-addr", os.Getenv(EnvHTTPAddr), "serve Prometheus metrics at /metrics and the dashboard at "+dashboard.Path+" on this `host:port` (else $"+EnvHTTPAddr+"; a loopback address is best); off when empty")
	fs.BoolVar(&m.dashboard, "dashboard", true, "with -http-addr, also serve the web dashboard at "+dashboard.Path+" (log in with the authkey or -dashboard-credential-file)")
	fs.StringVar(&m.dashCredFile, "dashboard-credential-file", "", "`file` holding the dashboard's login credential, 16 bytes or more (else $"+dashboard.EnvCredentialFile+"; else the authkey)")
	fs.IntVar(&m.demoN, "demo", 0, "also be the recipe's producer: put `N` random numbers, check the N squares that come back, then exit")
	fs.StringVar(&m.addrFile, "addr-file", "", "write the bound `host:port` to this file once serving (for scripts using -listen with port 0)")
	fs.IntVar(&m.demoSlaves, "demo-slaves", 0, "with -demo: put the first task once `N` consumers (slaves) read the task queue, so the summary times the work, not their start-up (0: at once)")
	fs.StringVar(&m.demoProgress, "demo-progress", "auto", "demo progress display: bar, log, or auto (a bar on a terminal)")
	fs.StringVar(&m.dataDir, "data-dir", os.Getenv(EnvDataDir), "keep every queue on disk in this `directory` (else $"+EnvDataDir+"; empty: queues live in memory and a restart loses them)")
	fs.StringVar(&m.fsync, "fsync", "always", "with -data-dir, when a change counts as on disk: always (fdatasync before the answer: survives a power loss) or interval (written before the answer, synced every -fsync-interval: survives a crash of the master, not of the machine)")
	fs.DurationVar(&m.fsyncInterval, "fsync-interval", wal.DefaultSyncInterval, "with -fsync interval, how often the log is synced")
	fs.DurationVar(&m.dedupWindow, "dedup-window", queue.DefaultDedupWindow, "how long after a producer's last put its put sequences are remembered, so that a put it resends (its answer lost) is stored once")
	fs.BoolVar(&m.salvageLog, "salvage-log", false, "with -data-dir, start from what is readable of a log damaged in the middle, dropping what is not (reported), instead of refusing to start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if m.demoN < 0 {
		return fmt.Errorf("-demo %d: want a positive number of tasks", m.demoN)
	}
	if m.demoSlaves < 0 || (m.demoSlaves > 0 && m.demoN == 0) {
		return fmt.Errorf("-demo-slaves %d: want 0 or more slaves, with -demo", m.demoSlaves)
	}
	switch m.demoProgress {
	case "auto", "bar", "log":
	default:
		return fmt.Errorf("-demo-progress %q: want bar, log or auto", m.demoProgress)
	}
	if _, err := wal.ParseFsyncMode(m.fsync); err != nil {
		return fmt.Errorf("-fsync %q: want always or interval", m.fsync)
	}
	if m.fsyncInterval < time.Millisecond || m.fsyncInterval > time.Minute {
		return fmt.Errorf("-fsync-interval %v: want 1ms to 1m", m.fsyncInterval)
	}
	if m.salvageLog && m.dataDir == "" {
		return errors.New("-salvage-log needs -data-dir")
	}
	if m.dataDir != "" && m.maxMessageSize > maxDurableMessage {
		// Every change is one log record: an item as large as a message
		// must fit one, with room for the rest of its command.
		return fmt.Errorf("-max-message-size %d: at most %d with -data-dir (a log record holds at most %d bytes)",
			m.maxMessageSize, maxDurableMessage, wal.DefaultMaxRecord)
	}
	if m.shutdownTimeout < 0 {
		return fmt.Errorf("-shutdown-timeout %v is negative", m.shutdownTimeout)
	}
	if m.refusalLogEvery < time.Second || m.refusalLogEvery > 24*time.Hour {
		return fmt.Errorf("-refusal-log-interval %v: want 1s to 24h", m.refusalLogEvery)
	}
	if m.authTimeout < 10*time.Millisecond || m.authTimeout > time.Hour {
		return fmt.Errorf("-auth-timeout %v: want 10ms to 1h", m.authTimeout)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"-max-conns", m.maxConns}, {"-max-unauth-conns", m.maxUnauthConns},
		{"-max-streams", m.maxStreams}, {"-max-waits", m.maxWaits}, {"-max-sessions", m.maxSessions},
	} {
		if f.v < 1 || f.v > 1<<24 {
			return fmt.Errorf("%s %d: want 1 to %d", f.name, f.v, 1<<24)
		}
	}
	if m.retryMin <= 0 || m.retryMin > queue.MaxRetryDelay {
		return fmt.Errorf("-retry-min %v: want more than 0 and at most %v", m.retryMin, queue.MaxRetryDelay)
	}
	if m.retryMax != 0 && (m.retryMax < m.retryMin || m.retryMax > queue.MaxRetryDelay) {
		return fmt.Errorf("-retry-max %v: want from -retry-min (%v) to %v", m.retryMax, m.retryMin, queue.MaxRetryDelay)
	}
	// The rest (a queue's retry bounds against the master's, the lease, the
	// attempts) is checked as the broker will check it, so that it too is
	// a bad flag rather than a failure to start.
	cfg := m.brokerConfig(nil)
	if err := cfg.Validate(); err != nil {
		return err
	}
	return nil
}

// brokerConfig is the broker's configuration from the flags.
func (m *Main) brokerConfig(log hclog.Logger) queue.Config {
	return queue.Config{
		Queues:      []queue.QueueConfig(m.queues),
		LeaseTime:   m.lease,
		MaxAttempts: m.maxAttempts,
		RetryMin:    m.retryMin,
		RetryMax:    m.retryMax,
		DedupWindow: m.dedupWindow,
		Logger:      log,
	}
}

// Run serves until ctx ends or, with -demo, until the demo is over. With
// -healthcheck it only probes the master at -listen.
func (m *Main) Run(ctx context.Context) error {
	if m.healthcheck {
		addr, err := healthcheck.LocalAddr(m.listen)
		if err != nil {
			return err
		}
		return healthcheck.Probe(ctx, addr, m.tlsCert != "", 3*time.Second)
	}
	log, err := logging.New(logging.Config{Name: "master", Level: m.logLevel, Format: m.logFormat}, m.stderr)
	if err != nil {
		return err
	}
	key, err := auth.LoadKey(m.authkeyFile)
	if err != nil {
		return err
	}
	if m.debugAddr != "" {
		dbg, err := debug.Listen(m.debugAddr)
		if err != nil {
			return err
		}
		defer dbg.Close()
		log.Info("serving profiles", "addr", dbg.Addr().String())
	}
	if len(key) < 16 {
		log.Warn("the authkey is short; use at least 16 random bytes", "bytes", len(key))
	}
	tlsCfg, err := tlsconfig.Server(m.tlsCert, m.tlsKey, m.tlsClientCA)
	if err != nil {
		return err
	}
	queues := []queue.QueueConfig(m.queues)
	if m.demoN > 0 && len(queues) > 0 && !(hasQueue(queues, "tasks") && hasQueue(queues, "results")) {
		return errors.New("-demo needs the queues tasks and results")
	}
	inc, err := incarnation()
	if err != nil {
		return err
	}
	bcfg := m.brokerConfig(log.Named("queue"))
	bcfg.Incarnation = inc
	mm := newMasterMetrics(m.httpAddr)
	var store *durable.Store
	if m.dataDir != "" {
		mode, _ := wal.ParseFsyncMode(m.fsync)
		store, err = durable.Open(durable.Config{
			Dir:          m.dataDir,
			Fsync:        mode,
			SyncInterval: m.fsyncInterval,
			Salvage:      m.salvageLog,
			LockInfo:     "listening on " + m.listen,
			Logger:       log.Named("data"),
			OnGroup:      mm.onGroup(),
		})
		if err != nil {
			return fmt.Errorf("-data-dir %s: %w", m.dataDir, err)
		}
		// Closed after the broker (deferred calls run last first): the
		// broker's last changes are logged, then synced.
		defer func() {
			if err := store.Close(); err != nil {
				log.Error("closing the data directory's log", "error", err)
			}
		}()
		store.LogRecovery()
		bcfg.State, bcfg.Journal = store.State(), store.Journal()
	}
	broker, err := queue.New(bcfg)
	if err != nil {
		return err
	}
	defer broker.Close()
	if store != nil {
		if m.demoN > 0 {
			if err := emptyForDemo(broker); err != nil {
				return err
			}
		}
		if err := store.Start(broker, inc, version()); err != nil {
			return err
		}
	}
	maxConns, maxUnauth := m.connLimits(log)
	// One rate limit for every refusal, whichever component refuses.
	refusals := ratelog.New(log.Named("refusals"), ratelog.Config{What: "refusals", Interval: m.refusalLogEvery})
	defer refusals.Close()
	authSrv, err := auth.NewServer(auth.ServerConfig{
		Key:         key,
		MaxSessions: m.maxSessions,
		Logger:      log.Named("auth"),
		Refusals:    refusals,
	})
	if err != nil {
		return err
	}
	defer authSrv.Close()
	srv, err := server.New(server.Config{
		Listen:         m.listen,
		Broker:         broker,
		Auth:           authSrv,
		TLS:            tlsCfg,
		MaxMessageSize: m.maxMessageSize,
		MaxConns:       maxConns,
		MaxUnauthConns: maxUnauth,
		AuthTimeout:    m.authTimeout,
		MaxStreams:     m.maxStreams,
		MaxWaits:       m.maxWaits,
		Refusals:       refusals,
		Logger:         log.Named("server"),
		Options:        mm.serverOptions(),
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	src := metrics.MasterSources{Queues: broker.Queues, Conns: srv.Conns, Sessions: authSrv.Sessions, Refusals: refusals.Totals}
	if store != nil {
		src.Log = store.Stats
	}
	dash, err := m.dashboardRoutes(broker, key, log.Named("dashboard"))
	if err != nil {
		return err
	}
	web, err := mm.serve(m.httpAddr, src, srv, dash, log.Named("http"))
	if err != nil {
		return err
	}
	if web != nil {
		defer web.Close()
		if dash != nil {
			log.Info("serving the dashboard", "url", "http://"+web.Addr().String()+dashboard.Path)
		}
	}

	if m.addrFile != "" {
		if err := writeFileAtomic(m.addrFile, srv.Addr().String()+"\n"); err != nil {
			return err
		}
	}

	if tlsCfg == nil {
		log.Warn("TLS is off: payloads travel unencrypted (the authkey never does); use -tls-cert and -tls-key across untrusted networks")
	}
	names := make([]string, 0)
	for _, q := range broker.Queues() {
		names = append(names, q.Name())
	}
	retryMin, retryMax := broker.RetryBackoff()
	log.Info("master serving", "addr", srv.Addr().String(), "queues", strings.Join(names, ","),
		"lease", m.lease, "max_attempts", broker.MaxAttempts(), "retry_min", retryMin, "retry_max", retryMax,
		"queue_retry", queueRetries(broker), "tls", tlsCfg != nil,
		"max_conns", maxConns, "max_unauth_conns", maxUnauth, "auth_timeout", m.authTimeout,
		"max_streams", m.maxStreams, "max_waits", m.maxWaits, "data_dir", dataDirText(m.dataDir), "fsync", fsyncText(m))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()

	demoDone := make(chan error, 1)
	if m.demoN > 0 {
		go func() { demoDone <- m.runDemo(ctx, broker, log) }()
	}

	var result error
	select {
	case <-ctx.Done():
		log.Info("signal received; shutting down", "grace", m.shutdownTimeout)
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case result = <-demoDone:
	}
	sctx, cancel := context.WithTimeout(context.Background(), m.shutdownTimeout)
	defer cancel()
	srv.Shutdown(sctx)
	if store != nil {
		// The leases of unary Gets still held end here, their attempt
		// counted in the log: a clean restart keeps every attempt count.
		if n := broker.ReleaseLeases(); n > 0 {
			log.Info("leases of unsettled gets released; the items are ready again", "items", n)
		}
	}
	logLeftovers(log, broker, m.dataDir)
	log.Info("master stopped")
	return result
}

// maxDurableMessage is the largest -max-message-size a durable master
// takes: half a log record, as the default message size is.
const maxDurableMessage = wal.DefaultMaxRecord / 2

// dataDirText names where the queues are kept, for the serving line.
func dataDirText(dir string) string {
	if dir == "" {
		return "none (queues in memory: a restart loses them)"
	}
	return dir
}

func fsyncText(m *Main) string {
	switch {
	case m.dataDir == "":
		return "n/a"
	case m.fsync == "interval":
		return "interval " + m.fsyncInterval.String()
	}
	return m.fsync
}

// EnvDataDir names the environment variable that gives -data-dir.
const EnvDataDir = "DISTQ_DATA_DIR"

// version is the master's module version, for the log's start records.
func version() string {
	if bi, ok := runtimedebug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// emptyForDemo refuses a demo over queues that hold items from before: the
// demo checks every result it reads against the tasks it put.
func emptyForDemo(b *queue.Broker) error {
	for _, name := range []string{"tasks", "results"} {
		q, err := b.Queue(name)
		if err != nil {
			return err
		}
		if st := q.Stats(); st.Ready+st.Delayed > 0 || st.Closed {
			return fmt.Errorf("-demo needs empty, open queues, but %q (kept in -data-dir from an earlier run) holds %d items or was closed; use another -data-dir", name, st.Ready+st.Delayed)
		}
	}
	return nil
}

// incarnation draws this run's incarnation (queue.Config.Incarnation): at
// random, so that two runs of a master share it with a chance of 2^-64,
// and a late settle from before a restart is refused instead of settling
// the new master's item that has the same numbers.
func incarnation() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("drawing the incarnation: %w", err)
		}
		if n := binary.LittleEndian.Uint64(b[:]); n != 0 {
			return n, nil
		}
	}
}

// fdReserve is how many open files the master keeps for itself beyond its
// connections: listeners, standard streams, the poller, profiles.
const fdReserve = 64

// connLimits raises the open-file limit as far as it goes and fits the
// connection caps under it, so that the master never runs out of file
// descriptors before it reaches its own caps: past them it chooses which
// connection to drop, and real clients keep getting in.
func (m *Main) connLimits(log hclog.Logger) (maxConns, maxUnauth int) {
	maxConns, maxUnauth = m.maxConns, m.maxUnauthConns
	// Go's runtime already raises the soft limit to the hard one at start
	// on Linux; Raise does it wherever it has not.
	lim, err := fdlimit.Raise()
	switch {
	case err != nil:
		log.Warn("could not raise the open-file limit", "error", err, "soft", lim.Soft, "hard", lim.Hard)
	case lim.Raised:
		log.Info("open-file limit: soft limit raised to the hard limit", "limit", lim.Soft)
	case lim.Known:
		// Go's runtime raises the soft limit to the hard one as it starts.
		log.Info("open-file limit: the soft limit is the hard limit (raised at start if it was lower)", "limit", lim.Soft)
	}
	if lim.Known && lim.Soft < uint64(maxConns)+fdReserve {
		fit := max(int(min(lim.Soft, 1<<30))-fdReserve, 1)
		log.Warn("-max-conns lowered to fit the open-file limit; raise the limit (ulimit -n) to serve more", "max_conns", m.maxConns, "now", fit, "open_file_limit", lim.Soft)
		maxConns = fit
	}
	return maxConns, min(maxUnauth, maxConns)
}

// writeFileAtomic writes through a temporary file and a rename, so that a
// script polling for the file never reads it half written.
func writeFileAtomic(name, content string) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("-addr-file: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("-addr-file: %w", err)
	}
	return nil
}

func hasQueue(qs []queue.QueueConfig, name string) bool {
	for _, q := range qs {
		if q.Name == name {
			return true
		}
	}
	return false
}

// queueRetries lists the queues whose retry backoff is not the master's,
// as "name=min..max", or says "none".
func queueRetries(b *queue.Broker) string {
	lo, hi := b.RetryBackoff()
	var out []string
	for _, q := range b.Queues() {
		if qlo, qhi := q.RetryBackoff(); !q.IsDead() && (qlo != lo || qhi != hi) {
			out = append(out, fmt.Sprintf("%s=%v..%v", q.Name(), qlo, qhi))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// logLeftovers says what the master leaves at exit: the items ready,
// leased, or delayed before a retry, which an in-memory master loses
// (plainly, as a warning) and a durable one keeps in dir for its next
// start.
func logLeftovers(log hclog.Logger, b *queue.Broker, dir string) {
	for _, q := range b.Queues() {
		st := q.Stats()
		n := st.Ready + st.Leased + st.Delayed
		switch {
		case n == 0:
		case dir == "":
			log.Warn("items dropped at exit: queues are in memory", "queue", st.Name, "items", n, "delayed", st.Delayed)
		default:
			log.Info("items kept on disk for the next start", "queue", st.Name, "items", n, "delayed", st.Delayed, "dir", dir)
		}
	}
}

func (m *Main) runDemo(ctx context.Context, b *queue.Broker, log hclog.Logger) error {
	tasks, _ := b.Queue("tasks")
	results, _ := b.Queue("results")
	cfg := demo.Config{
		N:          m.demoN,
		Slaves:     m.demoSlaves,
		Tasks:      tasks,
		Results:    results,
		Logger:     log.Named("demo"),
		CloseTasks: true,
		Sync:       b.Sync,
	}
	bar := m.demoProgress == "bar"
	if m.demoProgress == "auto" {
		if f, ok := m.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			bar = true
		}
	}
	if bar {
		cfg.Bar = m.stderr
	}
	log.Info("demo: producing tasks", "tasks", m.demoN)
	sum, err := demo.Run(ctx, cfg)
	sum.Write(m.stdout)
	if err != nil {
		return err
	}
	if !sum.OK() {
		return errors.New("demo failed: not every task came back exactly once with the right square")
	}
	return nil
}
