package logbench

import (
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Samples collects durations while its switch is on. It is safe for
// concurrent use; the capacity is reserved up front so that recording does
// not allocate in the measured window.
type Samples struct {
	on *atomic.Bool
	mu sync.Mutex
	v  []int64
}

// NewSamples returns samples recorded only while on is true.
func NewSamples(on *atomic.Bool, capacity int) *Samples {
	return &Samples{on: on, v: make([]int64, 0, capacity)}
}

// Add records d if the switch is on.
func (s *Samples) Add(d time.Duration) {
	if s == nil || (s.on != nil && !s.on.Load()) {
		return
	}
	s.mu.Lock()
	s.v = append(s.v, int64(d))
	s.mu.Unlock()
}

// Dist summarises durations (microseconds).
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_us"`
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
}

// Dist sorts the samples and returns their distribution (nearest rank).
func (s *Samples) Dist() Dist {
	if s == nil {
		return Dist{}
	}
	s.mu.Lock()
	v := slices.Clone(s.v)
	s.mu.Unlock()
	return distOf(v)
}

func distOf(v []int64) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += float64(x)
	}
	rank := func(p float64) float64 {
		i := int(p*float64(len(v))+0.999999) - 1
		i = max(0, min(i, len(v)-1))
		return float64(v[i]) / 1e3
	}
	return Dist{N: len(v), Mean: sum / float64(len(v)) / 1e3, P50: rank(0.50), P99: rank(0.99),
		P999: rank(0.999), Max: float64(v[len(v)-1]) / 1e3}
}

// usage is the process's CPU time and heap allocations so far.
type usage struct {
	cpu    time.Duration
	allocs uint64
	wall   time.Time
}

var allocMetric = []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}

func readUsage() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	metrics.Read(allocMetric)
	u := usage{
		cpu:  time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		wall: time.Now(),
	}
	if allocMetric[0].Value.Kind() == metrics.KindUint64 {
		u.allocs = allocMetric[0].Value.Uint64()
	}
	return u
}
