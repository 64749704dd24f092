package state

import "slices"

// table holds a queue's items by id. Ids are handed out in increasing
// order, so puts append at the back of a window of slots indexed by id, and
// settles, which come in any order, clear slots in it: put, lookup and
// settle are O(1) and allocate nothing once blocks are spare. The front of
// the window moves past blocks that empty.
//
// Items whose ids do not fit the window go to an overflow map: ids below its
// front (a dead item requeued into its origin keeps its old id; a
// dead-letter queue receives its origin's ids in the order they fail) or far
// beyond its back. So does a sparse front: when the window holds many more
// slots than items (one item leased for an hour while millions pass), the
// items of its front block move to the overflow and the block is freed, so
// the window's memory stays proportional to the items it holds.
type table struct {
	blocks []*tblock // ring; its length is zero or a power of two
	first  int       // index in blocks of the front block
	nb     int       // blocks in the window
	base   uint64    // id of the front block's first slot
	inWin  int       // items in the window
	over   map[uint64]*Item
	spare  []*tblock
	// pin is the lowest id the live master may still reach by walking the
	// window (see Queue.Pin): a sparse front spills only below it. Zero:
	// nobody walks.
	pin uint64
}

// tblockItems is the slots of one block: with its count, as many 56-byte
// items as fit in 16 KiB, a size class of the allocator (16,304 bytes).
const tblockItems = 291

type tblock struct {
	n     int32 // items in the block
	items [tblockItems]Item
}

const (
	// maxGapBlocks bounds the empty blocks an insert beyond the window's
	// back may add: an id further away goes to the overflow.
	maxGapBlocks = 64
	// spillSlack is the slots a window may have beyond spillFactor times
	// its items before its front block spills to the overflow.
	spillSlack  = 16 * tblockItems
	spillFactor = 4
	// maxSpare bounds the empty blocks kept for reuse (128 KiB).
	maxSpare = 8
)

// Len is the number of items.
func (t *table) Len() int { return t.inWin + len(t.over) }

func (t *table) blockAt(i int) *tblock { return t.blocks[(t.first+i)&(len(t.blocks)-1)] }

// slot returns the window slot of id, or nil if id is outside the window.
func (t *table) slot(id uint64) (*tblock, *Item) {
	if t.nb == 0 || id < t.base {
		return nil, nil
	}
	off := id - t.base
	bi := off / tblockItems
	if bi >= uint64(t.nb) {
		return nil, nil
	}
	b := t.blockAt(int(bi))
	return b, &b.items[off%tblockItems]
}

// Get returns the item of id, or nil. The pointer is valid until the table
// next changes.
func (t *table) Get(id uint64) *Item {
	if _, it := t.slot(id); it != nil && it.ID == id {
		return it
	}
	// Not in its slot: the overflow may hold it even inside the window's
	// range (put far beyond the back, before the window grew to it).
	if t.over != nil {
		return t.over[id]
	}
	return nil
}

// Put inserts it, replacing an item of the same id. Ids are never zero.
func (t *table) Put(it Item) {
	s, _ := t.insert(it.ID)
	*s = it
}

// insert returns the slot of id for the caller to fill: the item of id if
// there is one, else a blank slot counted as an item. It reports whether
// the slot is in the window.
func (t *table) insert(id uint64) (*Item, bool) {
	if t.over != nil {
		if p, ok := t.over[id]; ok {
			return p, false
		}
	}
	if t.nb == 0 {
		t.base = id
	}
	if id >= t.base {
		bi := (id - t.base) / tblockItems
		if bi >= uint64(t.nb) && bi-uint64(t.nb) < maxGapBlocks {
			for uint64(t.nb) <= bi {
				t.pushBlock()
			}
		}
		if bi < uint64(t.nb) {
			b := t.blockAt(int(bi))
			s := &b.items[(id-t.base)%tblockItems]
			if s.ID == 0 {
				b.n++
				t.inWin++
				s.ID = id
			}
			return s, true
		}
	}
	if t.over == nil {
		t.over = make(map[uint64]*Item)
	}
	p := &Item{ID: id}
	t.over[id] = p
	return p, false
}

// clear blanks the slot s, keeping no payload alive. Field by field, as
// setNew fills it: a pointer that is nil already takes no write barrier.
func (s *Item) clear() {
	s.ID = 0
	s.ReplyTo = 0
	s.Attempts = 0
	if s.Payload != nil {
		s.Payload = nil
	}
	if s.ext != nil {
		s.ext = nil
	}
}

// Remove deletes the item of id and reports whether it was there.
func (t *table) Remove(id uint64) bool {
	if b, s := t.slot(id); s != nil && s.ID == id {
		s.clear()
		b.n--
		t.inWin--
		t.trim()
		return true
	}
	if _, ok := t.over[id]; ok {
		delete(t.over, id)
		return true
	}
	return false
}

func (t *table) pushBlock() {
	if t.nb == len(t.blocks) {
		n := max(2*len(t.blocks), 4)
		blocks := make([]*tblock, n)
		for i := range t.nb {
			blocks[i] = t.blockAt(i)
		}
		t.blocks, t.first = blocks, 0
	}
	var b *tblock
	if n := len(t.spare); n > 0 {
		b = t.spare[n-1]
		t.spare = t.spare[:n-1]
	} else {
		b = new(tblock)
	}
	t.blocks[(t.first+t.nb)&(len(t.blocks)-1)] = b
	t.nb++
}

// popBlock frees the front block, which must be empty.
func (t *table) popBlock() {
	i := t.first
	b := t.blocks[i]
	t.blocks[i] = nil
	t.first = (i + 1) & (len(t.blocks) - 1)
	t.nb--
	t.base += tblockItems
	if len(t.spare) < maxSpare {
		t.spare = append(t.spare, b)
	}
	if t.nb == 0 {
		t.first = 0
	}
}

// trim frees empty blocks at the front, and spills a sparse front to the
// overflow.
func (t *table) trim() {
	for t.nb > 0 {
		b := t.blockAt(0)
		if b.n == 0 {
			t.popBlock()
			continue
		}
		if t.nb*tblockItems <= spillFactor*t.inWin+spillSlack || t.pin != 0 && t.base+tblockItems > t.pin {
			return
		}
		if t.over == nil {
			t.over = make(map[uint64]*Item)
		}
		for i := range b.items {
			if s := &b.items[i]; s.ID != 0 {
				p := new(Item)
				*p = *s
				t.over[s.ID] = p
				*s = Item{}
			}
		}
		t.inWin -= int(b.n)
		b.n = 0
	}
}

// InWindow reports whether the item of id is in its window slot: a walk
// with NextFrom meets it. An item in the overflow is not, even if the
// window spans its id (it started again lower after it emptied).
func (t *table) InWindow(id uint64) bool {
	_, s := t.slot(id)
	return s != nil && s.ID == id
}

// NextFrom returns the window's first item whose id is at least id, or nil.
// Walking the window this way visits each slot once however the items
// were settled, as the slots behind the walk are never visited again.
func (t *table) NextFrom(id uint64) *Item {
	if t.nb == 0 {
		return nil
	}
	if id < t.base {
		id = t.base
	}
	off := id - t.base
	if bi := off / tblockItems; bi < uint64(t.nb) {
		// Most often the walk's next item is in the very next slot.
		if s := &t.blockAt(int(bi)).items[off%tblockItems]; s.ID != 0 {
			return s
		}
	}
	for bi := off / tblockItems; bi < uint64(t.nb); bi++ {
		b := t.blockAt(int(bi))
		j := uint64(0)
		if bi == off/tblockItems {
			j = off % tblockItems
		}
		if b.n == 0 {
			continue
		}
		for ; j < tblockItems; j++ {
			if s := &b.items[j]; s.ID != 0 {
				return s
			}
		}
	}
	return nil
}

// Ascend calls fn with every item in increasing id order until fn returns
// false. fn must not change the table.
func (t *table) Ascend(fn func(*Item) bool) { t.AscendFrom(0, fn) }

// AscendFrom is Ascend from the first id at least from.
func (t *table) AscendFrom(from uint64, fn func(*Item) bool) {
	var over []uint64
	for id := range t.over {
		if id >= from {
			over = append(over, id)
		}
	}
	slices.Sort(over)
	k := 0
	for it := t.NextFrom(from); it != nil; it = t.NextFrom(it.ID + 1) {
		for ; k < len(over) && over[k] < it.ID; k++ {
			if !fn(t.over[over[k]]) {
				return
			}
		}
		if !fn(it) {
			return
		}
	}
	for ; k < len(over); k++ {
		if !fn(t.over[over[k]]) {
			return
		}
	}
}
