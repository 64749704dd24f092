package httpserve

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/distq/distq/internal/testlog"
)

func TestServeAndClose(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") })
	s, err := Listen("127.0.0.1:0", "-http-addr", mux, testlog.New(t, "http"))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + s.Addr().String()
	resp, err := http.Get(url + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hi" {
		t.Fatalf("GET /hello: %d %q", resp.StatusCode, b)
	}
	// Headers past MaxHeaderBytes are refused before any handler runs.
	req, _ := http.NewRequest("GET", url+"/hello", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 2*MaxHeaderBytes))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a %d-byte header: %d, want 431", 2*MaxHeaderBytes, resp.StatusCode)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	if _, err := http.Get(url + "/hello"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
}

func TestListenError(t *testing.T) {
	_, err := Listen("256.0.0.1:0", "-http-addr", http.NewServeMux(), nil)
	if err == nil || !strings.Contains(err.Error(), `-http-addr "256.0.0.1:0"`) {
		t.Fatalf("err %v; want one naming the flag and address", err)
	}
}
