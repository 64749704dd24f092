package state

import (
	"fmt"
	"slices"
	"strings"
)

// The bounds of a queue's producer table. They are part of the format: a
// replay must forget exactly what the live master forgot.
const (
	// SeqsPerProducer is how many of a producer's latest put sequences a
	// queue remembers.
	SeqsPerProducer = 64
	// MaxProducers bounds the producers a queue remembers; past it the one
	// whose last put is oldest is forgotten.
	MaxProducers = 100_000
)

// IDRange is the ids a chunk of a put got: items[Offset:Offset+N] of the
// request have ids FirstID, FirstID+1, ...
type IDRange struct {
	Offset  uint32
	FirstID uint64
	N       uint32
}

// SeqRecord is what a queue remembers of one put of a producer.
type SeqRecord struct {
	Seq    uint64
	CRC    uint32
	Ranges []IDRange
}

// ProducerRecord is what a queue remembers of one producer (also the
// record of a snapshot).
type ProducerRecord struct {
	ID   Producer
	Last int64 // time of its last put (unix ns)
	// Floor is the highest sequence forgotten: a retry of a sequence at or
	// below it that is not in Seqs cannot be told apart from a new put.
	Floor uint64
	Seqs  []SeqRecord // increasing Seq, at most SeqsPerProducer
}

// producers is a queue's table of producers, in the order of their last
// put, so that forgetting the oldest is O(1).
type producers struct {
	byID         map[Producer]*producerNode
	oldest, last *producerNode
}

type producerNode struct {
	ProducerRecord
	prev, next *producerNode
}

func (ps *producers) len() int { return len(ps.byID) }

func (ps *producers) unlink(n *producerNode) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		ps.oldest = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		ps.last = n.prev
	}
	n.prev, n.next = nil, nil
}

func (ps *producers) pushLast(n *producerNode) {
	n.prev, n.next = ps.last, nil
	if ps.last != nil {
		ps.last.next = n
	} else {
		ps.oldest = n
	}
	ps.last = n
}

func (ps *producers) forget(n *producerNode) {
	ps.unlink(n)
	delete(ps.byID, n.ID)
}

// node returns the producer's node, made if new, as the latest.
func (ps *producers) node(id Producer) *producerNode {
	if ps.byID == nil {
		ps.byID = make(map[Producer]*producerNode)
	}
	n := ps.byID[id]
	if n == nil {
		n = &producerNode{ProducerRecord: ProducerRecord{ID: id}}
		ps.byID[id] = n
	} else {
		ps.unlink(n)
	}
	ps.pushLast(n)
	return n
}

// record remembers that p's items got their ids, after forgetting the
// producers whose last put is older than p's dedup window.
func (ps *producers) record(p *Put) {
	if p.DedupWindow > 0 {
		for o := ps.oldest; o != nil && o.Last < p.Time-p.DedupWindow; o = ps.oldest {
			ps.forget(o)
		}
	}
	n := ps.node(p.Producer)
	n.Last = max(n.Last, p.Time)
	r := IDRange{Offset: p.Offset, FirstID: p.FirstID, N: uint32(len(p.Items))}
	i, found := slices.BinarySearchFunc(n.Seqs, p.Seq, cmpSeq)
	switch {
	case found:
		s := &n.Seqs[i]
		if !slices.Contains(s.Ranges, r) { // a replay over a snapshot may hold it
			s.Ranges = append(s.Ranges, r)
		}
	case p.Seq <= n.Floor:
		// Forgotten already: the live master refuses such a put, so only
		// a replay meets it, and remembers nothing new.
	default:
		n.Seqs = slices.Insert(n.Seqs, i, SeqRecord{Seq: p.Seq, CRC: p.BatchCRC, Ranges: []IDRange{r}})
		if len(n.Seqs) > SeqsPerProducer {
			n.Floor = max(n.Floor, n.Seqs[0].Seq)
			n.Seqs = slices.Delete(n.Seqs, 0, 1)
		}
	}
	if len(ps.byID) > MaxProducers {
		ps.forget(ps.oldest)
	}
}

// restore sets a producer from a snapshot's record. A snapshot lists its
// producers oldest first, so making each the latest rebuilds their order;
// replaying the log after it then moves the producers it names, as the
// live master did.
func (ps *producers) restore(r *ProducerRecord) {
	n := ps.node(r.ID)
	n.Last = max(n.Last, r.Last)
	n.Floor = max(n.Floor, r.Floor)
	for _, s := range r.Seqs {
		i, found := slices.BinarySearchFunc(n.Seqs, s.Seq, cmpSeq)
		if !found && s.Seq > n.Floor {
			n.Seqs = slices.Insert(n.Seqs, i, SeqRecord{Seq: s.Seq, CRC: s.CRC, Ranges: slices.Clone(s.Ranges)})
		}
	}
	for len(n.Seqs) > SeqsPerProducer {
		n.Floor = max(n.Floor, n.Seqs[0].Seq)
		n.Seqs = slices.Delete(n.Seqs, 0, 1)
	}
	if len(ps.byID) > MaxProducers {
		ps.forget(ps.oldest)
	}
}

func cmpSeq(s SeqRecord, seq uint64) int {
	switch {
	case s.Seq < seq:
		return -1
	case s.Seq > seq:
		return 1
	}
	return 0
}

// Lookup is what a queue knows of a producer's put.
type Lookup int

// The answers of Queue.Lookup.
const (
	// SeqNew: the put was never stored (or its producer was forgotten
	// after the dedup window): store it.
	SeqNew Lookup = iota
	// SeqStored: the put, or a first part of it, was stored; the record
	// says with which ids.
	SeqStored
	// SeqForgotten: the sequence is older than those remembered: storing
	// it might store it twice, answering it is impossible.
	SeqForgotten
)

// Lookup says what the queue knows of the producer's put seq. With
// SeqStored, rec is the record (valid until the queue next changes).
func (q *Queue) Lookup(p Producer, seq uint64) (Lookup, *SeqRecord) {
	n := q.producers.byID[p]
	if n == nil {
		return SeqNew, nil
	}
	if i, found := slices.BinarySearchFunc(n.Seqs, seq, cmpSeq); found {
		return SeqStored, &n.Seqs[i]
	}
	if seq <= n.Floor {
		return SeqForgotten, nil
	}
	return SeqNew, nil
}

// Producers calls fn with every producer the queue remembers, oldest
// last put first. fn must not change the machine or keep the record.
func (q *Queue) Producers(fn func(*ProducerRecord) bool) {
	for n := q.producers.oldest; n != nil; n = n.next {
		if !fn(&n.ProducerRecord) {
			return
		}
	}
}

func (ps *producers) canonical(b *strings.Builder) {
	for n := ps.oldest; n != nil; n = n.next {
		fmt.Fprintf(b, "  producer %x last %d floor %d", n.ID, n.Last, n.Floor)
		for _, s := range n.Seqs {
			fmt.Fprintf(b, " %d/%08x%v", s.Seq, s.CRC, s.Ranges)
		}
		b.WriteByte('\n')
	}
}
