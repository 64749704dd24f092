package distq

import (
	"strconv"
	"testing"
)

// BenchmarkPut is a producer's put through a kept Put stream to an
// in-process master on loopback: the client's cost per put (allocations
// above all) shows next to the round trip's.
func BenchmarkPut(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run("items="+strconv.Itoa(n), func(b *testing.B) {
			m := startMaster(b, masterConfig{})
			c := m.dial(b)
			ctx := testContext(b)
			q := c.Queue("tasks")
			msgs := make([]Message, n)
			for i := range msgs {
				msgs[i].Payload = []byte("12345678")
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.PutBatch(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
