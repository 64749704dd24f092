package state

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// TestCodecRoundTrip: every command decodes to what was encoded, in both
// decoding modes.
func TestCodecRoundTrip(t *testing.T) {
	for seed := range uint64(30) {
		g := newGen(seed)
		for range 300 {
			c := g.next()
			rec := AppendCommand(nil, c)
			got, err := Decode(rec)
			if err != nil {
				t.Fatalf("seed %d: %T: %v", seed, c, err)
			}
			if !reflect.DeepEqual(normal(got), normal(c)) {
				t.Fatalf("seed %d: %T round trip:\n got %#v\nwant %#v", seed, c, got, c)
			}
			d := Decoder{Copy: true}
			owned, err := d.Decode(rec)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rec {
				rec[i] = 0xEE // a reused read buffer
			}
			if !reflect.DeepEqual(normal(owned), normal(c)) {
				t.Fatalf("seed %d: %T with Copy depends on the record's bytes", seed, c)
			}
		}
	}
}

// normal makes empty and nil slices alike, as the codec does.
func normal(c Command) Command {
	fix := func(items []NewItem) {
		for i := range items {
			if len(items[i].Payload) == 0 {
				items[i].Payload = nil
			}
		}
	}
	switch c := c.(type) {
	case *Put:
		fix(c.Items)
		if len(c.Items) == 0 {
			c.Items = nil
		}
	case *SettleReply:
		fix(c.Replies)
		if len(c.Replies) == 0 {
			c.Replies = nil
		}
		if len(c.IDs) == 0 {
			c.IDs = nil
		}
	case *Settle:
		if len(c.IDs) == 0 {
			c.IDs = nil
		}
	case *Purge:
		if len(c.IDs) == 0 {
			c.IDs = nil
		}
	case *Requeue:
		for i := range c.Items {
			if len(c.Items[i].Payload) == 0 {
				c.Items[i].Payload = nil
			}
		}
		if len(c.Items) == 0 {
			c.Items = nil
		}
	case *Fail:
		if len(c.Items) == 0 {
			c.Items = nil
		}
	case *Batch:
		for i := range c.Commands {
			c.Commands[i] = normal(c.Commands[i])
		}
	}
	return c
}

// TestGolden freezes the encoding of version 1: the log on a user's disk
// must still read after an upgrade. A change here is a new version.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		c   Command
		hex string
	}{
		{&Put{Queue: "tasks", Time: 1000, FirstID: 7, Items: []NewItem{{Payload: []byte("3")}, {Payload: []byte("14")}}},
			"0101d00f057461736b73070200000102333134"},
		{&Put{Queue: "q", Time: -1, FirstID: 1, Items: []NewItem{{Payload: []byte("x"), Headers: map[string]string{"a": "b"}}},
			Producer: Producer{1, 15: 2}, Seq: 9, Offset: 3, BatchCRC: 0xdeadbeef, DedupWindow: 600e9},
			"01010101710101010100000000000000000000000000000209" + "03efbeadde80c0cbacf62201" + "017801016101" + "62"},
		{&Settle{Queue: "tasks", Time: 5, IDs: []uint64{10, 11, 12, 9}}, "02010a057461736b7304140202" + "05"},
		{&SettleReply{Queue: "tasks", ReplyQueue: "results", Time: 0, IDs: []uint64{4}, FirstReplyID: 2, Replies: []NewItem{{Payload: []byte("16")}}},
			"030100057461736b7307726573756c747301080201000231" + "36"},
		{&Fail{Queue: "tasks", DeadQueue: "tasks.dead", Time: 2, Cause: CauseExpired, Items: []Failed{{ID: 3, Attempts: 2, Outcome: OutcomeReady, Due: 50, Error: "lease expired"}, {ID: 5, Attempts: 3, Outcome: OutcomeDead}}},
			"040104057461736b730a7461736b732e6465616402020602016" + "40d6c65617365206578706972656404030200" + "00"},
		{&Close{Queue: "q", Time: 1}, "0601020171"},
		{&Leases{HW: 300, Time: 0}, "070100ac02"},
		{&Start{Time: 3, Incarnation: 42, Version: "v1"}, "080106" + "2a027631"},
		{&QueueMeta{Queue: "q.dead", Origin: "q", NextID: 12, Closed: true}, "0a0100" + "06712e64656164" + "0171" + "0c01"},
		{&Items{Queue: "q", Items: []Item{{ID: 5, ReplyTo: 1, Attempts: 2, Payload: []byte("ab")}}}, "0b010001710105010200026162"},
		// The flags byte of QueueMeta: paused is its second bit.
		{&QueueMeta{Queue: "q", NextID: 3, Paused: true}, "0a0100" + "0171" + "00" + "0302"},
		{&QueueMeta{Queue: "q", NextID: 3, Closed: true, Paused: true}, "0a0100" + "0171" + "00" + "0303"},
		{&Purge{Queue: "q", Time: 2, IDs: []uint64{5, 6, 4}}, "0d0104" + "0171" + "03" + "0a0203"},
		{&Pause{Queue: "q", Time: 1, Paused: true}, "0e0102" + "0171" + "01"},
		{&Pause{Queue: "q", Time: 1}, "0e0102" + "0171" + "00"},
	} {
		got := hex.EncodeToString(AppendCommand(nil, tc.c))
		if got != tc.hex {
			t.Errorf("%T:\n got %s\nwant %s", tc.c, got, tc.hex)
		}
	}
}

// TestDecodeRejects: malformed records give a DecodeError, not a panic or
// a huge allocation.
func TestDecodeRejects(t *testing.T) {
	good := AppendCommand(nil, &Put{Queue: "tasks", Time: 1, FirstID: 1, Items: []NewItem{{Payload: []byte("abc")}}})
	cases := map[string][]byte{
		"empty":          nil,
		"unknown type":   {200, 1, 0},
		"unknown ver":    {1, 9, 0},
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"huge count":     {2, 1, 0, 1, 'q', 0xff, 0xff, 0xff, 0xff, 0x0f},
		"zero first id":  AppendCommand(nil, &Put{Queue: "q", Items: []NewItem{{Payload: []byte("a")}}}),
		"deep batch":     AppendCommand(nil, &Batch{Commands: []Command{&Batch{Commands: []Command{&Batch{}}}}}),
		"replies differ": {3, 1, 0, 1, 'q', 1, 'r', 1, 2, 1, 0},
		"queue flags":    {10, 1, 0, 1, 'q', 0, 3, 4},
		"paused flag":    {14, 1, 0, 1, 'q', 2},
	}
	for name, rec := range cases {
		_, err := Decode(rec)
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrDecode) {
			t.Errorf("%s: Decode(%x) = %v, want a DecodeError", name, rec, err)
		}
	}
}

// FuzzDecode: no input panics the decoder, and what decodes re-encodes to
// a record that decodes to the same command.
func FuzzDecode(f *testing.F) {
	g := newGen(1)
	for range 40 {
		f.Add(AppendCommand(nil, g.next()))
	}
	// Every command type at least once, whatever the generator drew.
	for _, c := range []Command{
		&Purge{Queue: "tasks", Time: 9, IDs: []uint64{3, 1, 2}},
		&Purge{Queue: "tasks.dead", Time: 9},
		&Pause{Queue: "tasks", Time: 10, Paused: true},
		&Pause{Queue: "tasks", Time: 11},
		&QueueMeta{Queue: "tasks", NextID: 4, Closed: true, Paused: true},
		&Batch{Commands: []Command{&Pause{Queue: "q", Paused: true}, &Purge{Queue: "q", IDs: []uint64{1}}}},
	} {
		f.Add(AppendCommand(nil, c))
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		c, err := Decode(rec)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v is not ErrDecode", err)
			}
			return
		}
		again, err := Decode(AppendCommand(nil, c))
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", c, err)
		}
		if !reflect.DeepEqual(normal(again), normal(c)) {
			t.Fatalf("%T changed on a second round trip", c)
		}
		New().Apply(c) // and applying it does not panic
	})
}

func BenchmarkEncodePut1000(b *testing.B) {
	items := make([]NewItem, 1000)
	for i := range items {
		items[i].Payload = []byte("123")
	}
	p := &Put{Queue: "tasks", Time: 1, FirstID: 1, Items: items}
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendCommand(buf[:0], p)
	}
	b.SetBytes(int64(len(buf)))
}
