package state

import "encoding/binary"

// maxBatchDepth bounds the nesting of batches a record may have: one is
// all a log writes; the bound keeps hostile bytes from recursing deeply.
const maxBatchDepth = 2

// Decoder decodes records. Its zero value decodes with payloads that share
// the record's bytes: the caller keeps the record as
// long as the state keeps its items. With Copy set, it copies them into
// chunks of its own, so a replay can read the log into one reused buffer.
type Decoder struct {
	// Copy makes the decoded commands independent of the record's bytes.
	Copy bool
	// arena is the free tail of the current copy chunk.
	arena []byte
}

// arenaChunk is the size of the chunks payloads are copied into: one
// allocation per chunk rather than per item. A long-lived item keeps its
// chunk alive, as today one item keeps its put's request buffer.
const arenaChunk = 64 << 10

// Decode decodes one record into a new command.
func Decode(rec []byte) (Command, error) {
	var d Decoder
	return d.Decode(rec)
}

// Decode decodes one record into a new command. Any malformed input gives
// a *DecodeError, never a panic, and never allocates more than the record's
// size warrants.
func (d *Decoder) Decode(rec []byte) (Command, error) {
	r := reader{b: rec, d: d}
	c := r.command(0)
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.b) {
		return nil, &DecodeError{Type: r.t, Offset: r.off, What: "trailing bytes"}
	}
	return c, nil
}

// reader reads one record; its first error sticks and every read after it
// returns zero values.
type reader struct {
	b   []byte
	off int
	t   Type
	err *DecodeError
	d   *Decoder
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = &DecodeError{Type: r.t, Offset: r.off, What: what}
	}
	r.off = len(r.b)
}

func (r *reader) byte1() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.b)-r.off < 4 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

// count reads a count of elements of at least min bytes each: a count the
// rest of the record cannot hold is malformed, so no slice is sized by a
// lie.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)-r.off)/uint64(min) {
		r.fail("count larger than the record")
		return 0
	}
	return int(n)
}

// raw reads n bytes, shared with the record.
func (r *reader) raw(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("length larger than the record")
		return nil
	}
	s := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return s
}

// own returns s, or a copy of it with Copy set.
func (r *reader) own(s []byte) []byte {
	if !r.d.Copy || len(s) == 0 {
		return s
	}
	if len(s) > arenaChunk/4 {
		return append([]byte(nil), s...)
	}
	if len(r.d.arena) < len(s) {
		r.d.arena = make([]byte, arenaChunk)
	}
	p := r.d.arena[:len(s):len(s)]
	copy(p, s)
	r.d.arena = r.d.arena[len(s):]
	return p
}

func (r *reader) bytes() []byte {
	s := r.raw(r.uvarint())
	if len(s) == 0 {
		return nil
	}
	return r.own(s)
}

// string copies: names become map keys, and errors outlive records.
func (r *reader) string() string {
	return string(r.raw(r.uvarint()))
}

func (r *reader) ids() []uint64 {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	ids := make([]uint64, n)
	var prev uint64
	for i := range ids {
		prev += uint64(r.varint())
		ids[i] = prev
	}
	return ids
}

func (r *reader) headers() map[string]string {
	n := r.count(2)
	if n == 0 {
		return nil
	}
	h := make(map[string]string, n)
	for range n {
		k := r.string()
		h[k] = r.string()
	}
	return h
}

func (r *reader) newItems(n int) []NewItem {
	flags := r.byte1()
	if flags&^flagHeaders != 0 {
		r.fail("unknown item flags")
	}
	if r.err != nil || n == 0 {
		return nil
	}
	items := make([]NewItem, n)
	sizes := make([]uint64, n)
	var total uint64
	for i := range sizes {
		sizes[i] = r.uvarint()
		total += sizes[i]
		if total > uint64(len(r.b)) {
			r.fail("payloads larger than the record")
			return nil
		}
	}
	data := r.raw(total)
	if r.err != nil {
		return nil
	}
	data = r.own(data)
	for i := range items {
		if sizes[i] > 0 {
			items[i].Payload = data[:sizes[i]:sizes[i]]
		}
		data = data[sizes[i]:]
	}
	if flags&flagHeaders != 0 {
		for i := range items {
			items[i].Headers = r.headers()
		}
	}
	return items
}

func (r *reader) item() Item {
	it := Item{ID: r.uvarint(), ReplyTo: r.uvarint()}
	a := r.uvarint()
	if a > 1<<32-1 {
		r.fail("attempts out of range")
	}
	it.Attempts = uint32(a)
	flags := r.byte1()
	if flags&^(flagHeaders|flagErr|flagDue) != 0 {
		r.fail("unknown item flags")
	}
	it.Payload = r.bytes()
	var h map[string]string
	var e string
	var due int64
	if flags&flagHeaders != 0 {
		h = r.headers()
	}
	if flags&flagErr != 0 {
		e = r.string()
	}
	if flags&flagDue != 0 {
		due = r.varint()
	}
	if it.ID == 0 {
		r.fail("item id 0")
	}
	it.setExt(h, e, due)
	return it
}

func (r *reader) command(depth int) Command {
	r.t = Type(r.byte1())
	if v := r.byte1(); r.err == nil && v != version {
		r.fail("unknown version")
	}
	time := r.varint()
	if r.err != nil {
		return nil
	}
	switch r.t {
	case TypePut:
		c := &Put{Time: time, Queue: r.string(), FirstID: r.uvarint()}
		n := r.count(1)
		switch r.byte1() {
		case 0:
		case 1:
			copy(c.Producer[:], r.raw(16))
			c.Seq = r.uvarint()
			off := r.uvarint()
			if off > 1<<32-1 {
				r.fail("offset out of range")
			}
			c.Offset = uint32(off)
			c.BatchCRC = r.u32()
			c.DedupWindow = r.varint()
			if r.err == nil && c.Producer == (Producer{}) {
				r.fail("zero producer")
			}
		default:
			r.fail("unknown put flags")
		}
		c.Items = r.newItems(n)
		if r.err == nil && n > 0 && (c.FirstID == 0 || c.FirstID+uint64(n)-1 < c.FirstID) {
			r.fail("ids out of range")
		}
		return c
	case TypeSettle:
		return &Settle{Time: time, Queue: r.string(), IDs: r.ids()}
	case TypeSettleReply:
		c := &SettleReply{Time: time, Queue: r.string(), ReplyQueue: r.string(), IDs: r.ids(), FirstReplyID: r.uvarint()}
		n := r.count(1)
		if r.err == nil && n != len(c.IDs) {
			r.fail("replies and ids differ in number")
		}
		c.Replies = r.newItems(n)
		if r.err == nil && n > 0 && (c.FirstReplyID == 0 || c.FirstReplyID+uint64(n)-1 < c.FirstReplyID) {
			r.fail("ids out of range")
		}
		return c
	case TypeFail:
		c := &Fail{Time: time, Queue: r.string(), DeadQueue: r.string(), Cause: Cause(r.byte1())}
		n := r.count(5)
		if n > 0 {
			c.Items = make([]Failed, n)
		}
		var prev uint64
		for i := range c.Items {
			f := &c.Items[i]
			prev += uint64(r.varint())
			f.ID = prev
			a := r.uvarint()
			if a > 1<<32-1 {
				r.fail("attempts out of range")
			}
			f.Attempts = uint32(a)
			f.Outcome = Outcome(r.byte1())
			if r.err == nil && f.Outcome != OutcomeReady && f.Outcome != OutcomeDead {
				r.fail("unknown outcome")
			}
			f.Due = r.varint()
			f.Error = r.string()
		}
		return c
	case TypeRequeue:
		c := &Requeue{Time: time, Queue: r.string(), DeadQueue: r.string()}
		n := r.count(5)
		if n > 0 {
			c.Items = make([]Item, n)
		}
		for i := range c.Items {
			c.Items[i] = r.item()
		}
		return c
	case TypeClose:
		return &Close{Time: time, Queue: r.string()}
	case TypeLeases:
		return &Leases{Time: time, HW: r.uvarint()}
	case TypeStart:
		return &Start{Time: time, Incarnation: r.uvarint(), Version: r.string()}
	case TypeBatch:
		if depth >= maxBatchDepth {
			r.fail("batches nested too deep")
			return nil
		}
		n := r.count(4)
		c := &Batch{}
		if n > 0 {
			c.Commands = make([]Command, 0, n)
		}
		for range n {
			sub := r.raw(r.uvarint())
			if r.err != nil {
				return nil
			}
			sr := reader{b: sub, d: r.d}
			sc := sr.command(depth + 1)
			if sr.err == nil && sr.off != len(sub) {
				sr.fail("trailing bytes")
			}
			if sr.err != nil {
				r.err = sr.err
				r.err.Offset += r.off - len(sub)
				return nil
			}
			c.Commands = append(c.Commands, sc)
		}
		r.t = TypeBatch
		return c
	case TypeQueueMeta:
		c := &QueueMeta{Queue: r.string(), Origin: r.string(), NextID: r.uvarint()}
		flags := r.byte1()
		if flags&^(metaClosed|metaPaused) != 0 {
			r.fail("unknown queue flags")
		}
		c.Closed = flags&metaClosed != 0
		c.Paused = flags&metaPaused != 0
		return c
	case TypePurge:
		return &Purge{Time: time, Queue: r.string(), IDs: r.ids()}
	case TypePause:
		c := &Pause{Time: time, Queue: r.string()}
		switch r.byte1() {
		case 0:
		case 1:
			c.Paused = true
		default:
			r.fail("bad paused flag")
		}
		return c
	case TypeItems:
		c := &Items{Queue: r.string()}
		n := r.count(5)
		if n > 0 {
			c.Items = make([]Item, n)
		}
		for i := range c.Items {
			c.Items[i] = r.item()
		}
		return c
	case TypeProducers:
		c := &Producers{Queue: r.string()}
		n := r.count(20)
		if n > 0 {
			c.Producers = make([]ProducerRecord, n)
		}
		for i := range c.Producers {
			p := &c.Producers[i]
			copy(p.ID[:], r.raw(16))
			p.Last = r.varint()
			p.Floor = r.uvarint()
			ns := r.count(6)
			if ns > SeqsPerProducer {
				r.fail("too many sequences")
				return nil
			}
			if ns > 0 {
				p.Seqs = make([]SeqRecord, ns)
			}
			for j := range p.Seqs {
				s := &p.Seqs[j]
				s.Seq = r.uvarint()
				s.CRC = r.u32()
				nr := r.count(3)
				if nr > 0 {
					s.Ranges = make([]IDRange, nr)
				}
				for k := range s.Ranges {
					off, first, rn := r.uvarint(), r.uvarint(), r.uvarint()
					if off > 1<<32-1 || rn > 1<<32-1 {
						r.fail("range out of range")
					}
					s.Ranges[k] = IDRange{Offset: uint32(off), FirstID: first, N: uint32(rn)}
				}
				if r.err == nil && j > 0 && s.Seq <= p.Seqs[j-1].Seq {
					r.fail("sequences out of order")
				}
			}
		}
		return c
	}
	r.fail("unknown command type")
	return nil
}
