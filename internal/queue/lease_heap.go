package queue

// leaseHeap is a min-heap of leases ordered by deadline. Each lease keeps
// its own index in the heap, so settling or extending one lease is
// O(log n) and one scan loop can expire leases without a timer per item (the
// design of nsqd's in-flight priority queue).
type leaseHeap []*lease

func (h leaseHeap) less(i, j int) bool { return h[i].deadline < h[j].deadline }

func (h leaseHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h *leaseHeap) push(l *lease) {
	l.heapIdx = len(*h)
	*h = append(*h, l)
	h.up(l.heapIdx)
}

// peek returns the lease that runs out first, or nil.
func (h leaseHeap) peek() *lease {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

// remove takes l out of the heap; l must be in the heap.
func (h *leaseHeap) remove(l *lease) {
	i := l.heapIdx
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	if c := cap(*h); c > 1024 && last < c/4 {
		// Release the memory of a large batch of leases once settled.
		*h = append(make(leaseHeap, 0, c/2), *h...)
	}
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	l.heapIdx = -1
}

// fix restores the order after l.deadline changed.
func (h leaseHeap) fix(l *lease) {
	if !h.down(l.heapIdx) {
		h.up(l.heapIdx)
	}
}

func (h leaseHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h leaseHeap) down(i0 int) bool {
	i := i0
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n || l < 0 {
			break
		}
		j := l
		if r := l + 1; r < n && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
