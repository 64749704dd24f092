//go:build cluster

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The profile "metrics": a Prometheus built from Debian's package scrapes
// the master and every slave of the cluster, and the master's /metrics is
// published on the host's loopback. During a demo run, Prometheus sees the
// master and the three slaves up and their counters moving.
func TestMetricsInCluster(t *testing.T) {
	if err := exec.Command("docker", "image", "inspect", "distq-prometheus:latest").Run(); err != nil {
		t.Skip("no image distq-prometheus: Debian's prometheus was not installed when `make images` ran (apt-get install prometheus)")
	}
	const n = 60000
	c := newCluster(t, map[string]string{
		"COMPOSE_PROFILES":  "metrics",
		"DISTQ_DEMO_TASKS":  strconv.Itoa(n),
		"DISTQ_DEMO_SLAVES": "3",
		"DISTQ_LEASE":       "5s",
		// About 3,000 tasks/s from 3 slaves of 2 slots: the run lasts
		// long enough for a few scrapes, and the test stops it once it
		// has seen them.
		"DISTQ_SLAVE_DELAY": "2ms",
	})
	c.compose("up", "-d", "--scale", "slave=3")
	master := c.follow(c.container("master", 1))
	master.waitFor("master serving", 1, time.Minute)

	// The master's own /metrics on the host's loopback.
	body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", c.httpPort))
	for _, want := range []string{`distq_queue_ready{queue="tasks"}`, "distq_connections_open", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("the master's /metrics has no %s", want)
		}
	}

	// Prometheus: every target up, and the work counted on both sides.
	prom := fmt.Sprintf("http://127.0.0.1:%d", c.promPort)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	checks := []struct{ what, query string }{
		{"the master up", `up{job="distq-master"} == 1`},
		{"three slaves up", `count(up{job="distq-slave"} == 1) == 3`},
		{"acks counted by the master", `distq_queue_acks_total{queue="tasks"} > 0`},
		{"tasks run counted by the slaves", `sum(distq_worker_tasks_run_total) > 0`},
	}
	for _, ch := range checks {
		for !promHas(ctx, t, prom, ch.query) {
			if ctx.Err() != nil {
				t.Fatalf("Prometheus never saw %s (%s)\ntargets: %s", ch.what, ch.query, httpGet(t, prom+"/api/v1/targets"))
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond): // Prometheus scrapes every 2 s
			}
		}
		t.Logf("Prometheus sees %s", ch.what)
	}
}

// promHas reports whether an instant query returns at least one series.
func promHas(ctx context.Context, t *testing.T, base, query string) bool {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false // not serving yet
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		return false
	}
	return len(r.Data.Result) > 0
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("GET %s: no answer within a minute: %v", u, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // the published port comes up with the container
		}
	}
}
