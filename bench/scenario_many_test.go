package bench

import (
	"math"
	"testing"
)

func TestShare(t *testing.T) {
	sum := 0
	for i := range 4 {
		n := share(1002, 4, i)
		if n != 250 && n != 251 {
			t.Errorf("share(1002, 4, %d) = %d", i, n)
		}
		sum += n
	}
	if sum != 1002 {
		t.Fatalf("shares add up to %d", sum)
	}
}

// Costs per task add up: a floor as fast as the demo halves it, a floor
// four times as fast leaves 80 %.
func TestManyEstimate(t *testing.T) {
	for _, c := range []struct{ demo, floor, want float64 }{
		{1e6, 1e6, 5e5},
		{1e6, 4e6, 8e5},
		{1e6, 0, 0},
	} {
		if got := manyEstimate(c.demo, c.floor); math.Abs(got-c.want) > 1 {
			t.Errorf("manyEstimate(%g, %g) = %g; want %g", c.demo, c.floor, got, c.want)
		}
	}
}
