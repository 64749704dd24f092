package healthcheck

import (
	"context"
	"testing"
	"time"
)

func TestProbeFollowsStatus(t *testing.T) {
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr().String()
	ctx := context.Background()
	if err := Probe(ctx, addr, false, 5*time.Second); err == nil {
		t.Fatal("probe passed while NOT_SERVING")
	}
	s.SetServing(true)
	if err := Probe(ctx, addr, false, 5*time.Second); err != nil {
		t.Fatalf("probe failed while SERVING: %v", err)
	}
	s.Close()
	s.Close()
	if err := Probe(ctx, addr, false, time.Second); err == nil {
		t.Fatal("probe passed with the server gone")
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{":4000": "127.0.0.1:4000", "0.0.0.0:1": "127.0.0.1:1", "10.1.2.3:9": "10.1.2.3:9", "[::]:5": "127.0.0.1:5"} {
		got, err := LocalAddr(in)
		if err != nil || got != want {
			t.Errorf("LocalAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := LocalAddr("nonsense"); err == nil {
		t.Error("LocalAddr accepted an address without a port")
	}
}
