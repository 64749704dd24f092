package auth

// windowSize is how many recent seqs a session remembers (auth.proto). Calls
// may arrive out of order by up to this many; older ones are refused.
const windowSize = 4096

// replayWindow remembers which of the last windowSize sequence numbers of a
// session have been used, as in IPsec's anti-replay window (RFC 4303 §3.4.3):
// the highest seq seen, plus one bit per seq in (highest-windowSize, highest],
// stored at bit seq mod windowSize. The zero value is an empty window.
// Not safe for concurrent use; the session table's mutex guards it.
type replayWindow struct {
	highest uint64
	bits    [windowSize / 64]uint64
}

// accept records seq and reports whether it was new: greater than every seq
// seen so far, or within the window and not seen yet. seq 0 is never valid.
func (w *replayWindow) accept(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq > w.highest {
		// Slide: slots of the seqs now entering the window still hold
		// bits of seqs that fall out of it, so clear them first.
		if seq-w.highest >= windowSize {
			clear(w.bits[:])
		} else {
			for s := w.highest + 1; s <= seq; s++ {
				w.bits[(s%windowSize)/64] &^= 1 << (s % 64)
			}
		}
		w.highest = seq
		w.bits[(seq%windowSize)/64] |= 1 << (seq % 64)
		return true
	}
	if w.highest-seq >= windowSize {
		return false
	}
	word, bit := &w.bits[(seq%windowSize)/64], uint64(1)<<(seq%64)
	if *word&bit != 0 {
		return false
	}
	*word |= bit
	return true
}
