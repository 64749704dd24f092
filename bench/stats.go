package bench

import (
	"math"
	"slices"
	"time"
)

// Spread is the median, min and max of repeated measurements.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Summarize returns the spread of xs (zero for none).
func Summarize(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Spread{Median: median(s), Min: s[0], Max: s[len(s)-1]}
}

// median of sorted values: the middle one, or the mean of the two middle ones.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted
// values: the smallest value with at least p% of the values at or below it.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps p*n/100 landing a hair above an integer (99.9% of
	// 1000) from moving up one rank.
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Latencies sums up latency samples.
type Latencies struct {
	Count  int     `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// SummarizeLatencies sorts the samples and takes their percentiles.
func SummarizeLatencies(samples []time.Duration) Latencies {
	if len(samples) == 0 {
		return Latencies{}
	}
	ms := make([]float64, len(samples))
	sum := 0.0
	for i, d := range samples {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return Latencies{
		Count:  len(ms),
		MeanMs: sum / float64(len(ms)),
		P50Ms:  Percentile(ms, 50),
		P90Ms:  Percentile(ms, 90),
		P99Ms:  Percentile(ms, 99),
		P999Ms: Percentile(ms, 99.9),
		MaxMs:  ms[len(ms)-1],
	}
}
