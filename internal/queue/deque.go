package queue

// deque holds a queue's ready entries by value, in order. Producers append
// at the back, consumers take from the front, and items handed back (expired
// leases, nacks, lost consumers) go to the front so they are redone first.
//
// The entries live in fixed-size blocks, kept in a ring of block pointers.
// A backlog costs its entries and little more: two partly used blocks at
// most, and a few spare ones. Growing takes one block and copies nothing,
// so a put never stalls the queue to move a large ring; a block is given up
// as soon as its last entry is taken, so memory goes back as a backlog
// drains. The spare blocks keep a queue whose size goes up and down by a
// few thousand items, as deliveries and acks in batches make it, from
// allocating at all. Every operation is O(1) amortised.
type deque struct {
	blocks []*block // ring of blocks; its length is zero or a power of two
	first  int      // index in blocks of the front block
	nb     int      // blocks in use
	off    int      // index in the front block of the front entry
	n      int      // entries
	spare  []*block // empty blocks, at most maxSpareBlocks
}

// blockSize is the number of entries in one block: as many as fit in 16 KiB,
// a size class of the allocator, with room for the 8-byte header it puts
// before larger objects that hold pointers (292 entries of 56 bytes are
// 16,352 bytes). A power of two would waste an eighth of every block: 256
// entries are 14,336 bytes, which with the header take the next class up.
const blockSize = 292

type block [blockSize]entry

// maxSpareBlocks bounds the empty blocks a deque keeps for reuse: 128 KiB,
// room for 2,336 items.
const maxSpareBlocks = 8

func (d *deque) len() int { return d.n }

// blockAt returns the i-th block in use, from the front.
func (d *deque) blockAt(i int) *block {
	return d.blocks[(d.first+i)&(len(d.blocks)-1)]
}

// at returns the i-th entry from the front; i must be < len(). The pointer
// is valid until the deque next changes.
func (d *deque) at(i int) *entry {
	p := d.off + i
	return &d.blockAt(p / blockSize)[p%blockSize]
}

// newBlock returns an empty block, a spare one if there is one.
func (d *deque) newBlock() *block {
	if n := len(d.spare); n > 0 {
		b := d.spare[n-1]
		d.spare[n-1] = nil
		d.spare = d.spare[:n-1]
		return b
	}
	return new(block)
}

// makeRoom ensures the ring of blocks has a free slot.
func (d *deque) makeRoom() {
	if d.nb < len(d.blocks) {
		return
	}
	d.resizeRing(max(2*len(d.blocks), 4))
}

// resizeRing moves the blocks in use to the start of a ring of size slots.
func (d *deque) resizeRing(size int) {
	blocks := make([]*block, size)
	for i := range d.nb {
		blocks[i] = d.blockAt(i)
	}
	d.blocks, d.first = blocks, 0
}

func (d *deque) pushBack(e entry) {
	p := d.off + d.n
	if p == d.nb*blockSize { // the back block is full, or there is none
		d.makeRoom()
		d.blocks[(d.first+d.nb)&(len(d.blocks)-1)] = d.newBlock()
		d.nb++
	}
	d.blockAt(p / blockSize)[p%blockSize] = e
	d.n++
}

func (d *deque) pushFront(e entry) {
	if d.off == 0 { // the front block is full, or there is none
		d.makeRoom()
		d.first = (d.first - 1) & (len(d.blocks) - 1)
		d.blocks[d.first] = d.newBlock()
		d.nb++
		d.off = blockSize
	}
	d.off--
	d.blockAt(0)[d.off] = e
	d.n++
}

// popFront removes the front entry and returns it; the deque must not be
// empty.
func (d *deque) popFront() entry {
	var e entry
	d.popFrontTo(&e)
	return e
}

// popFrontTo moves the front entry to *dst; the deque must not be empty.
func (d *deque) popFrontTo(dst *entry) {
	if d.n == 0 {
		panic("queue: popFront on an empty deque")
	}
	b := d.blockAt(0)
	*dst = b[d.off]
	b[d.off] = entry{} // the block must not keep the payload alive
	d.off++
	d.n--
	if d.off == blockSize || d.n == 0 {
		d.dropFront(b)
	}
}

// dropFront gives up the front block b, which holds nothing now: every slot
// was emptied when it was taken, or never filled.
func (d *deque) dropFront(b *block) {
	d.blocks[d.first] = nil
	d.first = (d.first + 1) & (len(d.blocks) - 1)
	d.nb--
	d.off = 0
	if len(d.spare) < maxSpareBlocks {
		d.spare = append(d.spare, b)
	}
	d.shrink()
}

// shrink releases the ring of blocks, which is small beside the blocks
// themselves, after a large backlog has drained.
func (d *deque) shrink() {
	if len(d.blocks) > 64 && d.nb < len(d.blocks)/4 {
		d.resizeRing(len(d.blocks) / 2)
	}
}

// remove deletes the entries for which drop returns true, keeping order, and
// returns them. It is O(n) and meant for rare operations such as requeueing
// chosen dead items. The kept entries are copied to new blocks, so a large
// dead-letter queue that was requeued does not pin its old blocks for ever.
func (d *deque) remove(drop func(*entry) bool) []entry {
	var removed []entry
	var kept deque
	for i := range d.n {
		e := d.at(i)
		if drop(e) {
			removed = append(removed, *e)
		} else {
			kept.pushBack(*e)
		}
	}
	*d = kept
	return removed
}
