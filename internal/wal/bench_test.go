package wal_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/distq/distq/internal/wal"
)

// openBench opens a log with the default (32 MiB) segments in a temporary
// directory of the machine's disk, once the preparer has its segments
// ready.
func openBench(b *testing.B) *wal.Log {
	b.Helper()
	l, _, err := wal.Open(b.TempDir(), wal.Options{}, nil, func(uint64, []byte) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	for {
		ch := l.Changed()
		if l.Ready() == 2 {
			break
		}
		<-ch
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkAppend is the cost of one Append of a 64-byte record, what the
// queue layer pays under its locks: it must be tens of ns and allocate
// nothing. Every 4,096 records the timer stops while they are synced, so
// the buffers stay the size of a group.
func BenchmarkAppend(b *testing.B) {
	l := openBench(b)
	rec := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var last uint64
	for i := 0; i < b.N; {
		n := min(4096, b.N-i)
		for k := 0; k < n; k++ {
			last, _ = l.Append(rec)
		}
		i += n
		b.StopTimer()
		if err := l.WaitContext(ctx, last); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkGroupCommit is records made durable per second by writers that
// each append a batch and wait for it (FsyncAlways, fdatasync per group),
// on the machine's disk: the figure is what group commit gets out of it.
func BenchmarkGroupCommit(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run("batch="+itoa(batch), func(b *testing.B) {
			l := openBench(b)
			rec := make([]byte, 64)
			s0 := l.Stats()
			var records atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					var last uint64
					for k := 0; k < batch; k++ {
						last, _ = l.Append(rec)
					}
					records.Add(int64(batch))
					if err := l.WaitContext(ctx, last); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			s := l.Stats()
			groups := float64(s.Groups - s0.Groups)
			b.ReportMetric(float64(records.Load())/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(records.Load())/groups, "records/group")
			b.ReportMetric(float64(s.SyncTime-s0.SyncTime)/float64(s.Syncs-s0.Syncs)/1e3, "µs/sync")
		})
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
