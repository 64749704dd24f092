package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// A record on disk is a frame (design §3.1), 8-byte aligned so that a header
// never straddles a sector:
//
//	0         4         8                16               24
//	| len u32 | crc u32 | lsn u64        | synced u64     | body (len bytes) | 0-7 zero pad
//	crc = CRC32C( body || lsn || synced || len )
//
// The CRC covers the body first, so Append computes that part before it
// takes the journal's lock and finishes the last 20 bytes once the LSN is
// known. synced is the last LSN the writer knew to be fdatasynced when the
// frame was appended; recovery uses it to tell a torn tail (never synced,
// never answered) from damage in the middle. A frame with an empty body is
// a no-op the writer appends when it goes idle (§3.5): it carries only its
// synced mark and is never replayed, so bodies the caller appends are never
// empty.
const frameHeader = 24

// lsnWindow bounds how far ahead of the expected LSN a frame found by a
// scan may be and still count: random bytes rarely pass a CRC, and never
// with an LSN this close.
const lsnWindow = 1 << 40

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zeros [8]byte

// bodyCRC is the part of a frame's CRC computed outside the lock.
func bodyCRC(body []byte) uint32 { return crc32.Update(0, castagnoli, body) }

// crcUpdate extends crc with b.
func crcUpdate(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

func pad8(n int) int { return (n + 7) &^ 7 }

// frameSize is the bytes a frame of an n-byte body takes.
func frameSize(n int) int { return frameHeader + pad8(n) }

// headerCRC extends a body's CRC with the header fields in h (len, lsn and
// synced set): CRC32C(body || lsn || synced || len). It reads them in
// place, so nothing escapes to the heap.
func headerCRC(crc uint32, h []byte) uint32 {
	crc = crc32.Update(crc, castagnoli, h[8:24])
	return crc32.Update(crc, castagnoli, h[0:4])
}

// appendFrame appends the frame of body to b. It allocates only when b
// must grow.
func appendFrame(b, body []byte, crc uint32, lsn, synced uint64) []byte {
	at := len(b)
	b = append(b, make([]byte, frameHeader)...) // extended in place, no allocation
	h := b[at : at+frameHeader]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(body)))
	binary.LittleEndian.PutUint64(h[8:], lsn)
	binary.LittleEndian.PutUint64(h[16:], synced)
	binary.LittleEndian.PutUint32(h[4:], headerCRC(crc, h))
	b = append(b, body...)
	return append(b, zeros[:pad8(len(body))-len(body)]...)
}

// frame is one parsed frame; body points into the buffer it was read from.
type frame struct {
	lsn, synced uint64
	body        []byte
	size        int // bytes taken, padding included
}

func (f frame) noop() bool { return len(f.body) == 0 }

// Why a frame cannot be read. They are the Reason of a DamageError.
var (
	errZero   = errors.New("no record (zeros)")
	errLength = errors.New("record length out of bounds")
	errCRC    = errors.New("checksum mismatch")
)

// parseFrame reads the frame at the start of b; bodies longer than max are
// damage.
func parseFrame(b []byte, max int) (frame, error) {
	if len(b) < frameHeader {
		return frame{}, errLength
	}
	n := binary.LittleEndian.Uint32(b[0:])
	crc := binary.LittleEndian.Uint32(b[4:])
	f := frame{
		lsn:    binary.LittleEndian.Uint64(b[8:]),
		synced: binary.LittleEndian.Uint64(b[16:]),
	}
	if n == 0 && crc == 0 && f.lsn == 0 && f.synced == 0 {
		return f, errZero
	}
	if uint64(n) > uint64(max) || frameSize(int(n)) > len(b) {
		return f, errLength
	}
	f.body = b[frameHeader : frameHeader+int(n)]
	if headerCRC(bodyCRC(f.body), b) != crc {
		return f, errCRC
	}
	f.size = frameSize(int(n))
	return f, nil
}

// frameLSN reads a frame header's LSN without checking anything.
func frameLSN(b []byte) uint64 { return binary.LittleEndian.Uint64(b[8:]) }

// frameLen reads a frame header's length without checking anything.
func frameLen(b []byte) int { return int(binary.LittleEndian.Uint32(b[0:])) }
