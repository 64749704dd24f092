package logbench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// timedVFS is raft-wal's own file system with each Sync timed (raft-wal
// syncs with fsync), and a write fault that a test can inject.
type timedVFS struct {
	types.VFS
	sync *Samples
	fail atomic.Pointer[error]
}

func newTimedVFS(sync *Samples) *timedVFS { return &timedVFS{VFS: fs.New(), sync: sync} }

// FailWrites makes every later write fail with err (nil: stop failing).
func (v *timedVFS) FailWrites(err error) {
	if err == nil {
		v.fail.Store(nil)
		return
	}
	v.fail.Store(&err)
}

func (v *timedVFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := v.VFS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return &timedFile{WritableFile: f, v: v}, nil
}

func (v *timedVFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := v.VFS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return &timedFile{WritableFile: f, v: v}, nil
}

type timedFile struct {
	types.WritableFile
	v *timedVFS
}

func (f *timedFile) WriteAt(p []byte, off int64) (int, error) {
	if e := f.v.fail.Load(); e != nil {
		return 0, *e
	}
	return f.WritableFile.WriteAt(p, off)
}

func (f *timedFile) Sync() error {
	t0 := time.Now()
	err := f.WritableFile.Sync()
	f.v.sync.Add(time.Since(t0))
	return err
}

// walStore is raft-wal opened on dir with its metadata store kept, so that
// Close releases the metadata file's lock too (WAL.Close does not).
type walStore struct {
	*wal.WAL
	meta    *metadb.BoltMetaDB
	vfs     *timedVFS
	onClose func()
}

func openWAL(dir string, segSize int, sync *Samples) (*walStore, error) {
	meta := &metadb.BoltMetaDB{}
	vfs := newTimedVFS(sync)
	if segSize == 0 {
		segSize = wal.DefaultSegmentSize
	}
	w, err := wal.Open(dir,
		wal.WithMetaStore(meta),
		wal.WithSegmentFiler(segment.NewFiler(dir, vfs)),
		wal.WithLogger(hclog.NewNullLogger()),
		wal.WithSegmentSize(segSize))
	if err != nil {
		meta.Close()
		return nil, err
	}
	return &walStore{WAL: w, meta: meta, vfs: vfs}, nil
}

func (s *walStore) Close() error {
	err := s.WAL.Close()
	if cerr := s.meta.Close(); err == nil {
		err = cerr
	}
	if s.onClose != nil {
		s.onClose()
	}
	return err
}

// raftWALSink stores each group as one raft-wal entry (StoreLogs), or, per
// command, one entry per frame.
type raftWALSink struct {
	w       *walStore
	next    uint64
	perCmd  bool
	log     raft.Log
	logs    []*raft.Log
	entries []raft.Log
}

func openRaftWAL(dir string, perCmd bool, sync *Samples) (*raftWALSink, error) {
	w, err := openWAL(dir, 0, sync)
	if err != nil {
		return nil, err
	}
	last, err := w.LastIndex()
	if err != nil {
		w.Close()
		return nil, err
	}
	return &raftWALSink{w: w, next: last + 1, perCmd: perCmd}, nil
}

func (s *raftWALSink) Append(g *Group) error {
	if !s.perCmd {
		s.log = raft.Log{Index: s.next, Term: 1, Type: raft.LogCommand, Data: g.Frames}
		s.logs = append(s.logs[:0], &s.log)
	} else {
		s.entries = s.entries[:0]
		s.logs = s.logs[:0]
		idx := s.next
		if err := eachFrameRaw(g.Frames, func(fr []byte) {
			s.entries = append(s.entries, raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: fr})
			idx++
		}); err != nil {
			return err
		}
		for i := range s.entries {
			s.logs = append(s.logs, &s.entries[i])
		}
	}
	if err := s.w.StoreLogs(s.logs); err != nil {
		return err
	}
	s.next += uint64(len(s.logs))
	return nil
}

func (s *raftWALSink) Close() error { return s.w.Close() }

// eachFrameRaw calls fn with each whole frame of b (no CRC check: the
// journal made them).
func eachFrameRaw(b []byte, fn func(fr []byte)) error {
	for off := 0; off < len(b); {
		if len(b)-off < frameHeader {
			return errLength
		}
		sz := frameSize(int(uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16 | uint32(b[off+3])<<24))
		if off+sz > len(b) {
			return errLength
		}
		fn(b[off : off+sz])
		off += sz
	}
	return nil
}

// recoverRaftWAL opens raft-wal and reads every entry: our frames inside are
// CRC checked and decoded (raft-wal itself checks no checksum on read).
func recoverRaftWAL(dir string, a Applier) (uint64, error) {
	w, err := openWAL(dir, 0, nil)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	first, err := w.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := w.LastIndex()
	if err != nil {
		return 0, err
	}
	var dec Decoder
	var l raft.Log
	var lsn uint64
	for i := first; i <= last && i > 0; i++ {
		if err := w.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("raft-wal entry %d: %w", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		if err := eachFrame(l.Data, func(f frame) error {
			lsn = f.lsn
			return dec.Decode(f.body, a)
		}); err != nil {
			return 0, fmt.Errorf("raft-wal entry %d: %w", i, err)
		}
	}
	return lsn, nil
}

// fsm is raft's state machine here. Live, it does nothing: the master
// applies first and logs after (design §1.7), so the leader's FSM has
// nothing left to do. In replay it checks and decodes every frame.
type fsm struct {
	mu      sync.Mutex
	replay  bool
	dec     Decoder
	a       Applier
	applied uint64 // frames applied in replay
	target  uint64
	reached chan struct{}
	err     error
	resp    []any
}

func (m *fsm) Apply(l *raft.Log) any { m.ApplyBatch([]*raft.Log{l}); return nil }

func (m *fsm) ApplyBatch(logs []*raft.Log) []any {
	if cap(m.resp) < len(logs) {
		m.resp = make([]any, len(logs))
	}
	if !m.replay {
		return m.resp[:len(logs)]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range logs {
		if l.Type != raft.LogCommand || m.err != nil {
			continue
		}
		m.err = eachFrame(l.Data, func(f frame) error {
			m.applied++
			return m.dec.Decode(f.body, m.a)
		})
	}
	if m.reached != nil && (m.applied >= m.target || m.err != nil) {
		close(m.reached)
		m.reached = nil
	}
	return m.resp[:len(logs)]
}

func (m *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("logbench: no snapshots")
}

func (m *fsm) Restore(rc io.ReadCloser) error { return rc.Close() }

// raftNode is a one-voter hashicorp/raft on raft-wal with an in-memory
// transport.
type raftNode struct {
	r     *raft.Raft
	store *walStore
	trans *raft.InmemTransport
	fsm   *fsm
}

func raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = "m1"
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.MaxAppendEntries = 1024
	c.BatchApplyCh = true
	c.SnapshotInterval = 24 * time.Hour
	c.SnapshotThreshold = 1 << 62
	c.Logger = hclog.NewNullLogger()
	return c
}

// startRaft opens (bootstrapping when new) a one-node raft in dir and waits
// until it leads, at most timeout.
func startRaft(dir string, m *fsm, sync *Samples, timeout time.Duration) (*raftNode, error) {
	store, err := openWAL(dir, 0, sync)
	if err != nil {
		return nil, err
	}
	return startRaftOn(store, m, timeout)
}

// startRaftOn is startRaft on an open store (closed on error).
func startRaftOn(store *walStore, m *fsm, timeout time.Duration) (*raftNode, error) {
	addr, trans := raft.NewInmemTransport("m1")
	conf := raftConfig()
	has, err := raft.HasExistingState(store, store, raft.NewDiscardSnapshotStore())
	if err != nil {
		store.Close()
		return nil, err
	}
	if !has {
		cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: conf.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(conf, store, store, raft.NewDiscardSnapshotStore(), trans, cfg); err != nil {
			store.Close()
			return nil, err
		}
	}
	r, err := raft.NewRaft(conf, m, store, store, raft.NewDiscardSnapshotStore(), trans)
	if err != nil {
		store.Close()
		return nil, err
	}
	n := &raftNode{r: r, store: store, trans: trans, fsm: m}
	deadline := time.After(timeout)
	for r.State() != raft.Leader {
		select {
		case <-r.LeaderCh():
		case <-deadline:
			n.Close()
			return nil, errors.New("raft: no leader in time")
		}
	}
	return n, nil
}

func (n *raftNode) Close() error {
	err := n.r.Shutdown().Error()
	n.trans.Close()
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// raftSink feeds raft from the journal's single writer: one Apply per group
// (the design), or one per command, all submitted then all awaited.
type raftSink struct {
	n       *raftNode
	perCmd  bool
	futures []raft.ApplyFuture
}

func openRaft1(dir string, perCmd bool, sync *Samples) (*raftSink, error) {
	n, err := startRaft(dir, &fsm{}, sync, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &raftSink{n: n, perCmd: perCmd}, nil
}

func (s *raftSink) Append(g *Group) error {
	if !s.perCmd {
		return s.n.r.Apply(g.Frames, 0).Error()
	}
	s.futures = s.futures[:0]
	if err := eachFrameRaw(g.Frames, func(fr []byte) {
		s.futures = append(s.futures, s.n.r.Apply(fr, 0))
	}); err != nil {
		return err
	}
	var first error
	for _, f := range s.futures {
		if err := f.Error(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *raftSink) Close() error { return s.n.Close() }

// RaftRecovery is the time a restart of the one-node raft took.
type RaftRecovery struct {
	Leader time.Duration // until it led (election after the heartbeat timeout)
	Total  time.Duration // until every frame was applied
}

// recoverRaft restarts raft on dir and waits until the FSM has replayed
// frames records.
func recoverRaft(dir string, frames uint64, a Applier) (RaftRecovery, error) {
	var rr RaftRecovery
	m := &fsm{replay: true, a: a, target: frames, reached: make(chan struct{})}
	done := m.reached
	t0 := time.Now()
	n, err := startRaft(dir, m, nil, time.Minute)
	if err != nil {
		return rr, err
	}
	defer n.Close()
	rr.Leader = time.Since(t0)
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return rr, errors.New("raft replay did not finish")
	}
	rr.Total = time.Since(t0)
	m.mu.Lock()
	defer m.mu.Unlock()
	return rr, m.err
}

// prewrittenVFS is what design (a) would put under raft-wal to sync as our
// segment log does: segment files written with zeros ahead of use by a
// background goroutine (so that appends overwrite written blocks and change
// no metadata), synced with fdatasync. raft-wal's segments cannot be
// recycled (a stale commit frame after the data could pass its tail check),
// so every segment is written twice: zeros, then entries.
type prewrittenVFS struct {
	types.VFS
	dir   string
	size  int
	ready chan prepared
	stop  chan struct{}
	wg    sync.WaitGroup
	sync  *Samples
}

// prepared is a segment file the preparer wrote, or why it could not.
type prepared struct {
	f   *os.File
	no  uint64
	err error
}

func newPrewrittenVFS(dir string, size int, sync *Samples) *prewrittenVFS {
	v := &prewrittenVFS{VFS: fs.New(), dir: dir, size: size, ready: make(chan prepared, 1), stop: make(chan struct{}), sync: sync}
	v.wg.Add(1)
	go v.prepare()
	return v
}

func (v *prewrittenVFS) prepare() {
	defer v.wg.Done()
	for n := 0; ; n++ {
		path := filepath.Join(v.dir, fmt.Sprintf("prep-%d.tmp", n))
		f, err := prewrite(path, v.size)
		select {
		case v.ready <- prepared{f: f, err: err, no: uint64(n)}:
		case <-v.stop:
			if f != nil {
				f.Close()
				os.Remove(path)
			}
			return
		}
		if err != nil {
			return
		}
	}
}

func (v *prewrittenVFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	if dir != v.dir || int(size) != v.size {
		return nil, fmt.Errorf("prewritten VFS: segment of %d bytes in %s", size, dir)
	}
	p := <-v.ready
	if p.err != nil {
		return nil, p.err
	}
	if err := os.Rename(p.f.Name(), filepath.Join(dir, name)); err != nil {
		p.f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		p.f.Close()
		return nil, err
	}
	return &datasyncFile{File: p.f, sync: v.sync}, nil
}

func (v *prewrittenVFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &datasyncFile{File: f, sync: v.sync}, nil
}

// Close stops the preparer and removes a prepared file nobody took.
func (v *prewrittenVFS) Close() {
	close(v.stop)
	v.wg.Wait()
	select {
	case p := <-v.ready:
		if p.f != nil {
			p.f.Close()
			os.Remove(p.f.Name())
		}
	default:
	}
}

type datasyncFile struct {
	*os.File
	sync *Samples
}

func (f *datasyncFile) Sync() error { return fdatasync(f.File, f.sync) }

// openRaft1Pre is raft1 on raft-wal with the prewritten VFS.
func openRaft1Pre(dir string, sync *Samples) (*raftSink, error) {
	vfs := newPrewrittenVFS(dir, wal.DefaultSegmentSize, sync)
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithSegmentFiler(segment.NewFiler(dir, vfs)),
		wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		meta.Close()
		vfs.Close()
		return nil, err
	}
	store := &walStore{WAL: w, meta: meta, onClose: vfs.Close}
	n, err := startRaftOn(store, &fsm{}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &raftSink{n: n}, nil
}
