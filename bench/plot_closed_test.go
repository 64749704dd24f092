package bench

import (
	"image/png"
	"os"
	"slices"
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

// The paced floor, measured after distq's in-memory row, is listed right
// after the back-to-back floor; the other rows keep their order.
func TestFloorsFirst(t *testing.T) {
	r := &Report{ClosedLoop: []ClosedLoopRow{{Key: keyGRPC}, {Key: keyDistq}, {Key: keyGRPCPaced}, {Key: keyDistqFsync}}}
	r.floorsFirst()
	var got []string
	for _, c := range r.ClosedLoop {
		got = append(got, c.Key)
	}
	if want := []string{keyGRPC, keyGRPCPaced, keyDistq, keyDistqFsync}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	r.floorsFirst() // already in place: unchanged
	for i, c := range r.ClosedLoop {
		if c.Key != got[i] {
			t.Fatalf("a second floorsFirst moved %v", r.ClosedLoop)
		}
	}
	(&Report{ClosedLoop: []ClosedLoopRow{{Key: keyDistq}, {Key: keyGRPCPaced}}}).floorsFirst() // no floor row: left alone
}
