package bench

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scrapeLoop scrapes at once and then on every tick until its context
// ends, counting the answers.
func TestScrapeLoop(t *testing.T) {
	var hits atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("distq_sessions 1\n"))
		if hits.Add(1) == 3 {
			cancel()
		}
	}))
	defer srv.Close()
	n := scrapeLoop(ctx, srv.URL+"/metrics", time.Millisecond)
	if n < 2 || n > 3 {
		t.Fatalf("answered %d of 3 scrapes; want the first 2 at least", n)
	}
}

func TestMetricsTable(t *testing.T) {
	r := &Report{Throughput: []ThroughputRow{
		{Scenario: scenarioMetrics, Config: "demo K=2, metrics off", Tasks: 1000, Spread: Spread{Median: 1000}},
		{Scenario: scenarioMetrics, Config: "demo K=2, metrics on", Tasks: 1000, Spread: Spread{Median: 900},
			MetricsGoal: metricsGoal, MetricsOff: 1000, VsMetricsOff: 0.9, Scrapes: 12},
	}}
	var b bytes.Buffer
	WriteTables(&b, r)
	out := b.String()
	for _, want := range []string{"METRICS ON vs OFF", "demo K=2, metrics on | 1,000 |  900 | ×0.90 | ≥ ×0.95 | NOT MET |"} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
}
