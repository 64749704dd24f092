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
	for len(pending) > 0 { // the rest arrive, then every seq is replayed
		c := heap.Pop(&pending).(call)
		now = max(now, c.arriveAt)
		if got := g.accept(c.seq, now); got != replayOK {
			t.Fatalf("seq %d refused: %v", c.seq, got)
		}
	}
	for s := uint64(1); s <= seq; s++ {
		if got := g.accept(s, now); got == replayOK {
			t.Fatalf("the replay of seq %d, long after, was accepted", s)
		}
	}
}

// Every seq accepted stays refused, however many seqs came after it, in
// whatever order. (A ring cleared when a seq landed in the highest one's
// word once forgot them all.)
func TestReplayGuardRemembersEverySeq(t *testing.T) {
	var g replayGuard
	rng := rand.New(rand.NewPCG(3, 4))
	seqs := rng.Perm(5000)
	for i, s := range seqs {
		if got := g.accept(uint64(s)+1, sec); got != replayOK {
			t.Fatalf("seq %d refused: %v", s+1, got)
		}
		// Replay every seq accepted so far, now and then.
		if i%500 == 0 {
			for _, r := range seqs[:i+1] {
				if got := g.accept(uint64(r)+1, sec); got == replayOK {
					t.Fatalf("after %d seqs, the replay of seq %d was accepted", i+1, r+1)
				}
			}
		}
	}
	for seq := uint64(1); seq <= 5000; seq++ {
		if got := g.accept(seq, sec); got == replayOK {
			t.Fatalf("the replay of seq %d was accepted", seq)
		}
	}
}

// The rings of all sessions share a budget: a ring that would outgrow it
// moves its floor instead, and a session gone gives its words back.
func TestReplayGuardBudget(t *testing.T) {
	b := &ringBudget{max: 64}
	g1, g2 := replayGuard{budget: b}, replayGuard{budget: b}
	if g1.accept(1, sec) != replayOK || g1.accept(40*64, sec) != replayOK { // 41 words: a ring of 64
		t.Fatal("refused within the budget")
	}
	if b.used != 64 || len(g1.words) != 64 {
		t.Fatalf("budget used %d, ring %d words; want 64, 64", b.used, len(g1.words))
	}
	// g2 gets one word, whatever the budget, and no more: a jump moves
	// its floor.
	if g2.accept(1, sec) != replayOK || g2.accept(10*64, sec) != replayOK {
		t.Fatal("a session over the budget had a fresh seq refused")
	}
	if len(g2.words) != 1 || b.used != 65 {
		t.Fatalf("ring %d words, budget used %d; want 1, 65", len(g2.words), b.used)
	}
	if got := g2.accept(2, sec); got != replayStale {
		t.Fatalf("straggler behind the moved floor: %v; want stale", got)
	}
	if got := g2.accept(10*64, sec); got != replaySeen {
		t.Fatalf("replay: %v", got)
	}
	g1.release()
	if b.used != 1 {
		t.Fatalf("budget used %d after a session went; want 1", b.used)
	}
	if g2.accept(20*64, sec) != replayOK || len(g2.words) < 11 {
		t.Fatalf("the freed budget was not used: ring of %d words", len(g2.words))
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
