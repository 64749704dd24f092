package bench

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/benchmark"
)

func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := benchmark.StartServer(benchmark.ServerInfo{Type: "protobuf", Listener: l})
	t.Cleanup(stop)
	return l.Addr().String()
}

func TestGRPCPingLoad(t *testing.T) {
	addr := echoServer(t)
	var out bytes.Buffer
	if err := runGRPCPing(t.Context(), []string{"-server", addr, "-conns", "3", "-size", "100", "-duration", "200ms"}, &out); err != nil {
		t.Fatal(err)
	}
	var res LoadResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if res.Conns != 3 || res.Size != 100 || res.RoundTrips <= 0 || res.Seconds <= 0 {
		t.Fatalf("result %+v", res)
	}
}

// With -start-at every process measures from the same moment; one that
// connects after it fails rather than measure alone.
func TestGRPCPingStartAt(t *testing.T) {
	addr := echoServer(t)
	// -start-at is in whole ms: the child starts at the truncated time, up
	// to a millisecond before a time.Now()+300ms taken here (this test
	// once failed by that margin).
	at := time.UnixMilli(time.Now().Add(300 * time.Millisecond).UnixMilli())
	var out bytes.Buffer
	if err := runGRPCPing(t.Context(), []string{"-server", addr, "-duration", "100ms", "-start-at", strconv.FormatInt(at.UnixMilli(), 10)}, &out); err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(at.Add(100 * time.Millisecond)) {
		t.Fatalf("measured before -start-at")
	}
	past := strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)
	if err := runGRPCPing(t.Context(), []string{"-server", addr, "-duration", "100ms", "-start-at", past}, &out); err == nil || !strings.Contains(err.Error(), "after -start-at") {
		t.Fatalf("a -start-at in the past: %v; want an error", err)
	}
}

func TestGRPCPingPaced(t *testing.T) {
	addr := echoServer(t)
	var out bytes.Buffer
	if err := runGRPCPing(t.Context(), []string{"-server", addr, "-rate", "200", "-duration", "250ms"}, &out); err != nil {
		t.Fatal(err)
	}
	var res LatencyResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if res.Sent != 50 || res.Count != 50 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms {
		t.Fatalf("result %+v: want 50 samples", res)
	}
}

func TestGRPCPingFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-server", "127.0.0.1:1", "-conns", "0"},
		{"-server", "127.0.0.1:1", "-conns", "2", "-rate", "10"},
		{"-server", "127.0.0.1:1", "-duration", "0s"},
	} {
		if err := runGRPCPing(t.Context(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("grpc-ping %q accepted", args)
		}
	}
}

// A credit's batch grows with the credit, at about ten bytes a task.
func TestCreditBytes(t *testing.T) {
	one, many := creditBytes(1), creditBytes(256)
	if per := float64(many-one) / 255; per < 6 || per > 16 {
		t.Fatalf("creditBytes(1) = %d, (256) = %d: %.1f bytes a task", one, many, per)
	}
}
