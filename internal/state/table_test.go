package state

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTableAgainstMap drives a table and a map with the same random puts
// (mostly increasing ids, some far below or beyond) and removes, and checks
// that they hold the same items, in id order.
func TestTableAgainstMap(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var tb table
		model := map[uint64]uint32{}
		next := uint64(1 + rng.IntN(1000))
		for step := range 20000 {
			switch r := rng.IntN(10); {
			case r < 5: // a put at the back
				tb.Put(Item{ID: next, Attempts: uint32(step)})
				model[next] = uint32(step)
				next++
			case r < 6: // out of order: below, or far beyond
				id := uint64(1 + rng.IntN(int(next)))
				if rng.IntN(2) == 0 {
					id = next + uint64(rng.IntN(100*tblockItems))
				}
				tb.Put(Item{ID: id, Attempts: uint32(step)})
				model[id] = uint32(step)
			default: // remove one that is there, or not
				id := uint64(1 + rng.IntN(int(next)))
				_, want := model[id]
				if got := tb.Remove(id); got != want {
					t.Fatalf("seed %d step %d: Remove(%d) = %v, want %v", seed, step, id, got, want)
				}
				delete(model, id)
			}
			if tb.Len() != len(model) {
				t.Fatalf("seed %d step %d: Len %d, want %d", seed, step, tb.Len(), len(model))
			}
		}
		var ids []uint64
		for id, a := range model {
			ids = append(ids, id)
			if it := tb.Get(id); it == nil || it.Attempts != a {
				t.Fatalf("seed %d: Get(%d) = %+v, want attempts %d", seed, id, it, a)
			}
		}
		slices.Sort(ids)
		var got []uint64
		tb.Ascend(func(it *Item) bool { got = append(got, it.ID); return true })
		if !slices.Equal(got, ids) {
			t.Fatalf("seed %d: Ascend gave %d ids, want %d in order", seed, len(got), len(ids))
		}
		// Read in chunks from where the last one ended, as a snapshot does.
		got = got[:0]
		from := uint64(0)
		for {
			n := 0
			tb.AscendFrom(from, func(it *Item) bool { got = append(got, it.ID); from = it.ID + 1; n++; return n < 64 })
			if n == 0 {
				break
			}
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("seed %d: AscendFrom in chunks gave %d ids, want %d in order", seed, len(got), len(ids))
		}
	}
}

// TestTableSparseWindowSpills: one item kept while millions of ids pass
// must not keep a window of millions of slots.
func TestTableSparseWindowSpills(t *testing.T) {
	var tb table
	tb.Put(Item{ID: 1})
	for id := uint64(2); id < 2_000_000; id++ {
		tb.Put(Item{ID: id})
		tb.Remove(id)
	}
	if tb.Len() != 1 || tb.Get(1) == nil {
		t.Fatalf("Len %d, Get(1) %v", tb.Len(), tb.Get(1))
	}
	if slots := tb.nb * tblockItems; slots > spillFactor*tb.inWin+spillSlack+tblockItems {
		t.Fatalf("window of %d slots for %d items in it", slots, tb.inWin)
	}
}

// TestTablePutSettleAllocates nothing once warm: the cost of a queue's
// items is their blocks.
func TestTablePutSettleAllocates(t *testing.T) {
	var tb table
	id := uint64(1)
	cycle := func() {
		for range 1000 {
			tb.Put(Item{ID: id})
			id++
		}
		for k := id - 1000; k < id; k++ {
			tb.Remove(k)
		}
	}
	cycle()
	if a := testing.AllocsPerRun(100, cycle); a != 0 {
		t.Fatalf("%v allocations per 1,000 puts and settles", a)
	}
}

func BenchmarkTablePutRemove(b *testing.B) {
	var tb table
	id := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		tb.Put(Item{ID: id})
		if id > 4096 {
			tb.Remove(id - 4096)
		}
		id++
	}
}

// TestTableWalk: NextFrom meets every item of the window in id order, and
// a pinned window does not spill what a walk has yet to reach.
func TestTableWalk(t *testing.T) {
	var tb table
	for id := uint64(10); id < 10+5*tblockItems; id++ {
		tb.Put(Item{ID: id})
	}
	for id := uint64(10); id < 10+5*tblockItems; id += 2 {
		tb.Remove(id)
	}
	var got []uint64
	for it := tb.NextFrom(0); it != nil; it = tb.NextFrom(it.ID + 1) {
		got = append(got, it.ID)
	}
	if len(got) != tb.Len() || got[0] != 11 || !slices.IsSorted(got) {
		t.Fatalf("walk met %d items from %v, table holds %d", len(got), got[:1], tb.Len())
	}
	// One old item behind the walk, the walk at 1000 with 1,000 items to
	// go, and a million ids settled after them: the items the walk has yet
	// to reach stay in the window; the old one may spill, and is still
	// found.
	var p table
	p.Put(Item{ID: 1})
	p.pin = 1000
	for id := uint64(2); id < 1_000_000; id++ {
		p.Put(Item{ID: id})
		if id < 1000 || id >= 2000 {
			p.Remove(id)
		}
	}
	for id := uint64(1000); id < 2000; id++ {
		if !p.InWindow(id) || p.Get(id) == nil {
			t.Fatalf("item %d, not yet walked, left the window", id)
		}
	}
	if p.Get(1) == nil || p.Len() != 1001 {
		t.Fatalf("Get(1) %v, Len %d", p.Get(1), p.Len())
	}
}

// TestTableInWindowOverflow: an item held in the overflow is not in the
// window, even once the window, emptied and started again at a lower id,
// spans its id: the walk does not meet it, so InWindow must not say it
// does (the live master would count it ready and never hand it out).
func TestTableInWindowOverflow(t *testing.T) {
	var tb table
	tb.Put(Item{ID: 100})
	tb.Put(Item{ID: 50}) // below the window: to the overflow
	tb.Remove(100)       // the window empties
	tb.Put(Item{ID: 40}) // and starts again at 40, spanning 50
	var walked []uint64
	for it := tb.NextFrom(0); it != nil; it = tb.NextFrom(it.ID + 1) {
		walked = append(walked, it.ID)
	}
	for _, id := range []uint64{40, 50} {
		if got, want := tb.InWindow(id), slices.Contains(walked, id); got != want {
			t.Errorf("InWindow(%d) = %v; the walk met %v", id, got, walked)
		}
	}
	if tb.Get(50) == nil || tb.Len() != 2 {
		t.Fatalf("Get(50) %v, Len %d", tb.Get(50), tb.Len())
	}
}
