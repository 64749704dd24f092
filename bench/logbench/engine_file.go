package logbench

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// SegmentSize is the size of the file engines' segments.
const SegmentSize = 32 << 20

// fdatasync syncs f's data (and the metadata needed to read it back) and
// records how long it took.
func fdatasync(f *os.File, rec *Samples) error {
	t0 := time.Now()
	err := unix.Fdatasync(int(f.Fd()))
	rec.Add(time.Since(t0))
	return err
}

// rawSink appends every group to one growing file: write + fdatasync. On ext4
// the sync of a growing file also commits the journal (the size changed).
type rawSink struct {
	f        *os.File
	off      int64
	syncTime *Samples
}

func openRaw(dir string, syncTime *Samples) (*rawSink, error) {
	f, err := os.OpenFile(filepath.Join(dir, "raw.log"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &rawSink{f: f, syncTime: syncTime}, nil
}

func (s *rawSink) Append(g *Group) error {
	if _, err := s.f.WriteAt(g.Frames, s.off); err != nil {
		return err
	}
	s.off += int64(len(g.Frames))
	return fdatasync(s.f, s.syncTime)
}

func (s *rawSink) Close() error { return s.f.Close() }

// prewrite makes a file of size bytes of zeros, written (not just
// allocated) and synced, so that later overwrites change no metadata.
func prewrite(path string, size int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	zero := make([]byte, 1<<20)
	for off := 0; off < size; off += len(zero) {
		if _, err := f.WriteAt(zero[:min(len(zero), size-off)], int64(off)); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// recycledSink writes groups into a ring of pre-written 32 MiB segments,
// reused in turn (as if compaction had freed the oldest), fdatasync per
// group. It is the floor of our segment log: the same bytes, no segment
// header and no recovery.
type recycledSink struct {
	segs     []*os.File
	cur      int
	off      int64
	syncTime *Samples
}

func openRecycled(dir string, ring int, syncTime *Samples) (*recycledSink, error) {
	s := &recycledSink{syncTime: syncTime}
	for i := 0; i < ring; i++ {
		f, err := prewrite(filepath.Join(dir, fmt.Sprintf("ring-%d.seg", i)), SegmentSize)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.segs = append(s.segs, f)
	}
	if err := syncDir(dir); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *recycledSink) Append(g *Group) error {
	b := g.Frames
	for len(b) > 0 {
		f := s.segs[s.cur]
		n := min(int64(len(b)), SegmentSize-s.off)
		if _, err := f.WriteAt(b[:n], s.off); err != nil {
			return err
		}
		b = b[n:]
		s.off += n
		if s.off == SegmentSize {
			if err := fdatasync(f, s.syncTime); err != nil {
				return err
			}
			s.cur = (s.cur + 1) % len(s.segs)
			s.off = 0
		}
	}
	if s.off == 0 {
		return nil // synced at the segment's end
	}
	return fdatasync(s.segs[s.cur], s.syncTime)
}

func (s *recycledSink) Close() error {
	var first error
	for _, f := range s.segs {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// evict drops the page cache of every file under dir (they are synced), so
// that a recovery reads from the disk.
func evict(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
}

// recoverRaw reads the raw engine's file: every frame, CRC checked, decoded.
func recoverRaw(dir string, a Applier) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "raw.log"))
	if err != nil {
		return 0, err
	}
	var dec Decoder
	var last uint64
	err = eachFrame(b, func(f frame) error {
		last = f.lsn
		return dec.Decode(f.body, a)
	})
	return last, err
}
