package queue

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func checkHeap(t *testing.T, h leaseHeap, members map[*lease]bool) {
	t.Helper()
	if len(h) != len(members) {
		t.Fatalf("heap holds %d, want %d", len(h), len(members))
	}
	for i, l := range h {
		if l.heapIdx != i {
			t.Fatalf("h[%d].heapIdx = %d", i, l.heapIdx)
		}
		if !members[l] {
			t.Fatalf("h[%d] (id %d) should not be in the heap", i, l.id)
		}
		if i > 0 && h[(i-1)/2].deadline > l.deadline {
			t.Fatalf("order broken at %d", i)
		}
	}
}

func TestLeaseHeapRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	var h leaseHeap
	members := map[*lease]bool{}
	var list []*lease // members, for picking at random
	id := uint64(0)
	pick := func() (int, *lease) {
		i := rng.IntN(len(list))
		return i, list[i]
	}
	for step := range 20000 {
		switch r := rng.IntN(100); {
		case r < 40 || len(list) == 0:
			id++
			l := &lease{id: id, deadline: rng.Int64N(1000)} // many ties
			h.push(l)
			members[l] = true
			list = append(list, l)
		case r < 65:
			i, l := pick()
			h.remove(l)
			if l.heapIdx != -1 {
				t.Fatalf("removed item keeps heapIdx %d", l.heapIdx)
			}
			delete(members, l)
			list[i] = list[len(list)-1]
			list = list[:len(list)-1]
		case r < 90:
			_, l := pick()
			l.deadline = rng.Int64N(1000)
			h.fix(l)
		default:
			// Pop in order, as expire does.
			for range rng.IntN(5) {
				top := h.peek()
				if top == nil {
					break
				}
				for _, l := range list {
					if l.deadline < top.deadline {
						t.Fatalf("step %d: peek %d, but %d is earlier", step, top.deadline, l.deadline)
					}
				}
				h.remove(top)
				delete(members, top)
				i := slices.Index(list, top)
				list[i] = list[len(list)-1]
				list = list[:len(list)-1]
			}
		}
		checkHeap(t, h, members)
	}
	// Draining by peek+remove yields deadlines in order.
	prev := int64(-1)
	for l := h.peek(); l != nil; l = h.peek() {
		if l.deadline < prev {
			t.Fatalf("drain out of order: %d after %d", l.deadline, prev)
		}
		prev = l.deadline
		h.remove(l)
	}
	if len(h) != 0 {
		t.Fatal("heap not empty")
	}
}
