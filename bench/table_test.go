package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestTableRender(t *testing.T) {
	tb := &Table{
		Header: []string{"scenario", "median", "×Py", "notes"},
		Right:  map[int]bool{1: true, 2: true},
		Rows: [][]string{
			{"demo", "178,139", "×45.6", "K=2"},
			{"python", "3,904", "×1.00", ""},
		},
	}
	var b bytes.Buffer
	tb.Render(&b)
	want := "" +
		"scenario |  median |   ×Py | notes\n" +
		"---------|---------|-------|------\n" +
		"demo     | 178,139 | ×45.6 | K=2\n" +
		"python   |   3,904 | ×1.00 |\n"
	if b.String() != want {
		t.Errorf("Render:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtCount(0), "0"},
		{fmtCount(999), "999"},
		{fmtCount(1000), "1,000"},
		{fmtCount(1234567), "1,234,567"},
		{fmtCount(-1234), "-1,234"},
		{fmtRate(0), "-"},
		{fmtRate(12.34), "12.3"},
		{fmtRate(178139.4), "178,139"},
		{fmtRatio(0), "-"},
		{fmtRatio(1), "×1.00"},
		{fmtRatio(45.61), "×45.6"},
		{fmtRatio(312.4), "×312"},
		{fmtMs(0.0695), "70 µs"},
		{fmtMs(1.234), "1.23 ms"},
		{fmtMs(14.94), "14.9 ms"},
		{fmtMs(2500), "2.50 s"},
		{fmtBytes(512 << 10), "512 KiB"},
		{fmtBytes(181 << 20), "181.0 MiB"},
		{fmtBytes(12 << 30), "12.00 GiB"},
		{fmtSI(1e6), "1M"},
		{fmtSI(1e4), "10k"},
		{fmtSI(100), "100"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestWriteTables(t *testing.T) {
	r := &Report{
		Machine:  Machine{CPU: "Test CPU", Cores: 2, Go: "go1.26", Python: "Python 3.11", LoadStart: 3.5, LoadEnd: 12.25},
		Settings: Settings{Prefetch: 64, Runs: 3},
		Throughput: []ThroughputRow{
			{Scenario: scenarioDemo, Config: "K=2", Slaves: 2, Tasks: 1000000, Spread: Spread{Median: 200000, Min: 190000, Max: 210000}},
			{Scenario: scenarioPython, Config: "K=1", Slaves: 1, Tasks: 20000, Spread: Spread{Median: 4000, Min: 3900, Max: 4100}},
		},
		Latency:  []LatencyRow{{Label: "1,000/s fixed", TargetRate: 1000, AchievedRate: 999, Latencies: Latencies{Count: 10000, P50Ms: 0.7, P99Ms: 3.2, P999Ms: 6.6, MaxMs: 8.4}}},
		Memory:   []MemoryRow{{Label: "idle", RSS: 14 << 20, HWM: 14 << 20}, {Label: "1,000,000 queued", Queued: 1000000, RSS: 190 << 20, HWM: 200 << 20, BytesPerTask: 184.5}},
		Problems: []string{"something odd"},
		Restart: []RestartRow{{Queued: 10000000, After: "SIGKILL", Seconds: 3.25, RecoverSeconds: 2.5, CPUSeconds: 4.1, RunQueueSeconds: 0.2, Recovered: 10000000,
			DiskBytes: 500 << 20, BytesPerItem: 52.4}},
		PutLatency: []LatencyRow{{Label: "fdatasync of a 4 KiB write (the disk's floor)", AchievedRate: 3000,
			Latencies: Latencies{Count: 15000, P50Ms: 0.262, P99Ms: 6.5}}},
	}
	r.Throughput = append(r.Throughput, ThroughputRow{Scenario: scenarioDurable, Config: "demo K=2, fsync always", Tasks: 1000000,
		Spread: Spread{Median: 100000}, InMemory: 200000, VsInMemory: 0.5, Goal: 0.6, DiskBytes: 96 << 20})
	r.fillRatios()
	var b bytes.Buffer
	WriteTables(&b, r)
	out := b.String()
	for _, want := range []string{"Test CPU, 2 cores", "3.5 at the start, 12.2 at the end", "×50.0", "×1.00", "200,000", "700 µs", "1,000,000 queued", "184", "PROBLEMS", "- something odd",
		"DURABLE vs IN-MEMORY", "×0.50", "NOT MET", "96.0 MiB", "RESTART", "10,000,000 | SIGKILL |  3.25 s |", "4.10 s", "200.0 ms", "52.4",
		"PUT LATENCY", "262 µs", "6.50 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
}

// A run made under GOMAXPROCS or another runtime setting says so in its
// header; one made without says nothing of it.
func TestWriteTablesGoEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"GODEBUG": "x=1", "GOMAXPROCS": "1"}, "Go runtime settings from the environment, in every process of the run (distq's and the peers' clients): GOMAXPROCS=1 GODEBUG=x=1\n"},
	} {
		var b bytes.Buffer
		WriteTables(&b, &Report{Machine: Machine{CPU: "Test CPU", Cores: 2, GoEnv: tc.env}})
		out := b.String()
		if got := strings.Contains(out, "Go runtime settings"); got != (tc.want != "") || (tc.want != "" && !strings.Contains(out, tc.want)) {
			t.Errorf("GoEnv %v: header\n%s\nwant the line %q", tc.env, out, tc.want)
		}
	}
}

func TestGoEnvReadsTheEnvironment(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1")
	t.Setenv("GOGC", "200")
	env := goEnv()
	if env["GOMAXPROCS"] != "1" || env["GOGC"] != "200" {
		t.Errorf("goEnv() = %v, want GOMAXPROCS=1 and GOGC=200 among them", env)
	}
}
