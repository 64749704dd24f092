package logbench

import (
	"bytes"
	"errors"
	"testing"
)

type recorder struct {
	puts    map[uint64]string
	settles []uint64
	replies map[uint64]uint64 // reply id -> replyTo
}

func (r *recorder) Put(q []byte, id uint64, p []byte) {
	if string(q) != "tasks" {
		panic("queue " + string(q))
	}
	r.puts[id] = string(p)
}
func (r *recorder) Settle(_ []byte, id uint64) { r.settles = append(r.settles, id) }
func (r *recorder) Reply(q []byte, id, to uint64, p []byte) {
	if string(q) != "results" || len(p) != 5 {
		panic("reply")
	}
	r.replies[id] = to
}

func TestCommandsRoundTrip(t *testing.T) {
	p := putCmd{queue: "tasks", time: -5, seq: 3, firstID: 1000, payloads: [][]byte{[]byte("a"), {}, []byte("ccc")}}
	var b []byte
	b = appendPut(b, &p)
	s := appendSettle(nil, "tasks", 7, []uint64{1002, 1000, 5})
	sr := appendSettleReply(nil, "tasks", "results", 8, []uint64{1001, 1002}, 40, [][]byte{[]byte("11111"), []byte("22222")})
	r := &recorder{puts: map[uint64]string{}, replies: map[uint64]uint64{}}
	var dec Decoder
	for _, c := range [][]byte{b, s, sr} {
		if err := dec.Decode(c, r); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.puts) != 3 || r.puts[1000] != "a" || r.puts[1001] != "" || r.puts[1002] != "ccc" {
		t.Fatalf("puts %v", r.puts)
	}
	if want := []uint64{1002, 1000, 5, 1001, 1002}; !equal(r.settles, want) {
		t.Fatalf("settles %v want %v", r.settles, want)
	}
	if r.replies[40] != 1001 || r.replies[41] != 1002 {
		t.Fatalf("replies %v", r.replies)
	}
	// Every truncation is an error, never a panic.
	for n := 0; n < len(sr); n++ {
		if err := dec.Decode(sr[:n], &Discard{}); err == nil {
			t.Fatalf("truncated at %d decoded", n)
		}
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFrameChecksEveryByte(t *testing.T) {
	body := []byte("a command of 21 bytes")
	fr := appendFrame(nil, body, bodyCRC(body), 42, 40)
	if len(fr)%8 != 0 || len(fr) != frameSize(len(body)) {
		t.Fatalf("frame of %d bytes", len(fr))
	}
	f, err := parseFrame(fr)
	if err != nil || f.lsn != 42 || f.synced != 40 || !bytes.Equal(f.body, body) || f.size != len(fr) {
		t.Fatalf("parse: %+v %v", f, err)
	}
	// Any flipped bit in the header or the body is caught (padding is not
	// covered: it carries nothing).
	for i := 0; i < frameHeader+len(body); i++ {
		for bit := 0; bit < 8; bit++ {
			d := bytes.Clone(fr)
			d[i] ^= 1 << bit
			if _, err := parseFrame(d); err == nil {
				t.Fatalf("byte %d bit %d flipped: frame accepted", i, bit)
			}
		}
	}
	if _, err := parseFrame(make([]byte, 64)); !errors.Is(err, errZero) {
		t.Fatalf("zeros: %v", err)
	}
}
