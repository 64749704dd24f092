package queue

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// newItems makes n entries with ids 1..n, each with a payload of its own so
// that a test can see the payload travel with its entry.
func newItems(n int) []entry {
	out := make([]entry, n)
	for i := range out {
		out[i] = entry{id: uint64(i + 1), payload: []byte{byte(i)}}
	}
	return out
}

// same reports whether a and b are the same entry: same id, same payload.
func same(a, b entry) bool {
	return a.id == b.id && len(a.payload) == len(b.payload) && (len(a.payload) == 0 || &a.payload[0] == &b.payload[0])
}

func blankEntry(e entry) bool {
	return e.id == 0 && e.replyTo == 0 && e.payload == nil && e.ext == nil && e.attempts == 0
}

func dequeIDs(d *deque) []uint64 {
	out := make([]uint64, d.len())
	for i := range out {
		out[i] = d.at(i).id
	}
	return out
}

func equalIDs(a []uint64, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i].id {
			return false
		}
	}
	return true
}

// checkDeque verifies the deque's layout: exactly the blocks its entries
// need are in use, each once, and no slot outside the entries, no unused
// ring slot and no spare block keeps anything alive.
func checkDeque(d *deque) error {
	if r := len(d.blocks); r&(r-1) != 0 {
		return fmt.Errorf("deque: ring of %d blocks is not a power of two", r)
	}
	if d.n < 0 || d.off < 0 || d.off >= blockSize || d.nb > len(d.blocks) {
		return fmt.Errorf("deque: n %d, off %d, %d blocks in use of %d", d.n, d.off, d.nb, len(d.blocks))
	}
	if want := (d.off + d.n + blockSize - 1) / blockSize; d.nb != want || d.n == 0 && d.off != 0 {
		return fmt.Errorf("deque: %d blocks in use for %d entries from offset %d", d.nb, d.n, d.off)
	}
	seen := map[*block]bool{}
	for i := range len(d.blocks) {
		b := d.blocks[(d.first+i)&(len(d.blocks)-1)]
		if i >= d.nb {
			if b != nil {
				return fmt.Errorf("deque: unused ring slot %d holds a block", i)
			}
			continue
		}
		if b == nil || seen[b] {
			return fmt.Errorf("deque: block %d missing or used twice", i)
		}
		seen[b] = true
		for j := range b {
			p := i*blockSize + j - d.off
			if (p < 0 || p >= d.n) && !blankEntry(b[j]) {
				return fmt.Errorf("deque: free slot %d of block %d holds item %d", j, i, b[j].id)
			}
		}
	}
	if len(d.spare) > maxSpareBlocks {
		return fmt.Errorf("deque: %d spare blocks, at most %d kept", len(d.spare), maxSpareBlocks)
	}
	for i, b := range d.spare {
		if b == nil || seen[b] {
			return fmt.Errorf("deque: spare block %d missing, in use or spare twice", i)
		}
		seen[b] = true
		for j := range b {
			if !blankEntry(b[j]) {
				return fmt.Errorf("deque: spare block %d holds item %d", i, b[j].id)
			}
		}
	}
	for _, b := range d.spare[len(d.spare):cap(d.spare)] {
		if b != nil {
			return fmt.Errorf("deque: the spare list's free room keeps a block")
		}
	}
	return nil
}

func mustCheckDeque(t *testing.T, d *deque) {
	t.Helper()
	if err := checkDeque(d); err != nil {
		t.Fatal(err)
	}
}

func TestDequeBothEnds(t *testing.T) {
	var d deque
	if d.len() != 0 {
		t.Fatal("empty deque not empty")
	}
	its := newItems(4)
	d.pushBack(its[1])
	d.pushBack(its[2])
	d.pushFront(its[0])
	d.pushBack(its[3])
	mustCheckDeque(t, &d)
	if got := dequeIDs(&d); !equalIDs(got, its) {
		t.Fatalf("order %v", got)
	}
	for i, want := range its {
		if got := d.popFront(); !same(got, want) {
			t.Fatalf("pop %d: got %v", i, got)
		}
		mustCheckDeque(t, &d)
	}
	if d.len() != 0 || d.nb != 0 {
		t.Fatal("deque not empty after popping all")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("popFront on an empty deque did not panic")
			}
		}()
		d.popFront()
	}()
}

// TestDequeBlockReuse: a queue whose size stays small while its items go
// through it in their thousands, crossing block boundaries at either end or
// emptying again and again, uses two blocks and a spare one, and allocates
// nothing.
func TestDequeBlockReuse(t *testing.T) {
	var d deque
	its := newItems(20000)
	blocks := map[*block]bool{}
	note := func() {
		for i := range d.nb {
			blocks[d.blockAt(i)] = true
		}
		for _, b := range d.spare {
			blocks[b] = true
		}
	}
	var want []entry
	for _, it := range its[:10] {
		d.pushBack(it)
		want = append(want, it)
	}
	for i, it := range its[10 : len(its)/2] {
		if got := d.popFront(); !same(got, want[0]) {
			t.Fatalf("at %d: popped %d, want %d", i, got.id, want[0].id)
		}
		want = want[1:]
		d.pushBack(it)
		want = append(want, it)
		note()
		if d.nb > 2 {
			t.Fatalf("at %d: %d blocks in use for %d items", i, d.nb, d.len())
		}
	}
	if !equalIDs(dequeIDs(&d), want) {
		t.Fatal("order lost while going round")
	}
	mustCheckDeque(t, &d)
	// Items handed back to the front, across the front block's start.
	for i := range 20 {
		back := its[:blockSize/2+i]
		for _, it := range back {
			d.pushFront(it)
		}
		note()
		for j := len(back) - 1; j >= 0; j-- {
			if got := d.popFront(); !same(got, back[j]) {
				t.Fatalf("handed back %d, popped %d", back[j].id, got.id)
			}
		}
		note()
	}
	if !equalIDs(dequeIDs(&d), want) {
		t.Fatal("order lost at the front")
	}
	// Emptying and filling again.
	for _, it := range its[len(its)/2:] {
		for d.len() > 0 {
			d.popFront()
		}
		d.pushFront(it)
		note()
	}
	mustCheckDeque(t, &d)
	if len(blocks) > 3 {
		t.Fatalf("%d blocks allocated, want at most 3", len(blocks))
	}
	d = deque{}
	d.pushBack(its[0])
	if n := testing.AllocsPerRun(1000, func() {
		for range 3 * blockSize {
			d.pushBack(d.popFront())
		}
		d.pushFront(d.popFront())
	}); n != 0 {
		t.Fatalf("%v allocations going round", n)
	}
	// Nor does a queue that grows and shrinks by a few thousand items.
	if n := testing.AllocsPerRun(100, func() {
		for _, it := range its[:(maxSpareBlocks-1)*blockSize] {
			d.pushBack(it)
		}
		for d.len() > 1 {
			d.popFront()
		}
	}); n != 0 {
		t.Fatalf("%v allocations growing and shrinking", n)
	}
	mustCheckDeque(t, &d)
}

func TestDequeGrowShrink(t *testing.T) {
	var d deque
	its := newItems(100000)
	// Grow from the middle of a block, at both ends.
	for i := range 8 {
		d.pushBack(its[i])
	}
	for range 6 {
		d.popFront()
	}
	for _, it := range its[8:] {
		d.pushBack(it)
	}
	if d.len() != len(its)-6 || !equalIDs(dequeIDs(&d), its[6:]) {
		t.Fatal("order lost while growing")
	}
	mustCheckDeque(t, &d) // no more blocks than the items need
	for i := 5; i >= 0; i-- {
		d.pushFront(its[i])
	}
	if !equalIDs(dequeIDs(&d), its) {
		t.Fatal("order lost while growing at the front")
	}
	mustCheckDeque(t, &d)
	for i := 0; i < len(its)-10; i++ {
		if got := d.popFront(); !same(got, its[i]) {
			t.Fatalf("pop %d: got %d", i, got.id)
		}
	}
	mustCheckDeque(t, &d)
	if d.nb > 2 || len(d.blocks) > 64 {
		t.Fatalf("memory not released: %d blocks in use, ring of %d, for %d items", d.nb, len(d.blocks), d.len())
	}
	if !equalIDs(dequeIDs(&d), its[len(its)-10:]) {
		t.Fatal("order lost while shrinking")
	}
}

func TestDequeRemove(t *testing.T) {
	var d deque
	its := newItems(3000)
	for _, it := range its[1:] {
		d.pushBack(it)
	}
	d.pushFront(its[0]) // a block of its own at the front
	removed := d.remove(func(e *entry) bool { return e.id%3 == 0 })
	var wantRemoved, wantKept []entry
	for _, it := range its {
		if it.id%3 == 0 {
			wantRemoved = append(wantRemoved, it)
		} else {
			wantKept = append(wantKept, it)
		}
	}
	if len(removed) != len(wantRemoved) {
		t.Fatalf("removed %d, want %d", len(removed), len(wantRemoved))
	}
	for i := range removed {
		if !same(removed[i], wantRemoved[i]) {
			t.Fatalf("removed[%d] = %d", i, removed[i].id)
		}
	}
	if !equalIDs(dequeIDs(&d), wantKept) {
		t.Fatal("kept items out of order")
	}
	mustCheckDeque(t, &d)
	// The deque works on after remove, including at both ends.
	extra := entry{id: 99999, payload: []byte("x")}
	d.pushFront(extra)
	d.pushBack(entry{id: 100000})
	if !same(d.popFront(), extra) || d.len() != len(wantKept)+1 {
		t.Fatal("deque broken after remove")
	}
	// Removing everything releases the memory.
	d.remove(func(*entry) bool { return true })
	if d.len() != 0 || len(d.blocks) != 0 || d.spare != nil {
		t.Fatalf("after removing all: len %d, ring %d, %d spare blocks", d.len(), len(d.blocks), len(d.spare))
	}
	d.pushFront(extra)
	if !same(d.popFront(), extra) {
		t.Fatal("deque broken after removing all")
	}
}

// TestDequeRandom checks the deque against a slice, in phases that let it
// grow over several blocks and drain again.
func TestDequeRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var d deque
	var model []entry
	id := uint64(0)
	for step := range 200000 {
		back, front := 250, 350 // of 1000; then pop, and rarely remove
		if step/20000%2 == 0 {
			back, front = 400, 600
		}
		switch r := rng.IntN(1000); {
		case r < back:
			id++
			e := entry{id: id, payload: []byte{byte(id)}}
			d.pushBack(e)
			model = append(model, e)
		case r < front:
			id++
			e := entry{id: id, payload: []byte{byte(id)}}
			d.pushFront(e)
			model = append([]entry{e}, model...)
		case r < 999:
			if len(model) == 0 {
				continue
			}
			if got := d.popFront(); !same(got, model[0]) {
				t.Fatalf("step %d: popped %v, want %d", step, got, model[0].id)
			}
			model = model[1:]
		default:
			k := uint64(rng.IntN(7) + 2)
			d.remove(func(e *entry) bool { return e.id%k == 0 })
			kept := model[:0:0]
			for _, e := range model {
				if e.id%k != 0 {
					kept = append(kept, e)
				}
			}
			model = kept
		}
		if d.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, d.len(), len(model))
		}
		if step%1000 == 0 {
			if !equalIDs(dequeIDs(&d), model) {
				t.Fatalf("step %d: contents differ", step)
			}
			if err := checkDeque(&d); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
}

// TestDequeBlockSize: a block fills its allocation size class, 16 KiB, but
// for the allocator's 8-byte header of objects with pointers.
func TestDequeBlockSize(t *testing.T) {
	const class, header = 16 << 10, 8
	size := unsafe.Sizeof(block{})
	if size+header > class || size+header+unsafe.Sizeof(entry{}) <= class {
		t.Fatalf("a block is %d bytes: %d entries of %d bytes do not fill %d bytes", size, blockSize, unsafe.Sizeof(entry{}), class-header)
	}
}
