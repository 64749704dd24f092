package state

import (
	"math/rand/v2"
	"strconv"
)

// gen makes random commands that mostly name items that are there, the
// way a live master's would, with some that name items that are not (what
// a replay over a snapshot meets).
type gen struct {
	rng  *rand.Rand
	m    *Machine // the state the commands are made against
	time int64
	prod [3]Producer
	seq  [3]uint64
	// live makes only commands a live master logs: they name items that
	// are there (the master logs a settle or a failure only for an item it
	// leased), never ids that do not exist yet.
	live bool
}

var genQueues = []string{"tasks", "results", "other"}

func newGen(seed uint64) *gen {
	g := &gen{rng: rand.New(rand.NewPCG(seed, 99)), m: New(), time: 1_000_000}
	for i := range g.prod {
		g.prod[i][0], g.prod[i][15] = byte(i+1), 0xAB
	}
	return g
}

func (g *gen) payload() []byte {
	if g.rng.IntN(8) == 0 {
		return nil
	}
	return []byte(strconv.Itoa(g.rng.IntN(100000)))
}

func (g *gen) newItems(n int) []NewItem {
	items := make([]NewItem, n)
	for i := range items {
		items[i].Payload = g.payload()
		if g.rng.IntN(10) == 0 {
			items[i].Headers = map[string]string{"k": strconv.Itoa(i), "trace": "x"}
		}
	}
	return items
}

// ids picks up to n ids of q: mostly present ones, sometimes absent.
func (g *gen) ids(q string, n int) []uint64 {
	var have []uint64
	if s := g.m.Queue(q); s != nil {
		s.Ascend(func(it *Item) bool { have = append(have, it.ID); return len(have) < 64 })
	}
	var out []uint64
	for range n {
		if len(have) > 0 && (g.live || g.rng.IntN(8) != 0) {
			id := have[g.rng.IntN(len(have))]
			dup := false
			for _, o := range out {
				dup = dup || o == id
			}
			if !dup {
				out = append(out, id)
			}
			continue
		}
		if !g.live {
			out = append(out, uint64(1+g.rng.IntN(1000)))
		}
	}
	return out
}

func (g *gen) nextID(q string) uint64 {
	if s := g.m.Queue(q); s != nil {
		return s.NextID() + 1
	}
	return 1
}

// next returns a random command and applies it to the generator's machine.
func (g *gen) next() Command {
	g.time += int64(g.rng.IntN(5_000_000)) - 100_000 // the clock may go back
	q := genQueues[g.rng.IntN(len(genQueues))]
	dead := q + ".dead"
	var c Command
	switch r := g.rng.IntN(100); {
	case r < 30:
		p := &Put{Queue: q, Time: g.time, FirstID: g.nextID(q), Items: g.newItems(1 + g.rng.IntN(6))}
		if k := g.rng.IntN(4); k < len(g.prod) {
			p.Producer = g.prod[k]
			if g.rng.IntN(5) != 0 {
				g.seq[k]++
			}
			p.Seq = g.seq[k]
			p.Offset = uint32(g.rng.IntN(3))
			p.BatchCRC = g.rng.Uint32()
			p.DedupWindow = int64(g.rng.IntN(3)) * 20_000_000
		}
		c = p
	case r < 45:
		c = &Settle{Queue: q, Time: g.time, IDs: g.ids(q, 1+g.rng.IntN(4))}
	case r < 60:
		ids := g.ids(q, 1+g.rng.IntN(4))
		c = &SettleReply{Queue: q, ReplyQueue: "results", Time: g.time, IDs: ids, FirstReplyID: g.nextID("results"), Replies: g.newItems(len(ids))}
		if q == "results" {
			c.(*SettleReply).ReplyQueue = "other"
			c.(*SettleReply).FirstReplyID = g.nextID("other")
		}
	case r < 80:
		f := &Fail{Queue: q, DeadQueue: dead, Time: g.time, Cause: Cause(1 + g.rng.IntN(4))}
		for _, id := range g.ids(q, 1+g.rng.IntN(3)) {
			fl := Failed{ID: id, Attempts: uint32(1 + g.rng.IntN(5)), Outcome: OutcomeReady, Error: "boom " + strconv.Itoa(g.rng.IntN(9))}
			switch g.rng.IntN(3) {
			case 0:
				fl.Outcome = OutcomeDead
			case 1:
				fl.Due = g.time + int64(g.rng.IntN(1e9))
			}
			f.Items = append(f.Items, fl)
		}
		c = f
	case r < 86:
		rq := &Requeue{Queue: q, DeadQueue: dead, Time: g.time}
		if d := g.m.Queue(dead); d != nil {
			d.Ascend(func(it *Item) bool {
				if g.rng.IntN(2) == 0 {
					rq.Items = append(rq.Items, *it)
				}
				return len(rq.Items) < 5
			})
		}
		c = rq
	case r < 88:
		c = &Close{Queue: q, Time: g.time}
	case r < 90:
		c = &Leases{HW: uint64(g.rng.IntN(1 << 20)), Time: g.time}
	case r < 91:
		c = &Start{Time: g.time, Incarnation: g.rng.Uint64(), Version: "v1.2.3"}
	case r < 93:
		// An operator's purge of what was ready: of a queue or of its
		// dead-letter queue.
		if g.rng.IntN(2) == 0 {
			q = dead
		}
		c = &Purge{Queue: q, Time: g.time, IDs: g.ids(q, 1+g.rng.IntN(5))}
	case r < 95:
		c = &Pause{Queue: q, Time: g.time, Paused: g.rng.IntN(3) != 0}
	default:
		b := &Batch{}
		for range 1 + g.rng.IntN(3) {
			q := genQueues[g.rng.IntN(len(genQueues))]
			b.Commands = append(b.Commands, &Settle{Queue: q, Time: g.time, IDs: g.ids(q, 2)})
		}
		b.Commands = append(b.Commands, &Put{Queue: q, Time: g.time, FirstID: g.nextID(q), Items: g.newItems(2)})
		c = b
	}
	g.m.Apply(c)
	return c
}
