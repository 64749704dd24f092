package queue

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/distq/distq/internal/state"
)

// TestReadyIndexOrder drives a ready index over a real state with random
// puts, takes, settles, hand-backs and requeues, against a plain list of
// ready ids in the order the ready deque kept them.
func TestReadyIndexOrder(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 3))
		m := state.New()
		m.Apply(&state.Put{Queue: "q", FirstID: 1, Items: make([]state.NewItem, 1)})
		m.Apply(&state.Settle{Queue: "q", IDs: []uint64{1}})
		s := m.Queue("q")
		r := newReadyIndex(s, true)
		r.rebuild(func(*state.Item) {})
		// The ready ids in hand-out order: those handed back or requeued
		// (redo), then the new ones.
		var redo, fresh []uint64
		var taken []uint64 // leased
		for step := range 3000 {
			switch k := rng.IntN(10); {
			case k < 3:
				n := 1 + rng.IntN(5)
				first := s.NextID() + 1
				r.added(first, n, s.Put(&state.Put{Queue: "q", FirstID: first, Items: make([]state.NewItem, n)}))
				for i := range n {
					fresh = append(fresh, first+uint64(i))
				}
			case k < 6:
				it := r.take()
				model := append(slices.Clone(redo), fresh...)
				if len(model) == 0 {
					if it != nil {
						t.Fatalf("seed %d step %d: took %d from nothing", seed, step, it.ID)
					}
					continue
				}
				if it == nil || it.ID != model[0] {
					t.Fatalf("seed %d step %d: took %v, want %d", seed, step, it, model[0])
				}
				if len(redo) > 0 {
					redo = redo[1:]
				} else {
					fresh = fresh[1:]
				}
				taken = append(taken, it.ID)
			case k < 8 && len(taken) > 0: // settled
				i := rng.IntN(len(taken))
				m.Apply(&state.Settle{Queue: "q", IDs: []uint64{taken[i]}})
				taken = slices.Delete(taken, i, i+1)
			case k < 9 && len(taken) > 0: // handed back
				i := rng.IntN(len(taken))
				r.pushFront(taken[i])
				redo = slices.Insert(redo, 0, taken[i])
				taken = slices.Delete(taken, i, i+1)
			case len(taken) > 0: // requeued: after those handed back
				i := rng.IntN(len(taken))
				r.pushBack(taken[i])
				redo = append(redo, taken[i])
				taken = slices.Delete(taken, i, i+1)
			}
			if r.len() != len(redo)+len(fresh) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, r.len(), len(redo)+len(fresh))
			}
		}
		var got []uint64
		r.ascend(func(it *state.Item) bool { got = append(got, it.ID); return true })
		if model := append(slices.Clone(redo), fresh...); !slices.Equal(got, model) {
			t.Fatalf("seed %d: ascend %v, want %v", seed, got, model)
		}
		// After a restart every item is ready, in id order.
		var all []uint64
		s.Ascend(func(it *state.Item) bool { all = append(all, it.ID); return true })
		r.rebuild(func(*state.Item) { t.Fatal("no item waits") })
		got = got[:0]
		for it := r.take(); it != nil; it = r.take() {
			got = append(got, it.ID)
		}
		if !slices.Equal(got, all) || r.len() != 0 {
			t.Fatalf("seed %d: after rebuild took %d items, state holds %d", seed, len(got), len(all))
		}
	}
}

// TestReadyIndexRebuildDelayed: recovered retries that wait are handed to
// the delayed heap and never walked; a dead-letter queue is all in redo.
func TestReadyIndexRebuildDelayed(t *testing.T) {
	m := state.New()
	m.Apply(&state.Put{Queue: "q", FirstID: 1, Items: make([]state.NewItem, 5)})
	m.Apply(&state.Fail{Queue: "q", DeadQueue: "q.dead", Items: []state.Failed{
		{ID: 2, Attempts: 1, Outcome: state.OutcomeReady, Due: 99},
		{ID: 4, Attempts: 1, Outcome: state.OutcomeDead},
	}})
	r := newReadyIndex(m.Queue("q"), true)
	var waiting []uint64
	r.rebuild(func(it *state.Item) { waiting = append(waiting, it.ID) })
	var got []uint64
	for it := r.take(); it != nil; it = r.take() {
		got = append(got, it.ID)
	}
	if !slices.Equal(got, []uint64{1, 3, 5}) || !slices.Equal(waiting, []uint64{2}) {
		t.Fatalf("took %v, waiting %v", got, waiting)
	}
	d := newReadyIndex(m.Queue("q.dead"), false)
	d.rebuild(func(*state.Item) {})
	if it := d.take(); it == nil || it.ID != 4 || d.take() != nil {
		t.Fatalf("dead: %v", it)
	}
}

func BenchmarkReadyIndexPutTake(b *testing.B) {
	m := state.New()
	m.Apply(&state.Put{Queue: "q", FirstID: 1, Items: make([]state.NewItem, 1)})
	s := m.Queue("q")
	r := newReadyIndex(s, true)
	r.rebuild(func(*state.Item) {})
	put := &state.Put{Queue: "q", Items: make([]state.NewItem, 64)}
	settle := &state.Settle{Queue: "q", IDs: make([]uint64, 0, 64)}
	b.ReportAllocs()
	for b.Loop() {
		put.FirstID = s.NextID() + 1
		r.added(put.FirstID, 64, s.Put(put))
		settle.IDs = settle.IDs[:0]
		for range 64 {
			settle.IDs = append(settle.IDs, r.take().ID)
		}
		s.Settle(settle)
	}
}
