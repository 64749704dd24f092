package queue

// idDeque is a ring of item ids: push at either end, pop at the front.
// It grows by doubling and shrinks when mostly empty, so a burst of
// handed-back items does not keep its memory for ever.
type idDeque struct {
	buf  []uint64 // length zero or a power of two
	head int
	n    int
}

func (d *idDeque) len() int { return d.n }

func (d *idDeque) at(i int) uint64 { return d.buf[(d.head+i)&(len(d.buf)-1)] }

func (d *idDeque) grow() {
	if d.n < len(d.buf) {
		return
	}
	d.resize(max(2*len(d.buf), 16))
}

func (d *idDeque) resize(size int) {
	buf := make([]uint64, size)
	for i := range d.n {
		buf[i] = d.at(i)
	}
	d.buf, d.head = buf, 0
}

func (d *idDeque) pushBack(id uint64) {
	d.grow()
	d.buf[(d.head+d.n)&(len(d.buf)-1)] = id
	d.n++
}

func (d *idDeque) pushFront(id uint64) {
	d.grow()
	d.head = (d.head - 1) & (len(d.buf) - 1)
	d.buf[d.head] = id
	d.n++
}

// popFront removes and returns the front id; the deque must not be empty.
func (d *idDeque) popFront() uint64 {
	id := d.buf[d.head]
	d.head = (d.head + 1) & (len(d.buf) - 1)
	d.n--
	if len(d.buf) > 1024 && d.n < len(d.buf)/8 {
		d.resize(len(d.buf) / 4)
	}
	return id
}
