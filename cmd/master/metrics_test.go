package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTPAddrFlagAndEnv(t *testing.T) {
	t.Setenv(EnvHTTPAddr, "127.0.0.1:9400")
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags(nil); err != nil || m.httpAddr != "127.0.0.1:9400" {
		t.Fatalf("from the environment: %q, %v", m.httpAddr, err)
	}
	m = NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"-http-addr", ""}); err != nil || m.httpAddr != "" {
		t.Fatalf("the flag wins: %q, %v", m.httpAddr, err)
	}
}

// lineWatch is a log writer that says when a line holding substr came.
type lineWatch struct {
	mu     sync.Mutex
	buf    strings.Builder
	substr string
	line   chan string
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, l := range strings.Split(string(p), "\n") {
		if w.substr != "" && strings.Contains(l, w.substr) {
			w.line <- l
			w.substr = ""
		}
	}
	return len(p), nil
}

// The master serves /metrics on -http-addr while it runs, and stops
// serving when it stops.
func TestMetricsServedWhileRunning(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("master-metrics-test-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lineWatch{substr: "serving metrics", line: make(chan string, 1)}
	m := NewMain(io.Discard, logs)
	if err := m.ParseFlags([]string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-http-addr", "127.0.0.1:0", "-shutdown-timeout", "1s"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var line string
	select {
	case line = <-logs.line:
	case err := <-done:
		t.Fatalf("Run returned before serving metrics: %v", err)
	}
	_, rest, _ := strings.Cut(line, "addr=")
	url := "http://" + strings.Fields(rest)[0] + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`distq_queue_ready{queue="tasks"} 0`, "distq_sessions 0", "go_goroutines", "process_resident_memory_bytes",
		`distq_grpc_server_started_total{grpc_method="Consume",grpc_service="distq.v1.QueueService",grpc_type="bidi_stream"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(body), "distq_log_") {
		t.Error("/metrics of a master without -data-dir shows log metrics")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context ended")
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("/metrics still served after the master stopped")
	}
}
