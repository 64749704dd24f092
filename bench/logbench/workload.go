package logbench

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Engines measured in every shape, in the order of the table.
var Engines = []string{"raw", "recycled", "seglog", "raftwal", "raft1", "raft1cmd"}

// EngineDoc says what each engine is.
var EngineDoc = map[string]string{
	"raw":        "one growing file, write + fdatasync per group",
	"recycled":   "ring of 4 pre-written 32 MiB segments reused, fdatasync per group",
	"seglog":     "the master's log (internal/wal): its journal, recycled 32 MiB segments compacted every 64 MiB, fdatasync per group",
	"raftwal":    "raft-wal v0.4.0 StoreLogs, one entry per group (fsync, fallocated segments)",
	"raftwalcmd": "raft-wal v0.4.0 StoreLogs, one entry per command",
	"raft1":      "one-voter hashicorp/raft v1.8.0 on raft-wal, one Apply per group",
	"raft1cmd":   "one-voter hashicorp/raft v1.8.0 on raft-wal, one Apply per command",
	"raft1pre":   "raft1 with a raft-wal VFS of our own: segments pre-written with zeros in the background, fdatasync",
}

// OpenEngine opens engine name in dir (empty). syncTime records every
// fdatasync or fsync the engine does. The seglog engines are not sinks:
// they bring their own journal (openMasterLog).
func OpenEngine(name, dir string, syncTime *Samples) (Sink, error) {
	switch name {
	case "raw":
		return openRaw(dir, syncTime)
	case "recycled":
		return openRecycled(dir, 4, syncTime)
	case "raftwal", "raftwalcmd":
		return openRaftWAL(dir, name == "raftwalcmd", syncTime)
	case "raft1", "raft1cmd":
		return openRaft1(dir, name == "raft1cmd", syncTime)
	case "raft1pre":
		return openRaft1Pre(dir, syncTime)
	}
	return nil, fmt.Errorf("unknown engine %q", name)
}

// Shape is a workload.
type Shape struct {
	Name string `json:"name"`
	// Master shape: producers put PutBatch items of Payload bytes and wait
	// until durable; slaves settle-with-reply SettleBatch items (replies of
	// ReplySize bytes) without waiting; one reader settles up to ReaderMax
	// replies and waits.
	Producers   int `json:"producers,omitempty"`
	PutBatch    int `json:"put_batch,omitempty"`
	Payload     int `json:"payload,omitempty"`
	Slaves      int `json:"slaves,omitempty"`
	SettleBatch int `json:"settle_batch,omitempty"`
	ReplySize   int `json:"reply_size,omitempty"`
	ReaderMax   int `json:"reader_max,omitempty"`
	// Rate > 0 paces the producers to that many items/s in all (each waits
	// for its next slot): the figures at the load the master has, not at
	// saturation.
	Rate int `json:"rate,omitempty"`
	// Issue shape: Writers each append Batch records of RecordSize bytes and
	// wait until durable. Serial: a write and a sync per batch, nothing
	// shared; otherwise the journal's group commit merges concurrent batches.
	Writers    int  `json:"writers,omitempty"`
	Batch      int  `json:"batch,omitempty"`
	RecordSize int  `json:"record_size,omitempty"`
	Serial     bool `json:"serial,omitempty"`
}

// Issue reports whether s is the issue's raw shape.
func (s Shape) Issue() bool { return s.Writers > 0 }

// RunOpts bounds one run.
type RunOpts struct {
	Warmup   time.Duration
	Duration time.Duration
	// MaxItems > 0 ends the measured window once that many items are durable
	// (tests), whichever comes first.
	MaxItems uint64
}

// Result is one cell of one repetition.
type Result struct {
	Shape          string  `json:"shape"`
	Engine         string  `json:"engine"`
	Rep            int     `json:"rep"`
	Seconds        float64 `json:"seconds"`
	Items          uint64  `json:"items"`
	Commands       uint64  `json:"commands"`
	Groups         uint64  `json:"groups"`
	Bytes          uint64  `json:"bytes"`
	ItemsPerSec    float64 `json:"items_per_s"`
	CommandsPerSec float64 `json:"commands_per_s"`
	GroupsPerSec   float64 `json:"groups_per_s"`
	MeanGroupBytes float64 `json:"mean_group_bytes"`
	CPUNsPerItem   float64 `json:"cpu_ns_per_item"`
	AllocsPerItem  float64 `json:"allocs_per_item"`
	PutWait        Dist    `json:"put_wait"`    // producers (master shape)
	SettleWait     Dist    `json:"settle_wait"` // the reader (master shape)
	BatchWait      Dist    `json:"batch_wait"`  // writers (issue shape)
	Sync           Dist    `json:"sync"`        // each fdatasync/fsync of the engine
	GroupWrite     Dist    `json:"group_write"` // each Append of a group
	Error          string  `json:"error,omitempty"`
	// Everything made durable from the start to the end of the run (not only
	// in the measured window): what a recovery must find.
	TotalItems    uint64 `json:"-"`
	TotalCommands uint64 `json:"-"`
}

// committer is what submitters use: the journal, or a serial log.
type committer interface {
	Append(body []byte, crc uint32) (uint64, error)
	AppendBatch(bodies [][]byte, crcs []uint32) (uint64, error)
	Wait(lsn uint64) error
	Close() error
	counts() (groups, bytes, cmds uint64)
}

func (j *Journal) counts() (uint64, uint64, uint64) {
	return j.Groups.Load(), j.GroupBytes.Load(), j.GroupCmds.Load()
}

// serialLog writes and syncs each submission by itself, one at a time: the
// issue's "a sync per batch".
type serialLog struct {
	mu                 sync.Mutex
	sink               Sink
	next, synced       uint64
	buf                []byte
	groups, bytes, cmd atomic.Uint64
	sinkTime           *Samples
}

func (s *serialLog) Append(body []byte, crc uint32) (uint64, error) {
	return s.AppendBatch([][]byte{body}, []uint32{crc})
}

func (s *serialLog) AppendBatch(bodies [][]byte, crcs []uint32) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = s.buf[:0]
	first := s.next
	for i, b := range bodies {
		s.buf = appendFrame(s.buf, b, crcs[i], s.next, s.synced)
		s.next++
	}
	g := Group{Frames: s.buf, First: first, Last: s.next - 1, N: len(bodies)}
	t0 := time.Now()
	if err := s.sink.Append(&g); err != nil {
		return 0, err
	}
	s.sinkTime.Add(time.Since(t0))
	s.synced = g.Last
	s.groups.Add(1)
	s.bytes.Add(uint64(len(g.Frames)))
	s.cmd.Add(uint64(g.N))
	return g.Last, nil
}

func (s *serialLog) Wait(uint64) error { return nil }
func (s *serialLog) Close() error      { return nil }
func (s *serialLog) counts() (uint64, uint64, uint64) {
	return s.groups.Load(), s.bytes.Load(), s.cmd.Load()
}

// pool hands out ids that became available, in batches.
type pool struct {
	mu    sync.Mutex
	cond  sync.Cond
	avail uint64 // ids below this are available
	next  uint64 // the next id to hand out
	stop  bool
}

func newPool(first uint64) *pool {
	p := &pool{avail: first, next: first}
	p.cond.L = &p.mu
	return p
}

// add makes n more ids available.
func (p *pool) add(n uint64, batch int) {
	p.mu.Lock()
	p.avail += n
	if p.avail-p.next >= uint64(batch) {
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// take waits until at least least ids are available, then takes up to most
// of them. ok is false once the pool stopped.
func (p *pool) take(least, most int) (first uint64, n int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.stop && p.avail-p.next < uint64(least) {
		p.cond.Wait()
	}
	if p.stop {
		return 0, 0, false
	}
	n = int(min(p.avail-p.next, uint64(most)))
	first = p.next
	p.next += uint64(n)
	if p.avail-p.next >= uint64(least) {
		p.cond.Signal()
	}
	return first, n, true
}

func (p *pool) close() {
	p.mu.Lock()
	p.stop = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// payloads returns n payloads of size bytes: ASCII numbers when size is 3
// (the demo's tasks), random bytes otherwise.
func payloads(n, size int, rng *rand.Rand) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, size)
		if size == 3 {
			copy(b, fmt.Sprintf("%03d", i%1000))
		} else {
			for k := range b {
				b[k] = byte(rng.Uint32())
			}
		}
		out[i] = b
	}
	return out
}

// run state shared by the workload goroutines.
type runState struct {
	c        committer
	on       atomic.Bool // recording
	stop     atomic.Bool
	items    atomic.Uint64 // durable items (puts, or issue records)
	cmds     atomic.Uint64
	maxItems atomic.Uint64
	reached  chan struct{}
	once     sync.Once
	errOnce  sync.Once
	err      error
	wg       sync.WaitGroup
}

func (rs *runState) fail(err error) {
	rs.errOnce.Do(func() { rs.err = err })
	rs.stop.Store(true)
	rs.once.Do(func() { close(rs.reached) })
}

func (rs *runState) count(n uint64) {
	if v, m := rs.items.Add(n), rs.maxItems.Load(); m > 0 && v >= m {
		rs.once.Do(func() { close(rs.reached) })
	}
}

// Run measures shape on engine in dir (an empty directory).
func Run(shape Shape, engine, dir string, opts RunOpts) (res Result) {
	res = Result{Shape: shape.Name, Engine: engine}
	rs := &runState{reached: make(chan struct{})}
	syncS := NewSamples(&rs.on, 1<<18)
	groupS := NewSamples(&rs.on, 1<<18)
	var sink Sink
	var err error
	if engine == "seglog" || engine == "seglogkeep" {
		// The master's log, with its own journal; seglogkeep keeps every
		// segment (the recovery fill).
		w, err := openMasterLog(dir, engine == "seglogkeep", syncS)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		w.serial = shape.Issue() && shape.Serial
		rs.c = w
	} else if sink, err = OpenEngine(engine, dir, syncS); err != nil {
		res.Error = err.Error()
		return res
	} else if shape.Issue() && shape.Serial {
		rs.c = &serialLog{sink: sink, next: 1, sinkTime: groupS}
	} else {
		j := NewJournal(sink, 1)
		j.SinkTime = groupS
		rs.c = j
	}
	putS := NewSamples(&rs.on, 1<<18)
	settleS := NewSamples(&rs.on, 1<<18)
	batchS := NewSamples(&rs.on, 1<<18)
	var pools []*pool
	if shape.Issue() {
		for w := 0; w < shape.Writers; w++ {
			rs.wg.Add(1)
			go issueWriter(rs, shape, uint64(w), batchS)
		}
	} else {
		tasks, results := newPool(1), newPool(1)
		pools = []*pool{tasks, results}
		var ids, replyIDs atomic.Uint64
		ids.Store(1)
		replyIDs.Store(1)
		for p := 0; p < shape.Producers; p++ {
			rs.wg.Add(1)
			go producer(rs, shape, p, &ids, tasks, putS)
		}
		for s := 0; s < shape.Slaves; s++ {
			rs.wg.Add(1)
			go slave(rs, shape, tasks, results, &replyIDs)
		}
		rs.wg.Add(1)
		go reader(rs, shape, results, settleS)
	}

	sleepOr(opts.Warmup, rs.reached)
	u0 := readUsage()
	i0, c0 := rs.items.Load(), rs.cmds.Load()
	g0, b0, _ := rs.c.counts()
	rs.on.Store(true)
	if opts.MaxItems > 0 {
		rs.maxItems.Store(i0 + opts.MaxItems)
	}
	sleepOr(opts.Duration, rs.reached)
	rs.on.Store(false)
	u1 := readUsage()
	i1, c1 := rs.items.Load(), rs.cmds.Load()
	g1, b1, _ := rs.c.counts()

	rs.stop.Store(true)
	for _, p := range pools {
		p.close()
	}
	rs.wg.Wait()
	if err := rs.c.Close(); err != nil && rs.err == nil {
		rs.err = err
	}
	if sink != nil {
		if err := sink.Close(); err != nil && rs.err == nil {
			rs.err = err
		}
	}
	if rs.err != nil {
		res.Error = rs.err.Error()
	}
	res.TotalItems = rs.items.Load()
	if g, ok := rs.c.(*Journal); ok {
		_, _, res.TotalCommands = g.counts()
	} else {
		_, _, res.TotalCommands = rs.c.counts()
	}

	secs := u1.wall.Sub(u0.wall).Seconds()
	res.Seconds = secs
	res.Items, res.Commands, res.Groups, res.Bytes = i1-i0, c1-c0, g1-g0, b1-b0
	if secs > 0 {
		res.ItemsPerSec = float64(res.Items) / secs
		res.CommandsPerSec = float64(res.Commands) / secs
		res.GroupsPerSec = float64(res.Groups) / secs
	}
	if res.Groups > 0 {
		res.MeanGroupBytes = float64(res.Bytes) / float64(res.Groups)
	}
	if res.Items > 0 {
		res.CPUNsPerItem = float64(u1.cpu-u0.cpu) / float64(res.Items)
		res.AllocsPerItem = float64(u1.allocs-u0.allocs) / float64(res.Items)
	}
	res.PutWait, res.SettleWait, res.BatchWait = putS.Dist(), settleS.Dist(), batchS.Dist()
	res.Sync, res.GroupWrite = syncS.Dist(), groupS.Dist()
	return res
}

// sleepOr waits d, or until done closes.
func sleepOr(d time.Duration, done <-chan struct{}) {
	if d <= 0 {
		select {
		case <-done:
		default:
		}
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

func producer(rs *runState, sh Shape, n int, ids *atomic.Uint64, tasks *pool, wait *Samples) {
	defer rs.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	p := putCmd{queue: "tasks", payloads: payloads(sh.PutBatch, sh.Payload, rng)}
	for i := range p.producer {
		p.producer[i] = byte(rng.Uint32())
	}
	var buf []byte
	var pace *time.Ticker
	if sh.Rate > 0 {
		pace = time.NewTicker(time.Duration(float64(time.Second) * float64(sh.Producers*sh.PutBatch) / float64(sh.Rate)))
		defer pace.Stop()
	}
	for !rs.stop.Load() {
		if pace != nil {
			<-pace.C
		}
		k := uint64(len(p.payloads))
		p.firstID = ids.Add(k) - k
		p.seq++
		p.time = time.Now().UnixNano()
		buf = appendPut(buf[:0], &p)
		t0 := time.Now()
		lsn, err := rs.c.Append(buf, bodyCRC(buf))
		if err != nil {
			rs.fail(err)
			return
		}
		rs.cmds.Add(1)
		tasks.add(k, sh.SettleBatch) // applied first: deliverable now
		if err := rs.c.Wait(lsn); err != nil {
			rs.fail(err)
			return
		}
		wait.Add(time.Since(t0))
		rs.count(k)
	}
}

func slave(rs *runState, sh Shape, tasks, results *pool, replyIDs *atomic.Uint64) {
	defer rs.wg.Done()
	replies := make([][]byte, sh.SettleBatch)
	for i := range replies {
		replies[i] = fmt.Appendf(nil, "%0*d", sh.ReplySize, i)[:sh.ReplySize]
	}
	ids := make([]uint64, 0, sh.SettleBatch)
	var buf []byte
	for {
		first, n, ok := tasks.take(sh.SettleBatch, sh.SettleBatch)
		if !ok || rs.stop.Load() {
			return
		}
		ids = ids[:0]
		for i := 0; i < n; i++ {
			ids = append(ids, first+uint64(i))
		}
		fr := replyIDs.Add(uint64(n)) - uint64(n)
		buf = appendSettleReply(buf[:0], "tasks", "results", time.Now().UnixNano(), ids, fr, replies[:n])
		if _, err := rs.c.Append(buf, bodyCRC(buf)); err != nil {
			rs.fail(err)
			return
		}
		rs.cmds.Add(1)
		results.add(uint64(n), 1)
	}
}

func reader(rs *runState, sh Shape, results *pool, wait *Samples) {
	defer rs.wg.Done()
	ids := make([]uint64, 0, sh.ReaderMax)
	var buf []byte
	for {
		first, n, ok := results.take(1, sh.ReaderMax)
		if !ok || rs.stop.Load() {
			return
		}
		ids = ids[:0]
		for i := 0; i < n; i++ {
			ids = append(ids, first+uint64(i))
		}
		buf = appendSettle(buf[:0], "results", time.Now().UnixNano(), ids)
		t0 := time.Now()
		lsn, err := rs.c.Append(buf, bodyCRC(buf))
		if err != nil {
			rs.fail(err)
			return
		}
		rs.cmds.Add(1)
		if err := rs.c.Wait(lsn); err != nil {
			rs.fail(err)
			return
		}
		wait.Add(time.Since(t0))
	}
}

func issueWriter(rs *runState, sh Shape, w uint64, wait *Samples) {
	defer rs.wg.Done()
	rng := rand.New(rand.NewPCG(w, 11))
	recs := payloads(sh.Batch, sh.RecordSize, rng)
	crcs := make([]uint32, sh.Batch)
	for !rs.stop.Load() {
		for i, r := range recs {
			crcs[i] = bodyCRC(r)
		}
		t0 := time.Now()
		lsn, err := rs.c.AppendBatch(recs, crcs)
		if err != nil {
			rs.fail(err)
			return
		}
		rs.cmds.Add(uint64(len(recs)))
		if err := rs.c.Wait(lsn); err != nil {
			rs.fail(err)
			return
		}
		wait.Add(time.Since(t0))
		rs.count(uint64(len(recs)))
	}
}
