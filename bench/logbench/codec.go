// Package logbench measures candidate log engines for durable queues (issue 9)
// on this machine: our own segment log against a one-node hashicorp/raft on
// hashicorp/raft-wal, with file floors beside them. It is a nested module so
// that raft and raft-wal stay out of the library's go.mod.
package logbench

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Command types, as in the design's command table. Only the three the
// workload needs are encoded here; the layout follows the design (type, ver,
// time, then fields; uvarints, zigzag times, length-prefixed strings).
const (
	cmdPut         = 1
	cmdSettle      = 2
	cmdSettleReply = 3

	cmdVersion = 1
)

// putCmd is a Put of n items with consecutive ids from firstID.
type putCmd struct {
	queue    string
	time     int64
	producer [16]byte
	seq      uint64
	offset   uint32
	firstID  uint64
	flags    uint8
	batchCRC uint32
	payloads [][]byte
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func appendVarint(b []byte, v int64) []byte   { return binary.AppendVarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendPut encodes p after b.
func appendPut(b []byte, p *putCmd) []byte {
	b = append(b, cmdPut, cmdVersion)
	b = appendVarint(b, p.time)
	b = appendString(b, p.queue)
	b = append(b, 16)
	b = append(b, p.producer[:]...)
	b = appendUvarint(b, p.seq)
	b = appendUvarint(b, uint64(p.offset))
	b = appendUvarint(b, p.firstID)
	b = appendUvarint(b, uint64(len(p.payloads)))
	b = append(b, p.flags)
	b = binary.LittleEndian.AppendUint32(b, p.batchCRC)
	for _, d := range p.payloads {
		b = appendUvarint(b, uint64(len(d)))
	}
	for _, d := range p.payloads {
		b = append(b, d...)
	}
	return b
}

// appendIDs encodes ids as a count then deltas, zigzag, from 0: consecutive
// ids take one byte each.
func appendIDs(b []byte, ids []uint64) []byte {
	b = appendUvarint(b, uint64(len(ids)))
	prev := uint64(0)
	for _, id := range ids {
		b = appendVarint(b, int64(id-prev))
		prev = id
	}
	return b
}

// appendSettle encodes a Settle of ids in queue.
func appendSettle(b []byte, queue string, time int64, ids []uint64) []byte {
	b = append(b, cmdSettle, cmdVersion)
	b = appendVarint(b, time)
	b = appendString(b, queue)
	return appendIDs(b, ids)
}

// appendSettleReply encodes the settle of ids in queue together with their
// replies (ids firstReplyID..) in replyQueue: one record, so after a crash
// both happened or neither.
func appendSettleReply(b []byte, queue, replyQueue string, time int64, ids []uint64, firstReplyID uint64, replies [][]byte) []byte {
	b = append(b, cmdSettleReply, cmdVersion)
	b = appendVarint(b, time)
	b = appendString(b, queue)
	b = appendString(b, replyQueue)
	b = appendIDs(b, ids)
	b = appendUvarint(b, firstReplyID)
	for _, r := range replies {
		b = appendUvarint(b, uint64(len(r)))
	}
	for _, r := range replies {
		b = append(b, r...)
	}
	return b
}

// Applier receives decoded commands. Payloads alias the decoded buffer.
type Applier interface {
	Put(queue []byte, id uint64, payload []byte)
	Settle(queue []byte, id uint64)
	Reply(queue []byte, id, replyTo uint64, payload []byte)
}

// Discard counts what it is given and keeps nothing: the sink of the
// recovery measurements.
type Discard struct {
	Puts, Settles, Replies, Bytes uint64
}

func (d *Discard) Put(_ []byte, _ uint64, p []byte) { d.Puts++; d.Bytes += uint64(len(p)) }
func (d *Discard) Settle([]byte, uint64)            { d.Settles++ }
func (d *Discard) Reply(_ []byte, _, _ uint64, p []byte) {
	d.Replies++
	d.Bytes += uint64(len(p))
}

var errShort = errors.New("command truncated")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	v := d.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

// sizes reads n uvarint sizes into dst (reused) and checks that their sum fits.
func (d *decoder) sizes(dst []uint32, n uint64) []uint32 {
	if d.err != nil {
		return dst
	}
	if n > uint64(len(d.b)) { // every size takes at least one byte
		d.err = errShort
		return dst
	}
	dst = dst[:0]
	for i := uint64(0); i < n; i++ {
		s := d.uvarint()
		if s > uint64(len(d.b)) {
			d.err = errShort
			return dst
		}
		dst = append(dst, uint32(s))
	}
	return dst
}

// Decoder decodes commands; it keeps a scratch slice between calls.
type Decoder struct {
	sizes []uint32
	ids   []uint64
}

func (dc *Decoder) ids64(d *decoder) []uint64 {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	dc.ids = dc.ids[:0]
	prev := uint64(0)
	for i := uint64(0); i < n; i++ {
		prev += uint64(d.varint())
		dc.ids = append(dc.ids, prev)
	}
	return dc.ids
}

// Decode decodes one command and hands its effects to a.
func (dc *Decoder) Decode(cmd []byte, a Applier) error {
	d := decoder{b: cmd}
	typ := d.byte1()
	if ver := d.byte1(); d.err == nil && ver != cmdVersion {
		return fmt.Errorf("command version %d unknown", ver)
	}
	d.varint() // time
	queue := d.bytes(d.uvarint())
	switch typ {
	case cmdPut:
		d.bytes(uint64(d.byte1())) // producer
		d.uvarint()                // seq
		d.uvarint()                // offset
		first := d.uvarint()
		n := d.uvarint()
		d.byte1()  // flags
		d.bytes(4) // batch CRC
		dc.sizes = d.sizes(dc.sizes, n)
		if d.err != nil {
			return d.err
		}
		for i, s := range dc.sizes {
			p := d.bytes(uint64(s))
			if d.err != nil {
				return d.err
			}
			a.Put(queue, first+uint64(i), p)
		}
	case cmdSettle:
		ids := dc.ids64(&d)
		if d.err != nil {
			return d.err
		}
		for _, id := range ids {
			a.Settle(queue, id)
		}
	case cmdSettleReply:
		replyQueue := d.bytes(d.uvarint())
		ids := dc.ids64(&d)
		first := d.uvarint()
		dc.sizes = d.sizes(dc.sizes, uint64(len(ids)))
		if d.err != nil {
			return d.err
		}
		for i, id := range ids {
			a.Settle(queue, id)
			p := d.bytes(uint64(dc.sizes[i]))
			if d.err != nil {
				return d.err
			}
			a.Reply(replyQueue, first+uint64(i), id, p)
		}
	default:
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("command type %d unknown", typ)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d bytes after the command", len(d.b))
	}
	return nil
}
