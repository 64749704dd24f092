package wal

import "time"

// Test hooks for the external tests (package wal_test).

// SetRetriesForTest shortens the preparer's retry and the writer's backoff.
func SetRetriesForTest(prepare, min, max time.Duration) {
	prepareRetry, retryMin, retryMax = prepare, min, max
}

// Changed is closed at the next change of admission or of the preparer's
// state: tests wait on it instead of sleeping.
func (l *Log) Changed() <-chan struct{} { return l.changedCh() }

// Ready is how many prepared segments are waiting.
func (l *Log) Ready() int { return len(l.ready) }

// Frame is a parsed frame, for tests that damage a log.
type Frame struct {
	LSN, Synced uint64
	Body        []byte
	Size        int
}

// Frames parses the frames of a segment file's bytes from its header on,
// stopping at the first that does not parse or has an LSN below base.
func Frames(b []byte) (base uint64, frames []Frame, offs []int64) {
	h, ok := readSegHeader(b)
	if !ok {
		return 0, nil, nil
	}
	for off := int64(segHeaderSize); off < int64(len(b)); {
		f, err := parseFrame(b[off:], DefaultMaxRecord)
		if err != nil || f.lsn < h.base {
			break
		}
		frames = append(frames, Frame{LSN: f.lsn, Synced: f.synced, Body: f.body, Size: f.size})
		offs = append(offs, off)
		off += int64(f.size)
	}
	return h.base, frames, offs
}

// AppendFrame frames body as the log does.
func AppendFrame(b, body []byte, lsn, synced uint64) []byte {
	return appendFrame(b, body, bodyCRC(body), lsn, synced)
}

// SegHeader returns a segment header.
func SegHeader(no, base uint64, recycled bool) []byte {
	b := make([]byte, segHeaderSize)
	var flags uint32
	if recycled {
		flags = segRecycled
	}
	putSegHeader(b, segHeader{no: no, base: base, flags: flags})
	return b
}

const SegHeaderSize = segHeaderSize
const FrameHeader = frameHeader

// SegRecycled reports a segment header's recycled flag.
func SegRecycled(b []byte) bool {
	h, ok := readSegHeader(b)
	return ok && h.flags&segRecycled != 0
}
