// Package packed converts between lists of payloads and the wire's Packed
// message: one buffer and the sizes of the payloads in it. Decoding hands
// out sub-slices of the buffer, so a batch of a thousand payloads costs one
// slice header each and no copies.
package packed

import (
	"errors"
	"fmt"
	"slices"

	pb "github.com/distq/distq/proto/distq/v1"
)

// ErrMalformed: the sizes do not add up to the buffer.
var ErrMalformed = errors.New("malformed packed payloads")

// Len is the number of payloads in p (nil means none).
func Len(p *pb.Packed) int { return len(p.GetSizes()) }

// Each calls fn with every payload of p in order, after checking that the
// sizes add up to the buffer exactly.
func Each(p *pb.Packed, fn func(i int, payload []byte)) error {
	if err := Check(p); err != nil {
		return err
	}
	data := p.GetData()
	off := 0
	for i, n := range p.GetSizes() {
		end := off + int(n)
		fn(i, data[off:end:end])
		off = end
	}
	return nil
}

// Check reports whether p's sizes add up to its buffer exactly.
func Check(p *pb.Packed) error {
	total := uint64(0)
	for _, n := range p.GetSizes() {
		total += uint64(n)
	}
	if total != uint64(len(p.GetData())) {
		return fmt.Errorf("%w: sizes add up to %d bytes, buffer holds %d", ErrMalformed, total, len(p.GetData()))
	}
	return nil
}

// Builder packs payloads one by one.
type Builder struct {
	sizes []uint32
	data  []byte
}

// Add appends a payload.
func (b *Builder) Add(payload []byte) {
	b.sizes = append(b.sizes, uint32(len(payload)))
	b.data = append(b.data, payload...)
}

// Grow makes room for n more payloads of about bytes in all, so that adding
// them does not reallocate on the way.
func (b *Builder) Grow(n, bytes int) {
	b.sizes = slices.Grow(b.sizes, n)
	b.data = slices.Grow(b.data, bytes)
}

// AddAll appends every payload of o, and resets o. An empty b takes o's
// buffers over instead of copying them.
func (b *Builder) AddAll(o *Builder) {
	if len(b.sizes) == 0 {
		b.sizes, b.data = o.sizes, o.data
	} else {
		b.sizes = append(b.sizes, o.sizes...)
		b.data = append(b.data, o.data...)
	}
	o.sizes, o.data = nil, nil
}

// Len is the number of payloads added.
func (b *Builder) Len() int { return len(b.sizes) }

// Bytes is the number of payload bytes added.
func (b *Builder) Bytes() int { return len(b.data) }

// Take returns the packed payloads and resets the builder.
func (b *Builder) Take() *pb.Packed {
	if len(b.sizes) == 0 {
		return nil
	}
	p := &pb.Packed{Sizes: b.sizes, Data: b.data}
	b.sizes, b.data = nil, nil
	return p
}
