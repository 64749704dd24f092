package state

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The encoding of commands: the log's records, and raft's entries later.
// Little-endian; integers are uvarints, times and id deltas zigzag varints,
// strings and byte strings length-prefixed. Every command starts
//
//	type u8 | version u8 | time zvarint (for records without a time, 0)
//
// and the layout of each version is frozen by TestGolden: a change of
// layout is a new version that Decode keeps reading.
const version = 1

// Item flags in the encoding.
const (
	flagHeaders  = 1 << 0
	flagErr      = 1 << 1
	flagDue      = 1 << 2
	flagProducer = 1 << 3
)

// QueueMeta flags in the encoding.
const (
	metaClosed = 1 << 0
	metaPaused = 1 << 1
)

// ErrDecode is the class of every decoding error.
var ErrDecode = errors.New("state: malformed record")

// DecodeError says what could not be decoded and where.
type DecodeError struct {
	Type   Type
	Offset int
	What   string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("state: malformed %s record at byte %d: %s", e.Type, e.Offset, e.What)
}

func (e *DecodeError) Is(target error) bool { return target == ErrDecode }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendIDs encodes ids as a count, then each as the zigzag difference
// from the one before (from 0): consecutive ids take a byte each.
func appendIDs(b []byte, ids []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	var prev uint64
	for _, id := range ids {
		b = binary.AppendVarint(b, int64(id-prev))
		prev = id
	}
	return b
}

func appendHeaders(b []byte, h map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	// Map order is random; the bytes of a record need not be canonical,
	// only decodable, and sorting would allocate on the put path.
	for k, v := range h {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

// appendNewItems encodes items as their sizes, then their payloads as one
// block, then (if any has headers) every item's headers.
func appendNewItems(b []byte, items []NewItem) []byte {
	var flags byte
	for i := range items {
		if len(items[i].Headers) > 0 {
			flags |= flagHeaders
			break
		}
	}
	b = append(b, flags)
	for i := range items {
		b = binary.AppendUvarint(b, uint64(len(items[i].Payload)))
	}
	for i := range items {
		b = append(b, items[i].Payload...)
	}
	if flags&flagHeaders != 0 {
		for i := range items {
			b = appendHeaders(b, items[i].Headers)
		}
	}
	return b
}

func appendItem(b []byte, it *Item) []byte {
	b = binary.AppendUvarint(b, it.ID)
	b = binary.AppendUvarint(b, it.ReplyTo)
	b = binary.AppendUvarint(b, uint64(it.Attempts))
	var flags byte
	h, e, due := it.Headers(), it.LastErr(), it.Due()
	if len(h) > 0 {
		flags |= flagHeaders
	}
	if e != "" {
		flags |= flagErr
	}
	if due != 0 {
		flags |= flagDue
	}
	b = append(b, flags)
	b = appendBytes(b, it.Payload)
	if flags&flagHeaders != 0 {
		b = appendHeaders(b, h)
	}
	if flags&flagErr != 0 {
		b = appendString(b, e)
	}
	if flags&flagDue != 0 {
		b = binary.AppendVarint(b, due)
	}
	return b
}

func head(b []byte, t Type, time int64) []byte {
	b = append(b, byte(t), version)
	return binary.AppendVarint(b, time)
}

// AppendCommand appends the encoding of c to b.
func AppendCommand(b []byte, c Command) []byte {
	switch c := c.(type) {
	case *Put:
		b = head(b, TypePut, c.Time)
		b = appendString(b, c.Queue)
		b = binary.AppendUvarint(b, c.FirstID)
		b = binary.AppendUvarint(b, uint64(len(c.Items)))
		if c.Producer != (Producer{}) {
			b = append(b, 1)
			b = append(b, c.Producer[:]...)
			b = binary.AppendUvarint(b, c.Seq)
			b = binary.AppendUvarint(b, uint64(c.Offset))
			b = binary.LittleEndian.AppendUint32(b, c.BatchCRC)
			b = binary.AppendVarint(b, c.DedupWindow)
		} else {
			b = append(b, 0)
		}
		b = appendNewItems(b, c.Items)
	case *Settle:
		b = head(b, TypeSettle, c.Time)
		b = appendString(b, c.Queue)
		b = appendIDs(b, c.IDs)
	case *SettleReply:
		b = head(b, TypeSettleReply, c.Time)
		b = appendString(b, c.Queue)
		b = appendString(b, c.ReplyQueue)
		b = appendIDs(b, c.IDs)
		b = binary.AppendUvarint(b, c.FirstReplyID)
		b = binary.AppendUvarint(b, uint64(len(c.Replies)))
		b = appendNewItems(b, c.Replies)
	case *Fail:
		b = head(b, TypeFail, c.Time)
		b = appendString(b, c.Queue)
		b = appendString(b, c.DeadQueue)
		b = append(b, byte(c.Cause))
		b = binary.AppendUvarint(b, uint64(len(c.Items)))
		var prev uint64
		for i := range c.Items {
			f := &c.Items[i]
			b = binary.AppendVarint(b, int64(f.ID-prev))
			prev = f.ID
			b = binary.AppendUvarint(b, uint64(f.Attempts))
			b = append(b, byte(f.Outcome))
			b = binary.AppendVarint(b, f.Due)
			b = appendString(b, f.Error)
		}
	case *Requeue:
		b = head(b, TypeRequeue, c.Time)
		b = appendString(b, c.Queue)
		b = appendString(b, c.DeadQueue)
		b = binary.AppendUvarint(b, uint64(len(c.Items)))
		for i := range c.Items {
			b = appendItem(b, &c.Items[i])
		}
	case *Close:
		b = head(b, TypeClose, c.Time)
		b = appendString(b, c.Queue)
	case *Leases:
		b = head(b, TypeLeases, c.Time)
		b = binary.AppendUvarint(b, c.HW)
	case *Start:
		b = head(b, TypeStart, c.Time)
		b = binary.AppendUvarint(b, c.Incarnation)
		b = appendString(b, c.Version)
	case *Batch:
		b = head(b, TypeBatch, 0)
		b = binary.AppendUvarint(b, uint64(len(c.Commands)))
		for _, sub := range c.Commands {
			// The length first, so that a reader can skip a command.
			at := len(b)
			b = AppendCommand(b, sub)
			n := len(b) - at
			var lb [binary.MaxVarintLen64]byte
			k := binary.PutUvarint(lb[:], uint64(n))
			b = append(b, lb[:k]...)
			copy(b[at+k:], b[at:at+n])
			copy(b[at:], lb[:k])
		}
	case *QueueMeta:
		b = head(b, TypeQueueMeta, 0)
		b = appendString(b, c.Queue)
		b = appendString(b, c.Origin)
		b = binary.AppendUvarint(b, c.NextID)
		// A byte of flags: closed was its only bit when the layout was
		// frozen, so a record without paused reads as it always did.
		var flags byte
		if c.Closed {
			flags |= metaClosed
		}
		if c.Paused {
			flags |= metaPaused
		}
		b = append(b, flags)
	case *Purge:
		b = head(b, TypePurge, c.Time)
		b = appendString(b, c.Queue)
		b = appendIDs(b, c.IDs)
	case *Pause:
		b = head(b, TypePause, c.Time)
		b = appendString(b, c.Queue)
		if c.Paused {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case *Items:
		b = head(b, TypeItems, 0)
		b = appendString(b, c.Queue)
		b = binary.AppendUvarint(b, uint64(len(c.Items)))
		for i := range c.Items {
			b = appendItem(b, &c.Items[i])
		}
	case *Producers:
		b = head(b, TypeProducers, 0)
		b = appendString(b, c.Queue)
		b = binary.AppendUvarint(b, uint64(len(c.Producers)))
		for i := range c.Producers {
			p := &c.Producers[i]
			b = append(b, p.ID[:]...)
			b = binary.AppendVarint(b, p.Last)
			b = binary.AppendUvarint(b, p.Floor)
			b = binary.AppendUvarint(b, uint64(len(p.Seqs)))
			for _, s := range p.Seqs {
				b = binary.AppendUvarint(b, s.Seq)
				b = binary.LittleEndian.AppendUint32(b, s.CRC)
				b = binary.AppendUvarint(b, uint64(len(s.Ranges)))
				for _, r := range s.Ranges {
					b = binary.AppendUvarint(b, uint64(r.Offset))
					b = binary.AppendUvarint(b, r.FirstID)
					b = binary.AppendUvarint(b, uint64(r.N))
				}
			}
		}
	default:
		// A constant message: formatting c would make every command
		// escape to the heap, on the live master's hot path too.
		panic("state: AppendCommand of an unknown command")
	}
	return b
}
