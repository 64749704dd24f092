package bench

import (
	"image/png"
	"os"
	"testing"
)

func TestClosedLoopPlot(t *testing.T) {
	dir := t.TempDir()
	name, err := WriteClosedLoopPlot(dir, &Report{})
	if err != nil || name != "" {
		t.Fatalf("no rows: %q, %v; want no plot", name, err)
	}
	r := &Report{ClosedLoop: []ClosedLoopRow{
		{Key: keyGRPC, System: "grpc-go", Config: "floor", Latencies: Latencies{Count: 10, P50Ms: 0.1, P90Ms: 0.2, P99Ms: 0.3, P999Ms: 0.5}},
		{Key: keyDistq, System: "distq", Config: "in memory", Latencies: Latencies{Count: 10, P50Ms: 0.5, P90Ms: 0.7, P99Ms: 2, P999Ms: 9}},
		{Key: keyRedis, System: "Redis", Config: "lists", Skipped: "redis-server not installed"},
	}}
	name, err = WriteClosedLoopPlot(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 200 {
		t.Fatalf("%s is %v", name, b)
	}
}
