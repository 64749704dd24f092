package auth

import "testing"

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	steps := []struct {
		seq  uint64
		want bool
	}{
		{0, false},
		{1, true}, {1, false},
		{3, true}, {2, true}, {2, false}, {3, false},
		{5000, true},
		{5000 - windowSize, false},    // just out of the window
		{5000 - windowSize + 1, true}, // just in
		{5000 - windowSize + 1, false},
		{4999, true},
		{5000 + windowSize - 1, true}, // slide by less than a window
		{4999, false},                 // still in, still seen
		{5000 - 1 + 1, false},         // 5000 still in, seen
		{5001, true},                  // in the window, never seen
		{1 << 40, true},               // slide by more than a window
		{5001, false},
		{1<<40 - 1, true},
		{1<<64 - 1, true},
		{1<<64 - 1, false},
		{1<<64 - windowSize, true},
		{1<<64 - windowSize - 1, false},
	}
	for i, s := range steps {
		if got := w.accept(s.seq); got != s.want {
			t.Fatalf("step %d: accept(%d) = %v, want %v", i, s.seq, got, s.want)
		}
	}
}

func TestReplayWindowSlideClearsOldBits(t *testing.T) {
	var w replayWindow
	for seq := uint64(1); seq <= windowSize; seq++ {
		if !w.accept(seq) {
			t.Fatalf("accept(%d) refused", seq)
		}
	}
	// seq windowSize+k reuses the slot of k; it must not look seen.
	for seq := uint64(windowSize + 1); seq <= 3*windowSize; seq += 7 {
		if !w.accept(seq) {
			t.Fatalf("accept(%d) refused", seq)
		}
	}
}
