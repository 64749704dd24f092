package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"testing"

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
	if err := runGRPCPing(context.Background(), []string{"-server", addr, "-conns", "3", "-size", "100", "-duration", "200ms"}, &out); err != nil {
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

func TestGRPCPingPaced(t *testing.T) {
	addr := echoServer(t)
	var out bytes.Buffer
	if err := runGRPCPing(context.Background(), []string{"-server", addr, "-rate", "200", "-duration", "250ms"}, &out); err != nil {
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
		if err := runGRPCPing(context.Background(), args, &bytes.Buffer{}); err == nil {
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
