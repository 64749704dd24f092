package queue

import "time"

// A retried item does not come back at once: it waits out a delay as a
// delayed item, so that a failure that lasts a while (a database that is
// down for a minute) does not use up every attempt of every task in flight
// within milliseconds. Delayed items sit in a min-heap by due time, one per
// queue, and the broker's single scan loop makes the due ones ready; there
// is no timer per item.

// delayed is an item waiting out its retry delay: it is in the queue's
// logged state, with the same due time.
type delayed struct {
	due int64 // unix nanoseconds
	id  uint64
}

// delayHeap is a min-heap of delayed items by due time; items due at the
// same time come out oldest (lowest id) first, so the order never depends
// on the heap's shape.
type delayHeap []delayed

func (h delayHeap) less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].id < h[j].id
}

func (h delayHeap) swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *delayHeap) push(d delayed) {
	*h = append(*h, d)
	h.up(len(*h) - 1)
}

// peek returns the item due first, or nil. The pointer is valid until the
// heap next changes.
func (h delayHeap) peek() *delayed {
	if len(h) == 0 {
		return nil
	}
	return &h[0]
}

// pop takes out the item due first; the heap must not be empty.
func (h *delayHeap) pop() delayed {
	old := *h
	last := len(old) - 1
	d := old[0]
	old[0] = old[last]
	*h = old[:last]
	if last > 0 {
		h.down(0)
	}
	if c := cap(*h); c > 1024 && last < c/4 {
		// Release the memory of a large batch of retries once due.
		*h = append(make(delayHeap, 0, c/2), *h...)
	}
	return d
}

func (h delayHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h delayHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n || l < 0 {
			return
		}
		j := l
		if r := l + 1; r < n && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			return
		}
		h.swap(i, j)
		i = j
	}
}

// backoff is how long an item waits before its retry after its attempts-th
// delivery failed: d = min(hi, lo·2^(attempts-1)), and the wait is
// d/2 + jitter·d/2, so between half of d and d. The jitter, in [0, 1), is
// drawn by the caller (the gRPC edge): the core draws no random numbers, so
// that tests on a manual clock know every due time. Half of d at least
// keeps the exponential growth; the random other half keeps items that
// failed together (a dependency went down) from all coming back together.
func backoff(lo, hi time.Duration, attempts uint32, jitter float64) time.Duration {
	n := max(attempts, 1) - 1
	d := hi
	if n < 63 && lo <= hi>>n { // lo<<n <= hi, without overflow
		d = lo << n
	}
	if !(jitter >= 0 && jitter < 1) { // NaN too
		jitter = 0
	}
	half := d / 2
	return half + time.Duration(jitter*float64(half))
}
