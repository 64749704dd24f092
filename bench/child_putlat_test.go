package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

func TestFdatasync(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := runFdatasync(t.Context(), []string{"-dir", dir, "-duration", "100ms", "-size", "4096"}, &out); err != nil {
		t.Fatal(err)
	}
	var res PutLatencyResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if res.Count < 1 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms || res.PerS <= 0 {
		t.Fatalf("result %+v", res)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if err := runFdatasync(t.Context(), []string{"-dir", dir, "-size", "0"}, &out); err == nil {
		t.Error("-size 0 accepted")
	}
}
