package state

// Item is one unsettled item of a queue: ready, leased by the live master,
// delayed for a retry, or dead in a dead-letter queue. A plain item (no
// headers, no error, no retry time) is these 56 bytes and its payload, with
// no object of its own on the heap: the same size as the live master's
// entry, so that a backlog of millions costs no more here.
type Item struct {
	ID uint64
	// ReplyTo is the id of the item this one is the reply to (results).
	ReplyTo uint64
	Payload []byte
	ext     *itemExt // nil for a plain item
	// Attempts counts the failed deliveries that were logged: nacks,
	// expired leases, lost consumers. A delivery in flight is not counted
	// until it fails (see the package doc).
	Attempts uint32
}

// itemExt holds what few items have.
type itemExt struct {
	headers map[string]string
	lastErr string
	// due, when not zero, is when a retried item is ready again (unix ns).
	// An item whose due has passed is ready: nothing is logged when it
	// becomes so.
	due int64
}

// Headers are the item's headers (nil if none). They are shared, not
// copied: callers must not modify them.
func (it *Item) Headers() map[string]string {
	if it.ext == nil {
		return nil
	}
	return it.ext.headers
}

// LastErr is the error of the item's last failed attempt.
func (it *Item) LastErr() string {
	if it.ext == nil {
		return ""
	}
	return it.ext.lastErr
}

// Due is when a retried item is ready again (unix ns), or zero.
func (it *Item) Due() int64 {
	if it.ext == nil {
		return 0
	}
	return it.ext.due
}

// SetHeaders sets the item's headers (nil for none).
func (it *Item) SetHeaders(h map[string]string) {
	if len(h) == 0 {
		h = nil
	}
	it.setExt(h, it.LastErr(), it.Due())
}

// SetLastErr sets the item's last error.
func (it *Item) SetLastErr(s string) { it.setExt(it.Headers(), s, it.Due()) }

// SetDue sets when the item is ready again (zero: now).
func (it *Item) SetDue(due int64) { it.setExt(it.Headers(), it.LastErr(), due) }

// setExt keeps an extension only while it holds something, and changes
// the one it has in place: an item retried again and again allocates its
// extension once. A copy of an Item shares its extension, so whoever copies
// items out of the state (a snapshot) encodes them before the state next
// changes.
func (it *Item) setExt(h map[string]string, lastErr string, due int64) {
	if h == nil && lastErr == "" && due == 0 {
		it.ext = nil
		return
	}
	if e := it.ext; e != nil {
		e.headers, e.lastErr, e.due = h, lastErr, due
		return
	}
	it.ext = &itemExt{headers: h, lastErr: lastErr, due: due}
}
