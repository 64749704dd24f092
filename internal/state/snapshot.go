package state

// The records of a snapshot. A snapshot is the state written as commands
// that rebuild it: restoring is applying them to an empty machine, and then
// replaying the log from where the snapshot began. Like every command they
// set absolute values, so a snapshot written while commands went on (each
// queue read in chunks, the locks released between them) is made exact by
// that replay.

// QueueMeta is a queue's own state: its origin, the highest id given,
// whether it is closed, and whether it is paused. Closed and NextID only
// grow, and are merged (a later close is not undone by an older record);
// Paused is set as it says, as a Pause command does: a snapshot's record
// is followed by the log's pauses and resumes after it, which set it
// again.
type QueueMeta struct {
	Queue  string
	Origin string
	NextID uint64
	Closed bool
	Paused bool
}

// Items is a chunk of a queue's items, whole (attempts, error, due).
type Items struct {
	Queue string
	Items []Item
}

// Producers is a chunk of a queue's producers, oldest last put first.
type Producers struct {
	Queue     string
	Producers []ProducerRecord
}

func (*QueueMeta) Type() Type { return TypeQueueMeta }
func (*Items) Type() Type     { return TypeItems }
func (*Producers) Type() Type { return TypeProducers }

// A live snapshot may read each queue's items in chunks, releasing the
// queue between them, but must read every queue's producers at once at its
// start (they are small): forgetting a producer depends on the time of the
// put that forgets it, and a put replayed over a newer table would keep
// what the live master forgot.

// SnapshotChunk is how many items or producers one snapshot record holds.
const SnapshotChunk = 4096

// Snapshot encodes the whole machine as records and calls emit with each.
// The slice is reused after emit returns: a reader that decodes it in place
// must decode with Decoder.Copy. A queue's dead-letter queue is
// written after it: a Fail that moves an item there while a live snapshot
// reads the queues in chunks either is seen in the origin or in the
// dead-letter queue, and its replay finishes the move.
func (m *Machine) Snapshot(emit func(rec []byte) error) error {
	var buf []byte
	put := func(c Command) error {
		buf = AppendCommand(buf[:0], c)
		return emit(buf)
	}
	if err := put(&Leases{HW: m.leaseHW}); err != nil {
		return err
	}
	names := m.Queues()
	order := make([]string, 0, len(names))
	for _, n := range names {
		if m.queues[n].origin == "" {
			order = append(order, n)
		}
	}
	for _, n := range names {
		if m.queues[n].origin != "" {
			order = append(order, n)
		}
	}
	for _, name := range order {
		q := m.queues[name]
		if err := put(&QueueMeta{Queue: name, Origin: q.origin, NextID: q.nextID, Closed: q.closed, Paused: q.paused}); err != nil {
			return err
		}
		var err error
		chunk := &Items{Queue: name}
		q.Ascend(func(it *Item) bool {
			chunk.Items = append(chunk.Items, *it)
			if len(chunk.Items) == SnapshotChunk {
				err = put(chunk)
				clear(chunk.Items)
				chunk.Items = chunk.Items[:0]
			}
			return err == nil
		})
		if err == nil && len(chunk.Items) > 0 {
			err = put(chunk)
		}
		if err != nil {
			return err
		}
		ps := &Producers{Queue: name}
		q.Producers(func(r *ProducerRecord) bool {
			ps.Producers = append(ps.Producers, *r)
			if len(ps.Producers) == SnapshotChunk {
				err = put(ps)
				ps.Producers = ps.Producers[:0]
			}
			return err == nil
		})
		if err == nil && len(ps.Producers) > 0 {
			err = put(ps)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
