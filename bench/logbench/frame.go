package logbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The frame of the design (§3.1), 8-byte aligned so that a header never
// straddles a sector:
//
//	0        4        8                16               24
//	| len u32 | crc u32 | lsn u64        | synced u64     | command (len bytes) | 0-7 zero pad
//	crc = CRC32C( command || lsn || synced || len )
//
// synced is the LSN the writer knew to be on disk when the frame was appended;
// recovery uses it to tell a torn tail from damage in the middle.
const (
	frameHeader = 24
	// maxFrame bounds a command: twice the master's default message size. A
	// longer length is damage.
	maxFrame = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// bodyCRC is the part of a frame's CRC a submitter computes outside the
// journal lock.
func bodyCRC(body []byte) uint32 { return crc32.Update(0, castagnoli, body) }

func pad8(n int) int { return (n + 7) &^ 7 }

// frameSize is the bytes a frame of an n-byte command takes.
func frameSize(n int) int { return frameHeader + pad8(n) }

// headerCRC extends a body CRC with the header fields in h (a frame
// header with len, lsn and synced set): CRC32C(command || lsn || synced || len).
// It reads them in place, so nothing escapes to the heap.
func headerCRC(crc uint32, h []byte) uint32 {
	crc = crc32.Update(crc, castagnoli, h[8:24])
	return crc32.Update(crc, castagnoli, h[0:4])
}

// appendFrame appends the frame of body to b.
func appendFrame(b, body []byte, crc uint32, lsn, synced uint64) []byte {
	at := len(b)
	b = append(b, make([]byte, frameHeader)...) // no allocation: appended in place
	h := b[at : at+frameHeader]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(body)))
	binary.LittleEndian.PutUint64(h[8:], lsn)
	binary.LittleEndian.PutUint64(h[16:], synced)
	binary.LittleEndian.PutUint32(h[4:], headerCRC(crc, h))
	b = append(b, body...)
	return append(b, make([]byte, pad8(len(body))-len(body))...)
}

// frame is one parsed frame.
type frame struct {
	lsn, synced uint64
	body        []byte
	size        int // bytes taken, padding included
}

var (
	errZero   = errors.New("zero header (end of written data)")
	errLength = errors.New("length out of bounds")
	errCRC    = errors.New("checksum mismatch")
)

// parseFrame reads the frame at the start of b.
func parseFrame(b []byte) (frame, error) {
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
	if n == 0 || n > maxFrame || frameSize(int(n)) > len(b) {
		return f, errLength
	}
	f.body = b[frameHeader : frameHeader+int(n)]
	if headerCRC(bodyCRC(f.body), b) != crc {
		return f, errCRC
	}
	f.size = frameSize(int(n))
	return f, nil
}

// eachFrame walks a buffer of whole frames (a group, or a raft entry holding
// one), checking every CRC and that LSNs follow one another.
func eachFrame(b []byte, fn func(f frame) error) error {
	var prev uint64
	for off := 0; off < len(b); {
		f, err := parseFrame(b[off:])
		if err != nil {
			return fmt.Errorf("frame at offset %d: %w", off, err)
		}
		if prev != 0 && f.lsn != prev+1 {
			return fmt.Errorf("frame at offset %d: lsn %d after %d", off, f.lsn, prev)
		}
		prev = f.lsn
		if err := fn(f); err != nil {
			return err
		}
		off += f.size
	}
	return nil
}
