package distq

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/packed"
	pb "github.com/distq/distq/proto/distq/v1"
)

// fakeQueues is a master's QueueService that serves Put alone: it stores
// nothing but ids, deduplicates puts by (producer_id, queue, sequence) as
// queue.proto says when dedup is set, and loses answers on request, so
// that tests can tell what the client sends again.
type fakeQueues struct {
	pb.UnimplementedQueueServiceServer
	dedup bool
	// fault says what to do with the i-th request received (0 first);
	// nil answers every one.
	fault func(i int) fakeFault

	mu     sync.Mutex
	nextID uint64
	stored map[fakeKey][]uint64
	got    []fakePut
	kill   func() // breaks every connection of the serving master

	// arrived receives every request as it arrives, for tests that act
	// while a put is under way.
	arrived chan fakePut
}

type fakeKey struct {
	producer, queue string
	seq             uint64
}

// fakePut is what the master saw of one PutRequest, and the ids it
// assigned or found.
type fakePut struct {
	queue    string
	producer []byte
	seq      uint64
	n        int
	ids      []uint64
}

type fakeFault struct {
	kind faultKind
	code codes.Code // refuse, partialThen
	msg  string
}

type faultKind int

const (
	answer      faultKind = iota
	unavailable           // store, then end the stream with UNAVAILABLE
	dropConn              // store, then break the connection (a crash)
	hold                  // store, then wait for the stream to end
	refuse                // store nothing, end the stream with code
	partialThen           // store the first item, answer it, end the stream with code
)

func newFakeQueues(dedup bool) *fakeQueues {
	return &fakeQueues{dedup: dedup, stored: map[fakeKey][]uint64{}, arrived: make(chan fakePut, 1000)}
}

func (f *fakeQueues) Put(stream pb.QueueService_PutServer) error {
	ctx := stream.Context()
	queue := ""
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetQueue() != "" {
			queue = req.GetQueue()
		}
		p := fakePut{queue: queue, producer: bytes.Clone(req.GetProducerId()), seq: req.GetSequence(),
			n: len(req.GetItems()) + packed.Len(req.GetPacked())}
		f.mu.Lock()
		i := len(f.got)
		var ft fakeFault
		if f.fault != nil {
			ft = f.fault(i)
		}
		dup := false
		switch ft.kind {
		case refuse:
		case partialThen:
			p.ids, dup = f.storeLocked(p, 1)
		default:
			p.ids, dup = f.storeLocked(p, p.n)
		}
		f.got = append(f.got, p)
		kill := f.kill
		f.mu.Unlock()
		select {
		case f.arrived <- p:
		default:
		}
		switch ft.kind {
		case answer:
			if err := stream.Send(&pb.PutResponse{Ids: p.ids, Duplicate: dup, Dedup: f.dedup}); err != nil {
				return err
			}
			continue
		case unavailable:
			return status.Error(codes.Unavailable, "fake: the answer is lost")
		case refuse:
			return status.Error(ft.code, ft.msg)
		case partialThen:
			if err := stream.Send(&pb.PutResponse{Ids: p.ids, Duplicate: dup, Dedup: f.dedup}); err != nil {
				return err
			}
			return status.Error(ft.code, ft.msg)
		case dropConn:
			kill()
		}
		// dropConn, hold: the stream ends with the connection or the master.
		<-ctx.Done()
		return ctx.Err()
	}
}

// storeLocked gives p's first want items ids: those of the same put stored
// before when the master deduplicates, new ones for the rest.
func (f *fakeQueues) storeLocked(p fakePut, want int) (ids []uint64, dup bool) {
	key := fakeKey{string(p.producer), p.queue, p.seq}
	if f.dedup && len(p.producer) > 0 {
		ids = f.stored[key]
		dup = len(ids) > 0
	}
	for len(ids) < want {
		f.nextID++
		ids = append(ids, f.nextID)
	}
	if f.dedup && len(p.producer) > 0 {
		f.stored[key] = ids
	}
	return slices.Clone(ids), dup
}

// puts is what the master has received so far.
func (f *fakeQueues) puts() []fakePut {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// storedItems is how many ids the master gave out: items stored.
func (f *fakeQueues) storedItems() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nextID
}

// fakeMaster serves fakeQueues and the real auth service on loopback.
type fakeMaster struct {
	addr     string
	srv      *grpc.Server
	auth     *auth.Server
	lis      *trackingListener
	served   chan struct{}
	stopOnce sync.Once
}

func startFakeMaster(t testing.TB, f *fakeQueues, addr string) *fakeMaster {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewServer(auth.ServerConfig{Key: testKey, Logger: testLogger(t, "fake-auth")})
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{addr: l.Addr().String(), srv: grpc.NewServer(a.ServerOptions()...), auth: a,
		lis: &trackingListener{Listener: l}, served: make(chan struct{})}
	pb.RegisterAuthServiceServer(m.srv, a)
	pb.RegisterQueueServiceServer(m.srv, f)
	f.mu.Lock()
	f.kill = m.lis.closeConns
	f.mu.Unlock()
	go func() {
		m.srv.Serve(m.lis)
		close(m.served)
	}()
	t.Cleanup(m.stop)
	return m
}

// stop ends the master at once, as a crash would.
func (m *fakeMaster) stop() {
	m.stopOnce.Do(func() {
		m.srv.Stop()
		<-m.served
		m.auth.Close()
	})
}

func (m *fakeMaster) dial(t testing.TB, opts Options) *Client {
	t.Helper()
	opts.AuthKey, opts.Logger = testKey, testLogger(t, "client")
	opts.DialOptions = append(opts.DialOptions, fastReconnect)
	c, err := Dial(testContext(t), m.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trackingListener can break every connection it accepted.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func msgs(payloads ...string) []Message {
	out := make([]Message, len(payloads))
	for i, p := range payloads {
		out[i].Payload = []byte(p)
	}
	return out
}

// lostPartial answers part of a put, and then the stream breaks. (A
// partial answer followed by a broken connection cannot be played: the
// connection may break before the answer leaves.)
var lostPartial = fakeFault{kind: partialThen, code: codes.Unavailable, msg: "fake: the stream broke"}

// after faults the request of index i and answers the others.
func after(i int, ft fakeFault) func(int) fakeFault {
	return func(j int) fakeFault {
		if j == i {
			return ft
		}
		return fakeFault{}
	}
}

// prime makes one answered put, from which the client learns whether the
// master deduplicates.
func prime(t *testing.T, q *Queue) {
	t.Helper()
	if _, err := q.Put(testContext(t), []byte("prime")); err != nil {
		t.Fatal(err)
	}
}

// Every put names the client's producer id and the queue's next sequence:
// 1, 2, 3, ... per queue. Another client is another producer.
func TestPutsCarryProducerAndSequencePerQueue(t *testing.T) {
	f := newFakeQueues(false)
	m := startFakeMaster(t, f, "")
	c := m.dial(t, Options{})
	ctx := testContext(t)
	for _, name := range []string{"tasks", "results", "tasks", "tasks", "results"} {
		if _, err := c.Queue(name).PutBatch(ctx, msgs("a", "b")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Queue("tasks").PutBatch(ctx, []Message{{Payload: []byte("h"), Headers: map[string]string{"k": "v"}}}); err != nil {
		t.Fatal(err)
	}
	other := m.dial(t, Options{})
	if _, err := other.Queue("tasks").Put(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	got := f.puts()
	want := []struct {
		queue string
		seq   uint64
	}{{"tasks", 1}, {"results", 1}, {"tasks", 2}, {"tasks", 3}, {"results", 2}, {"tasks", 4}, {"tasks", 1}}
	if len(got) != len(want) {
		t.Fatalf("%d puts received, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].queue != w.queue || got[i].seq != w.seq {
			t.Fatalf("put %d: queue %q sequence %d, want %q %d", i, got[i].queue, got[i].seq, w.queue, w.seq)
		}
	}
	mine := got[0].producer
	if len(mine) != 16 || bytes.Equal(mine, make([]byte, 16)) {
		t.Fatalf("producer id %x: want 16 random bytes", mine)
	}
	for _, p := range got[:6] {
		if !bytes.Equal(p.producer, mine) {
			t.Fatalf("producer id changed: %x then %x", mine, p.producer)
		}
	}
	if bytes.Equal(got[6].producer, mine) {
		t.Fatal("two clients share a producer id")
	}
}

// Concurrent puts on one queue of one client get distinct sequences, and
// the master receives them in increasing order.
func TestConcurrentPutsGetIncreasingSequences(t *testing.T) {
	f := newFakeQueues(true)
	m := startFakeMaster(t, f, "")
	c := m.dial(t, Options{})
	ctx := testContext(t)
	const goroutines, each = 8, 10
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if _, err := c.Queue("tasks").Put(ctx, []byte("x")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := f.puts()
	if len(got) != goroutines*each {
		t.Fatalf("%d puts received, want %d", len(got), goroutines*each)
	}
	for i, p := range got {
		if p.seq != uint64(i+1) {
			t.Fatalf("put %d arrived with sequence %d, want %d", i, p.seq, i+1)
		}
	}
}

// A master that does not say dedup never gets a put twice: a put whose
// answer is lost fails, as before. So does a client that has not yet heard
// the master say dedup, and one told not to retry.
func TestPutIsNotSentAgainWithoutDedup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dedup  bool
		opts   Options
		primed bool
	}{
		{"master without dedup", false, Options{}, true},
		{"before any answer", true, Options{}, false},
		{"NoPutRetry", true, Options{NoPutRetry: true}, true},
	} {
		for _, ft := range []struct {
			name string
			ft   fakeFault
		}{
			{"UNAVAILABLE", fakeFault{kind: unavailable}},
			{"connection broken", fakeFault{kind: dropConn}},
			{"partial answer, then UNAVAILABLE", lostPartial},
		} {
			if !tc.primed && ft.ft.kind == partialThen {
				continue // the partial answer says dedup: the put is sent again
			}
			t.Run(tc.name+"/"+ft.name, func(t *testing.T) {
				f := newFakeQueues(tc.dedup)
				m := startFakeMaster(t, f, "")
				c := m.dial(t, tc.opts)
				q := c.Queue("tasks")
				lost := 0
				if tc.primed {
					prime(t, q)
					lost = 1
				}
				f.mu.Lock()
				f.fault = after(lost, ft.ft)
				f.mu.Unlock()
				ids, err := q.PutBatch(testContext(t), msgs("a", "b", "c"))
				if err == nil {
					t.Fatal("a put whose answer was lost succeeded")
				}
				got := f.puts()
				if len(got) != lost+1 {
					t.Fatalf("the master received %d puts, want %d: the lost one was sent again", len(got), lost+1)
				}
				var want []uint64 // a partial answer's ids come back with the error
				if ft.ft.kind == partialThen {
					want = got[lost].ids
				}
				if !slices.Equal(ids, want) {
					t.Fatalf("ids %v, want %v", ids, want)
				}
				// The client still works.
				if _, err := q.Put(testContext(t), []byte("after")); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// With a master that says dedup, a put whose answer is lost is sent again,
// the same request, until it is answered: with the ids first assigned, and
// stored once.
func TestLostPutIsSentAgainToADedupMaster(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []fakeFault // for the put's first sends
	}{
		{"UNAVAILABLE", []fakeFault{{kind: unavailable}}},
		{"connection broken", []fakeFault{{kind: dropConn}}},
		{"twice, then ABORTED", []fakeFault{{kind: dropConn}, {kind: unavailable}, {kind: refuse, code: codes.Aborted, msg: "fake: the same put is in progress"}}},
		{"partial answer, then UNAVAILABLE", []fakeFault{lostPartial}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeQueues(true)
			m := startFakeMaster(t, f, "")
			c := m.dial(t, Options{})
			q := c.Queue("tasks")
			prime(t, q)
			f.mu.Lock()
			f.fault = func(i int) fakeFault {
				if i >= 1 && i-1 < len(tc.faults) {
					return tc.faults[i-1]
				}
				return fakeFault{}
			}
			f.mu.Unlock()
			ids, err := q.PutBatch(testContext(t), msgs("a", "b", "c"))
			if err != nil {
				t.Fatalf("put: %v", err)
			}
			got := f.puts()
			if len(got) != 2+len(tc.faults) {
				t.Fatalf("the master received %d puts, want %d", len(got), 2+len(tc.faults))
			}
			first := got[1]
			for _, p := range got[2:] {
				if p.queue != first.queue || !bytes.Equal(p.producer, first.producer) || p.seq != first.seq || p.n != first.n {
					t.Fatalf("sent again as %+v, first as %+v", p, first)
				}
			}
			if want := got[len(got)-1].ids; !slices.Equal(ids, want) || len(ids) != 3 || (tc.faults[0].kind != partialThen && !slices.Equal(ids, first.ids)) {
				t.Fatalf("ids %v; first assigned %v, last answer %v", ids, first.ids, want)
			}
			if n := f.storedItems(); n != 4 {
				t.Fatalf("%d items stored, want 4 (the put stored once)", n)
			}
			// The next put has the next sequence.
			if _, err := q.Put(testContext(t), []byte("next")); err != nil {
				t.Fatal(err)
			}
			if last := f.puts()[len(f.puts())-1]; last.seq != first.seq+1 {
				t.Fatalf("next put's sequence %d, want %d", last.seq, first.seq+1)
			}
		})
	}
}

// A master that restarts while it holds a put (it stored it, and died
// before answering) gets it again from the client once it is back, after
// a new handshake, and answers with the first ids.
func TestLostPutIsSentAgainAcrossMasterRestart(t *testing.T) {
	f := newFakeQueues(true)
	m1 := startFakeMaster(t, f, "")
	c := m1.dial(t, Options{})
	q := c.Queue("tasks")
	prime(t, q)
	<-f.arrived
	f.mu.Lock()
	f.fault = after(1, fakeFault{kind: hold})
	f.mu.Unlock()
	type result struct {
		ids []uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		ids, err := q.PutBatch(testContext(t), msgs("a", "b"))
		done <- result{ids, err}
	}()
	held := <-f.arrived
	m1.stop()
	startFakeMaster(t, f, m1.addr) // new sessions: the client logs in again
	r := <-done
	if r.err != nil || !slices.Equal(r.ids, held.ids) {
		t.Fatalf("put across a restart: ids %v, %v; want %v", r.ids, r.err, held.ids)
	}
	if n := f.storedItems(); n != 3 {
		t.Fatalf("%d items stored, want 3", n)
	}
}

// A put is sent again only until its ctx ends, or the client closes.
func TestPutResendStopsWithCtxOrClose(t *testing.T) {
	for _, how := range []string{"ctx", "Close"} {
		t.Run(how, func(t *testing.T) {
			f := newFakeQueues(true)
			m := startFakeMaster(t, f, "")
			c := m.dial(t, Options{})
			q := c.Queue("tasks")
			prime(t, q)
			<-f.arrived
			f.mu.Lock()
			f.fault = func(i int) fakeFault { return fakeFault{kind: unavailable} }
			f.mu.Unlock()
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := q.Put(ctx, []byte("a"))
				done <- err
			}()
			for range 3 { // the first send and two more
				<-f.arrived
			}
			if how == "ctx" {
				cancel()
			} else {
				c.Close()
			}
			err := <-done
			switch {
			case how == "ctx" && !errors.Is(err, context.Canceled):
				t.Fatalf("put after its ctx ended: %v, want context.Canceled", err)
			case how == "Close" && !errors.Is(err, ErrUnavailable):
				t.Fatalf("put after Close: %v, want the lost answer's ErrUnavailable", err)
			}
		})
	}
}

// A definite answer is never sent again, even to a master that says dedup:
// the master has said what it did.
func TestDefiniteAnswersAreNotSentAgain(t *testing.T) {
	for _, tc := range []struct {
		ft   fakeFault
		kind error
		ids  int
	}{
		{fakeFault{kind: refuse, code: codes.ResourceExhausted, msg: "distq: queue full"}, ErrFull, 0},
		{fakeFault{kind: partialThen, code: codes.ResourceExhausted, msg: "distq: queue full"}, ErrFull, 1},
		{fakeFault{kind: refuse, code: codes.FailedPrecondition, msg: "distq: queue closed"}, ErrClosed, 0},
		{fakeFault{kind: refuse, code: codes.FailedPrecondition, msg: "distq: put sequence forgotten: 1 of 0123"}, ErrPutForgotten, 0},
		{fakeFault{kind: refuse, code: codes.InvalidArgument, msg: "distq: put: other items under the same sequence"}, nil, 0},
		{fakeFault{kind: refuse, code: codes.NotFound, msg: "distq: unknown queue"}, ErrUnknownQueue, 0},
		{fakeFault{kind: refuse, code: codes.PermissionDenied, msg: "fake: no"}, nil, 0},
		{fakeFault{kind: refuse, code: codes.ResourceExhausted, msg: "distq: too many streams on this session"}, nil, 0},
	} {
		t.Run(tc.ft.msg, func(t *testing.T) {
			f := newFakeQueues(true)
			m := startFakeMaster(t, f, "")
			c := m.dial(t, Options{})
			q := c.Queue("tasks")
			prime(t, q)
			f.mu.Lock()
			f.fault = after(1, tc.ft)
			f.mu.Unlock()
			ids, err := q.PutBatch(testContext(t), msgs("a", "b"))
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.ft.code || e.Kind != tc.kind {
				t.Fatalf("put: %v; want %v of kind %v", err, tc.ft.code, tc.kind)
			}
			if len(ids) != tc.ids {
				t.Fatalf("ids %v, want %d", ids, tc.ids)
			}
			if n := len(f.puts()); n != 2 {
				t.Fatalf("the master received %d puts, want 2", n)
			}
		})
	}
}

func TestLostAnswer(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		lost bool
	}{
		{live, status.Error(codes.Unavailable, "transport is closing"), true},
		{live, status.Error(codes.Internal, "stream terminated by RST_STREAM"), true},
		{live, status.Error(codes.Aborted, "the same put is in progress"), true},
		{live, status.Error(codes.Unknown, "?"), true},
		{live, status.Error(codes.DeadlineExceeded, "the master's deadline"), true},
		{live, io.ErrUnexpectedEOF, true},
		{live, status.Error(codes.ResourceExhausted, "distq: queue full"), false},
		{live, status.Error(codes.FailedPrecondition, "distq: queue closed"), false},
		{live, status.Error(codes.InvalidArgument, "bad"), false},
		{live, status.Error(codes.NotFound, "distq: unknown queue"), false},
		{live, status.Error(codes.Unauthenticated, "distq: authentication failed"), false},
		{live, ErrMasterUnverified, false},
		{ended, status.Error(codes.Unavailable, "transport is closing"), false},
		{ended, context.Canceled, false},
	} {
		// As Client.call returns it.
		if got := lostAnswer(tc.ctx, fromStatus(tc.err)); got != tc.lost {
			t.Errorf("lostAnswer(%v) = %v, want %v", tc.err, got, tc.lost)
		}
	}
}
