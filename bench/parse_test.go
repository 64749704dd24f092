package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseDemo(t *testing.T) {
	out := "demo OK: 1000 tasks, 1000 results, 0 wrong, 0 duplicate, 0 missing\n" +
		"demo elapsed 1.684s, 178139 tasks/s\n" +
		"demo redelivered 0, leases expired 0, late acks refused 0, dead-lettered 0\n"
	r, err := ParseDemo(out)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Rate != 178139 || r.Elapsed != 1684*time.Millisecond || !strings.HasPrefix(r.Extra, "demo redelivered") {
		t.Errorf("ParseDemo = %+v", r)
	}

	r, err = ParseDemo("demo OK: 5 tasks, 5 results, 0 wrong, 0 duplicate, 0 missing\ndemo elapsed 830ms, 6024 tasks/s\n")
	if err != nil || r.Elapsed != 830*time.Millisecond || r.Rate != 6024 {
		t.Errorf("ParseDemo(ms) = %+v, %v", r, err)
	}
	r, err = ParseDemo("demo OK: 5 tasks\ndemo elapsed 1m2.5s, 16000 tasks/s\n")
	if err != nil || r.Elapsed != 62500*time.Millisecond {
		t.Errorf("ParseDemo(minutes) = %+v, %v", r, err)
	}

	r, err = ParseDemo("demo FAILED: 10 tasks, 9 results, 0 wrong, 0 duplicate, 1 missing\ndemo elapsed 1s, 9 tasks/s\n")
	if err != nil || r.OK || !strings.Contains(r.Verdict, "1 missing") {
		t.Errorf("ParseDemo(failed) = %+v, %v; want parsed and not OK", r, err)
	}

	for _, bad := range []string{
		"",
		"demo OK: 1 tasks\n",           // no elapsed line
		"demo elapsed 1s, 5 tasks/s\n", // no verdict
		"demo OK: x\ndemo elapsed soon, 5 tasks/s\n",    // bad duration
		"demo OK: x\ndemo elapsed 1s, fast tasks/s\n",   // bad rate
		"demo OK: x\ndemo elapsed 1s 5 tasks/s\n",       // no comma
		"demo OK: x\ndemo elapsed 1s, 5 tasks/minute\n", // wrong unit
	} {
		if _, err := ParseDemo(bad); err == nil {
			t.Errorf("ParseDemo(%q): want an error", bad)
		}
	}
}

func TestStatusBytes(t *testing.T) {
	status := "Name:\tmaster\nVmHWM:\t   20480 kB\nVmRSS:\t   12345 kB\nThreads:\t8\n"
	if got, err := statusBytes(status, "VmRSS"); err != nil || got != 12345*1024 {
		t.Errorf("VmRSS = %d, %v", got, err)
	}
	if got, err := statusBytes(status, "VmHWM"); err != nil || got != 20480*1024 {
		t.Errorf("VmHWM = %d, %v", got, err)
	}
	if _, err := statusBytes(status, "VmSwap"); err == nil {
		t.Error("missing key: want an error")
	}
	if _, err := statusBytes("VmRSS:\t12 MB\n", "VmRSS"); err == nil {
		t.Error("wrong unit: want an error")
	}
}

func TestLastJSON(t *testing.T) {
	var r PythonResult
	out := "some noise\n{\"tasks\": 20, \"slaves\": 2, \"seconds\": 0.5, \"tasks_per_s\": 40.0, \"wrong\": 0}\n"
	if err := lastJSON(out, &r); err != nil || r.TasksPerS != 40 || r.Slaves != 2 {
		t.Errorf("lastJSON = %+v, %v", r, err)
	}
	if err := lastJSON("no json here\n", &r); err == nil {
		t.Error("want an error without a JSON line")
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.50GHz\n"
	if got := cpuModel(info); got != "Intel(R) Xeon(R) Processor @ 2.50GHz" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel("nothing"); got != "unknown" {
		t.Errorf("cpuModel(nothing) = %q", got)
	}
}

func TestParseRecovered(t *testing.T) {
	stderr := "2026-11-30T10:43:55.748Z [WARN]  master: TLS is off\n" +
		"2026-11-30T10:43:55.700Z [INFO]  master.data: data recovered: dir=/x/data-restart-1 items=1000000 records=103 log_bytes=12345 took=1.766s snapshot=snap-1\n"
	items, took, ok := parseRecovered(stderr)
	if !ok || items != 1000000 || took != 1766*time.Millisecond {
		t.Errorf("parseRecovered = %d, %v, %v", items, took, ok)
	}
	if _, _, ok := parseRecovered("master: serving\n"); ok {
		t.Error("parseRecovered found a line in none")
	}
}

func TestParseStatCPU(t *testing.T) {
	stat := "1234 (my master) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 37 0 0 20 0 9 0 100 2000000 5000 18446744073709551615\n"
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 2.87 {
		t.Errorf("parseStatCPU = %v, %v; want 2.87", cpu, err)
	}
	if _, err := parseStatCPU("1234 (x) S 1"); err == nil {
		t.Error("short stat accepted")
	}
}
