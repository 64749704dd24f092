package auth

import "time"

// Replay protection of a session's calls (auth.proto, "Every other call").
//
// A client numbers its calls 1, 2, 3, ... but they need not reach the
// master in that order, nor soon: gRPC signs a call (GetRequestMetadata)
// before it waits for a free HTTP/2 stream, and the master's handlers run
// in whatever order the scheduler picks. The window of the last 4,096 seqs
// that this replaced refused legitimate calls as replays whenever a busy
// client got more than 4,096 calls ahead of a straggler (5,593 of 20,000
// concurrent Joins of one client). So the window is bounded by time, not
// by count: the master remembers every seq it accepted since the last two
// rotations, and refuses
//
//   - a seq it has already accepted (a replay), and
//   - a seq no higher than the highest one it had accepted by the rotation
//     before the last one. Rotations are at least ReplayHorizon apart, so
//     such a call was signed at least ReplayHorizon before it arrived: a
//     straggler, or a capture resent after its bit was forgotten.
//
// A call that arrives within ReplayHorizon of being signed is therefore
// never refused, whatever the order and whatever the concurrency, unless
// its client made more than maxReplaySpan calls in the meantime.
//
// The seqs are kept as one bit each in a ring of words covering the range
// that can still be accepted, (floor, highest]: a few bytes for a quiet
// session, maxReplaySpan/8 bytes (128 KiB) at most, which is what a client
// making 17,000 calls a second for a minute needs. The rings of all
// sessions share a budget (ringBudget): a ring that would grow past it
// stays as it is and its floor moves up instead, so that a key holder who
// opens many sessions and makes each jump ahead cannot make the master
// hold more than the budget; only stragglers of the growing session pay,
// refused as stale (and sent again by their client).

// ReplayHorizon is how long after it was signed a call may arrive and still
// be accepted. auth.proto states it; clients retry a call refused as stale.
const ReplayHorizon = 60 * time.Second

// maxReplaySpan bounds how far behind a session's highest seq a call may
// be: the size of the ring in bits.
const maxReplaySpan = 1 << 20

// ringBudget bounds the words of all the sessions' rings together.
type ringBudget struct {
	used, max int
}

// defaultRingBudget is 64 MiB of rings: 512 sessions at the largest ring.
const defaultRingBudget = 64 << 20 / 8

// replayGuard is one session's record of used seqs. The zero value accepts
// any seq from 1. Not safe for concurrent use; the session table's mutex
// guards it, and its budget.
type replayGuard struct {
	budget  *ringBudget // nil: unbounded (tests)
	floor   uint64      // every seq <= floor is refused
	highest uint64      // the highest seq accepted; bits cover (floor, highest]
	words   []uint64    // ring: seq s is bit s%64 of words[(s/64)&(len-1)]; len is 0 or a power of two

	mark   uint64 // highest at the last rotation
	markAt int64  // unix nanoseconds of the last rotation; 0 before the first call
}

// replayVerdict says why a seq was refused, or that it was accepted.
type replayVerdict int

const (
	replayOK replayVerdict = iota
	replayZero
	replaySeen  // accepted before: a replay
	replayStale // at or below the floor: signed too long ago, or forgotten
)

// accept records seq, used at now (unix nanoseconds), if it is new.
func (g *replayGuard) accept(seq uint64, now int64) replayVerdict {
	if seq == 0 {
		return replayZero
	}
	g.rotate(now)
	if seq <= g.floor {
		return replayStale
	}
	if seq > g.highest {
		g.advance(seq)
		g.set(seq)
		return replayOK
	}
	word, bit := &g.words[(seq/64)&uint64(len(g.words)-1)], uint64(1)<<(seq%64)
	if *word&bit != 0 {
		return replaySeen
	}
	*word |= bit
	return replayOK
}

// rotate moves the floor up to the highest seq of the previous rotation
// once ReplayHorizon has passed since the last one.
func (g *replayGuard) rotate(now int64) {
	if g.markAt == 0 {
		g.markAt = now
		return
	}
	if now-g.markAt < int64(ReplayHorizon) {
		return
	}
	g.floor = max(g.floor, g.mark)
	g.mark, g.markAt = g.highest, now
	g.shrink()
}

// advance makes room for seq > highest: it moves the floor up if the range
// would need more than maxReplaySpan bits (whole words), grows the ring if
// the range no longer fits, and clears the words that enter the range.
func (g *replayGuard) advance(seq uint64) {
	g.floor = max(g.floor, spanFloor(seq))
	lo, hi := (g.floor+1)/64, seq/64 // words the range needs
	if hi-lo >= uint64(len(g.words)) && !g.resize(hi-lo+1) {
		// Over budget: the ring keeps its size (at least a word) and the
		// range moves up to fit in it.
		if len(g.words) == 0 {
			g.resize(1) // always granted
		}
		n := uint64(len(g.words))
		g.floor = max(g.floor, (hi-n+1)*64-1)
		lo = (g.floor + 1) / 64
	}
	if hi-lo < uint64(len(g.words)) {
		// Words after the old highest's hold bits of seqs that left the
		// range long ago; clear them as they come back into it. (A seq in
		// the old highest's own word enters no new word: nothing to
		// clear. Computing hi-from there wrapped round and cleared the
		// whole ring, forgetting every seq seen: replays were accepted.)
		from := max(g.highest/64+1, lo)
		for w := from; w <= hi; w++ {
			g.words[w&uint64(len(g.words)-1)] = 0
		}
	}
	g.highest = seq
}

// spanFloor is the lowest floor that keeps (floor, seq] within
// maxReplaySpan/64 words of the ring.
func spanFloor(seq uint64) uint64 {
	const words = maxReplaySpan / 64
	if hi := seq / 64; hi >= words {
		return (hi-words+1)*64 - 1
	}
	return 0
}

func (g *replayGuard) set(seq uint64) {
	g.words[(seq/64)&uint64(len(g.words)-1)] |= 1 << (seq % 64)
}

// resize makes the ring hold at least n words and copies the words of the
// current range, (floor, highest], over. It fails, changing nothing, if the
// ring would grow past the budget; a ring of one word is always granted.
func (g *replayGuard) resize(n uint64) bool {
	size := uint64(1)
	for size < n {
		size *= 2
	}
	if b := g.budget; b != nil {
		grow := int(size) - len(g.words)
		if grow > 0 && size > 1 && b.used+grow > b.max {
			return false
		}
		b.used += grow
	}
	words := make([]uint64, size)
	if g.highest > g.floor {
		for w := (g.floor + 1) / 64; w <= g.highest/64; w++ {
			words[w&(size-1)] = g.words[w&uint64(len(g.words)-1)]
		}
	}
	g.words = words
	return true
}

// release gives the ring's words back to the budget (the session is gone).
func (g *replayGuard) release() {
	if g.budget != nil {
		g.budget.used -= len(g.words)
	}
	g.words = nil
}

// shrink gives back a ring four times larger than the range it covers, so
// that a session busy once does not keep its peak ring while it is quiet.
func (g *replayGuard) shrink() {
	if len(g.words) <= 1 {
		return
	}
	var need uint64 = 1
	if g.highest > g.floor {
		need = g.highest/64 - (g.floor+1)/64 + 1
	}
	if need*4 <= uint64(len(g.words)) {
		g.resize(need)
	}
}
