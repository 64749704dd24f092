package auth

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"
)

const sec = int64(time.Second)

func TestReplayGuardOrderFree(t *testing.T) {
	var g replayGuard
	steps := []struct {
		seq  uint64
		want replayVerdict
	}{
		{0, replayZero},
		{1, replayOK}, {1, replaySeen},
		{3, replayOK}, {2, replayOK}, {2, replaySeen}, {3, replaySeen},
		{100000, replayOK}, // far ahead of stragglers: they still count
		{4, replayOK}, {99999, replayOK}, {4, replaySeen},
		{100000, replaySeen},
		{100031 + maxReplaySpan, replayOK}, // the span's edge moves the floor
		{100031, replayStale}, {100032, replayOK}, {100032, replaySeen},
		{1<<64 - 1, replayOK}, {1<<64 - 1, replaySeen},
		{1<<64 - maxReplaySpan, replayOK}, {1<<64 - maxReplaySpan - 1, replayStale},
	}
	for i, s := range steps {
		if got := g.accept(s.seq, sec); got != s.want {
			t.Fatalf("step %d: accept(%d) = %v, want %v", i, s.seq, got, s.want)
		}
	}
	if n := len(g.words); n > maxReplaySpan/64 {
		t.Fatalf("ring of %d words, limit %d", n, maxReplaySpan/64)
	}
}

// Stragglers are accepted for a horizon after they were signed, and
// refused once two rotations have passed them by.
func TestReplayGuardHorizon(t *testing.T) {
	var g replayGuard
	h := int64(ReplayHorizon)
	now := sec
	for seq := uint64(2); seq <= 5000; seq++ { // 1 is the straggler
		if g.accept(seq, now) != replayOK {
			t.Fatalf("accept(%d) refused", seq)
		}
	}
	now += h - 1 // a straggler signed at the start, arriving within the horizon
	if got := g.accept(1, now); got != replayOK {
		t.Fatalf("straggler within the horizon: %v", got)
	}
	if got := g.accept(1, now); got != replaySeen {
		t.Fatalf("replay: %v", got)
	}
	// Seq 5001 is signed now but arrives late: after one rotation it is
	// still new...
	now++ // first rotation: the floor stays, the mark moves to 5000
	if got := g.accept(6000, now); got != replayOK {
		t.Fatal(got)
	}
	now += h // second rotation: the floor moves to 5000
	if got := g.accept(5001, now); got != replayOK {
		t.Fatalf("seq above the floor refused: %v", got)
	}
	if got := g.accept(4999, now); got != replayStale {
		t.Fatalf("seq accepted two rotations ago: %v, want stale", got)
	}
}

// Calls signed in order and arriving in any order, each less than the
// horizon after it was signed, are all accepted once; a replay of any is
// refused whenever it comes.
func TestReplayGuardNeverRefusesAFreshCall(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var g replayGuard
	var pending callHeap
	now := sec
	var seq uint64
	for step := 0; step < 300000; step++ {
		now += rng.Int64N(int64(time.Millisecond))
		seq++
		// Most calls arrive at once, some wait up to the horizon.
		delay := rng.Int64N(int64(time.Millisecond))
		if rng.IntN(10) == 0 {
			delay = rng.Int64N(int64(ReplayHorizon - time.Millisecond))
		}
		heap.Push(&pending, call{seq, now + delay})
		for len(pending) > 0 && pending[0].arriveAt <= now {
			c := heap.Pop(&pending).(call)
			if got := g.accept(c.seq, c.arriveAt); got != replayOK {
				t.Fatalf("seq %d, %v on its way, refused: %v", c.seq, time.Duration(c.arriveAt-now), got)
			}
			if got := g.accept(c.seq, now); got == replayOK {
				t.Fatalf("seq %d accepted twice", c.seq)
			}
		}
	}
}

type call struct {
	seq      uint64
	arriveAt int64
}

type callHeap []call

func (h callHeap) Len() int           { return len(h) }
func (h callHeap) Less(i, j int) bool { return h[i].arriveAt < h[j].arriveAt }
func (h callHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *callHeap) Push(x any)        { *h = append(*h, x.(call)) }
func (h *callHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

func TestReplayGuardShrinksWhenQuiet(t *testing.T) {
	var g replayGuard
	now := sec
	for seq := uint64(1); seq <= 500000; seq += 2 { // half the seqs straggle
		g.accept(seq, now)
	}
	peak := len(g.words)
	if peak < 500000/64 {
		t.Fatalf("ring of %d words for 500,000 seqs", peak)
	}
	for range 3 {
		now += int64(ReplayHorizon)
		g.accept(g.highest+1, now)
	}
	if len(g.words) > 4 {
		t.Fatalf("ring of %d words after the session went quiet (peak %d)", len(g.words), peak)
	}
}
