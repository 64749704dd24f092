package bench

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{5}, Spread{5, 5, 5}},
		{[]float64{3, 1, 2}, Spread{2, 1, 3}},
		{[]float64{4, 1, 3, 2}, Spread{2.5, 1, 4}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 {
		t.Errorf("Summarize sorted its argument: %v", in)
	}
}

func TestPercentile(t *testing.T) {
	thousand := make([]float64, 1000)
	for i := range thousand {
		thousand[i] = float64(i + 1) // 1..1000
	}
	for _, tc := range []struct {
		sorted []float64
		p      float64
		want   float64
	}{
		{nil, 50, 0},
		{[]float64{7}, 99.9, 7},
		{[]float64{1, 2}, 50, 1},
		{[]float64{1, 2, 3, 4}, 50, 2},
		{[]float64{1, 2, 3, 4}, 75, 3},
		{[]float64{1, 2, 3, 4}, 76, 4},
		{thousand, 50, 500},
		{thousand, 99, 990},
		{thousand, 99.9, 999}, // not 1000: 99.9% of 1000 is exactly 999
		{thousand, 100, 1000},
		{thousand, 0.01, 1},
	} {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("Percentile(n=%d, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestSummarizeLatencies(t *testing.T) {
	var samples []time.Duration
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	got := SummarizeLatencies(samples)
	want := Latencies{Count: 1000, MeanMs: 500.5, P50Ms: 500, P90Ms: 900, P99Ms: 990, P999Ms: 999, MaxMs: 1000}
	if got != want {
		t.Errorf("SummarizeLatencies = %+v, want %+v", got, want)
	}
	if z := SummarizeLatencies(nil); z != (Latencies{}) {
		t.Errorf("SummarizeLatencies(nil) = %+v, want zero", z)
	}
}
