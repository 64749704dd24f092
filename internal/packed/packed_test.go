package packed

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/distq/distq/proto/distq/v1"
)

func TestRoundTrip(t *testing.T) {
	in := [][]byte{[]byte("a"), {}, []byte("hello"), bytes.Repeat([]byte{7}, 1000)}
	var b Builder
	for _, p := range in {
		b.Add(p)
	}
	if b.Len() != 4 || b.Bytes() != 1006 {
		t.Fatalf("Len %d Bytes %d", b.Len(), b.Bytes())
	}
	p := b.Take()
	if b.Len() != 0 || b.Take() != nil {
		t.Fatal("Take did not reset the builder")
	}
	var out [][]byte
	if err := Each(p, func(i int, payload []byte) { out = append(out, payload) }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d payloads", len(out))
	}
	for i := range in {
		if !bytes.Equal(in[i], out[i]) {
			t.Errorf("payload %d: %q, want %q", i, out[i], in[i])
		}
	}
	// A payload may not grow into its neighbour.
	out[0] = append(out[0], 'X')
	if out[1] != nil && len(out[1]) != 0 {
		t.Fatal("append to a payload changed the next one")
	}
}

func TestMalformed(t *testing.T) {
	for _, p := range []*pb.Packed{
		{Sizes: []uint32{3}, Data: []byte("ab")},
		{Sizes: []uint32{1}, Data: []byte("ab")},
		{Sizes: []uint32{1 << 31, 1 << 31, 2}, Data: []byte("ab")},
	} {
		if err := Each(p, func(int, []byte) { t.Fatal("called on a malformed buffer") }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%v: err %v, want ErrMalformed", p, err)
		}
	}
	if err := Each(nil, func(int, []byte) {}); err != nil {
		t.Errorf("nil: %v", err)
	}
}

func FuzzPacked(f *testing.F) {
	var b Builder
	b.Add([]byte("12"))
	b.Add([]byte("345"))
	seed, _ := proto.Marshal(b.Take())
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p pb.Packed
		if proto.Unmarshal(raw, &p) != nil {
			return
		}
		total := 0
		err := Each(&p, func(i int, payload []byte) { total += len(payload) })
		if err == nil && total != len(p.GetData()) {
			t.Fatalf("payloads cover %d of %d bytes", total, len(p.GetData()))
		}
	})
}

func TestAddAll(t *testing.T) {
	var a, b, c Builder
	a.Grow(2, 16)
	a.Add([]byte("one"))
	b.Add([]byte("two"))
	b.Add([]byte("three"))
	c.AddAll(&a) // c was empty: takes a's buffers
	c.AddAll(&b)
	if a.Len() != 0 || b.Len() != 0 {
		t.Fatal("AddAll did not reset its argument")
	}
	var got []string
	if err := Each(c.Take(), func(_ int, p []byte) { got = append(got, string(p)) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "one" || got[1] != "two" || got[2] != "three" {
		t.Fatalf("got %q", got)
	}
}
