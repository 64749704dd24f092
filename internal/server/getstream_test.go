package server

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/distq/distq/internal/queue"
	pb "github.com/distq/distq/proto/distq/v1"
)

// getStream opens a GetStream whose context the test may cancel.
func getStream(t *testing.T, qc pb.QueueServiceClient) (pb.QueueService_GetStreamClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	t.Cleanup(cancel)
	stream, err := qc.GetStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream, cancel
}

// ask sends one Get on stream and returns its answer.
func ask(t *testing.T, stream pb.QueueService_GetStreamClient, g *pb.GetRequest) *pb.GetResponse {
	t.Helper()
	if err := stream.Send(&pb.GetStreamRequest{Get: g}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("Get %v: %v", g, err)
	}
	return resp.GetGet()
}

func payloadsOf(t *testing.T, r *pb.GetResponse) []string {
	t.Helper()
	var out []string
	if b := r.GetBatch(); b != nil {
		data := b.GetPayloads().GetData()
		for _, n := range b.GetPayloads().GetSizes() {
			out = append(out, string(data[:n]))
			data = data[n:]
		}
	}
	for _, d := range r.GetDeliveries() {
		out = append(out, string(d.GetPayload()))
	}
	return out
}

// Each request on a GetStream is served as a unary Get would be, in order:
// with auto_ack the items are settled as they are taken; nothing is taken
// ahead of a request; an empty queue answers nowait and timed-out
// requests empty and keeps the stream; a waiting request gets the next put.
func TestGetStreamServesGetsInOrder(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	put(t, qc, "results", "a", "b", "c", "d", "e")
	stream, _ := getStream(t, qc)

	got := ask(t, stream, &pb.GetRequest{Queue: "results", MaxItems: 2, AutoAck: true, Packed: true})
	if p := payloadsOf(t, got); len(p) != 2 || p[0] != "a" || p[1] != "b" {
		t.Fatalf("first Get: %v", p)
	}
	if st := m.queue("results").Stats(); st.Ready != 3 || st.Leased != 0 || st.AckedTotal != 2 {
		t.Fatalf("after a Get of 2 with auto_ack: %+v; want 3 ready, none leased, 2 settled", st)
	}
	// Later requests may leave the queue out; without auto_ack items are
	// leased, and the answer names the incarnation that settles them.
	got = ask(t, stream, &pb.GetRequest{MaxItems: 1})
	if len(got.GetDeliveries()) != 1 || got.GetDeliveries()[0].GetLease() == 0 || got.GetIncarnation() != m.broker.Incarnation() {
		t.Fatalf("leased Get: %v", got)
	}
	got = ask(t, stream, &pb.GetRequest{Queue: "results", MaxItems: 10, AutoAck: true})
	if p := payloadsOf(t, got); len(p) != 2 || p[0] != "d" || p[1] != "e" {
		t.Fatalf("Get of the rest: %v", p)
	}
	for _, g := range []*pb.GetRequest{{AutoAck: true, Nowait: true}, {AutoAck: true, TimeoutMs: 5}} {
		if got := ask(t, stream, g); len(payloadsOf(t, got)) != 0 || got.GetClosed() {
			t.Fatalf("Get %v on an empty queue: %v; want empty", g, got)
		}
	}
	// A waiting request takes the next put.
	if err := stream.Send(&pb.GetStreamRequest{Get: &pb.GetRequest{AutoAck: true, TimeoutMs: 10000}}); err != nil {
		t.Fatal(err)
	}
	put(t, qc, "results", "f")
	resp, err := stream.Recv()
	if p := payloadsOf(t, resp.GetGet()); err != nil || len(p) != 1 || p[0] != "f" {
		t.Fatalf("waiting Get: %v %v", p, err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v, want a clean end", err)
	}
	if st := m.queue("results").Stats(); st.Ready != 0 || st.Leased != 1 || st.AckedTotal != 5 {
		t.Fatalf("at the end: %+v", st)
	}
}

// A closed and drained queue is answered with closed, and the stream stays
// open: the reader may ask again and hears the same.
func TestGetStreamClosedAndDrained(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	put(t, qc, "results", "a")
	stream, _ := getStream(t, qc)
	if _, err := qc.Close(testContext(t), &pb.CloseRequest{Queue: "results"}); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, stream, &pb.GetRequest{Queue: "results", AutoAck: true}); len(payloadsOf(t, got)) != 1 || got.GetClosed() {
		t.Fatalf("closed, not drained: %v", got)
	}
	for range 2 {
		if got := ask(t, stream, &pb.GetRequest{AutoAck: true}); !got.GetClosed() {
			t.Fatalf("closed and drained: %v; want closed", got)
		}
	}
}

// An unknown queue, a second queue and a Get above the limit end the
// stream with their status.
func TestGetStreamRefusals(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	for _, reqs := range [][]*pb.GetRequest{
		{{Queue: "nope"}},
		{{}},
		{{Queue: "tasks", Nowait: true}, {Queue: "results"}},
		{{Queue: "tasks", MaxItems: maxGetItems + 1}},
	} {
		stream, _ := getStream(t, qc)
		for _, g := range reqs {
			if err := stream.Send(&pb.GetStreamRequest{Get: g}); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		for err == nil {
			_, err = stream.Recv()
		}
		want := codes.InvalidArgument
		if reqs[0].GetQueue() == "nope" || reqs[0].GetQueue() == "" {
			want = codes.NotFound
		}
		wantCode(t, err, want)
	}
}

// syncGate is a journal whose syncs happen only when the test says:
// WaitContext reports the LSN it waits for on waits, and blocks until
// release has made it durable.
type syncGate struct {
	waits chan uint64

	mu      sync.Mutex
	last    uint64
	durable uint64
	moved   chan struct{}
}

var _ queue.Journal = (*syncGate)(nil)

func newSyncGate() *syncGate {
	return &syncGate{waits: make(chan uint64, 64), moved: make(chan struct{})}
}

func (g *syncGate) Append([]byte) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last++
	return g.last, nil
}

func (g *syncGate) LastLSN() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

func (g *syncGate) Durable() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.durable
}

func (g *syncGate) WaitContext(ctx context.Context, lsn uint64) error {
	select {
	case g.waits <- lsn:
	default:
	}
	for {
		g.mu.Lock()
		d, ch := g.durable, g.moved
		g.mu.Unlock()
		if lsn <= d {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *syncGate) AdmitPut() error { return nil }
func (g *syncGate) Admit() error    { return nil }

// release makes every record appended so far durable.
func (g *syncGate) release() {
	g.mu.Lock()
	g.durable = g.last
	close(g.moved)
	g.moved = make(chan struct{})
	g.mu.Unlock()
}

// With auto_ack, a GetStream answer leaves only once the record that
// settled its items is durable, as a unary Get's does: a crash before then
// makes the items ready again, and no reader has seen them.
func TestGetStreamAnswersOnceTheSettleIsDurable(t *testing.T) {
	gate := newSyncGate()
	m := startMaster(t, masterConfig{Journal: gate})
	qc := m.rawClient(t)
	results := m.queue("results")
	if _, err := results.Put(testContext(t), []queue.Message{{Payload: []byte("a")}, {Payload: []byte("b")}}, true, 0); err != nil {
		t.Fatal(err)
	}
	gate.release() // the put's record is durable
	made := gate.LastLSN()
	for len(gate.waits) > 0 {
		<-gate.waits
	}

	stream, _ := getStream(t, qc)
	if err := stream.Send(&pb.GetStreamRequest{Get: &pb.GetRequest{Queue: "results", MaxItems: 2, AutoAck: true}}); err != nil {
		t.Fatal(err)
	}
	answers := make(chan *pb.GetResponse, 1)
	go func() {
		resp, err := stream.Recv()
		if err != nil {
			t.Errorf("Recv: %v", err)
		}
		answers <- resp.GetGet()
	}()
	// The master waits for the settle's record, appended after the put's.
	select {
	case lsn := <-gate.waits:
		if lsn <= made {
			t.Fatalf("the answer waits for LSN %d; want the settle's, after %d", lsn, made)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the master did not wait for the settle's record")
	}
	if st := results.Stats(); st.AckedTotal != 2 {
		t.Fatalf("taken: %+v", st)
	}
	select {
	case got := <-answers:
		t.Fatalf("answered before the settle was durable: %v", got)
	case <-time.After(50 * time.Millisecond):
	}
	gate.release()
	select {
	case got := <-answers:
		if len(got.GetDeliveries()) != 2 {
			t.Fatalf("answer: %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer once the settle was durable")
	}
}
