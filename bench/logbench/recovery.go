package logbench

import (
	"fmt"

	dqwal "github.com/distq/distq/internal/wal"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// RecoveryEngines are the engines whose restart is measured: the floor
// (raw: one file of our frames), our segment log, raft-wal read entry by
// entry, and a one-node raft restarted on raft-wal.
var RecoveryEngines = []string{"raw", "seglog", "raftwal", "raft1"}

// RecoveryShape fills a log with queued items: 8 producers put batches of
// 1,000 items of 8 bytes (the memory scenario's payload), nothing settles.
var RecoveryShape = Shape{Name: "fill", Producers: 8, PutBatch: 1000, Payload: 8, Slaves: 0, SettleBatch: 1, ReplySize: 5, ReaderMax: 4096}

// Recovery is one restart measurement.
type Recovery struct {
	Engine    string  `json:"engine"`
	Items     uint64  `json:"items"` // queued items in the log
	Records   uint64  `json:"records"`
	DiskBytes int64   `json:"disk_bytes"`
	FillSecs  float64 `json:"fill_s"`
	// Cold: the files' pages dropped from the page cache first
	// (posix_fadvise DONTNEED); warm: read again right after.
	ColdSecs []float64 `json:"cold_s"`
	WarmSecs []float64 `json:"warm_s"`
	// raft1: until the node led, within each restart.
	ColdLeaderSecs []float64 `json:"cold_leader_s,omitempty"`
	WarmLeaderSecs []float64 `json:"warm_leader_s,omitempty"`
	Error          string    `json:"error,omitempty"`
}

// fillEngine is the engine that writes the log a recovery reads.
func fillEngine(engine string) string {
	if engine == "seglog" {
		return "seglogkeep"
	}
	return engine
}

// MeasureRecovery fills dir through engine with at least items queued items,
// then restarts it reps times cold and warm (alternating).
func MeasureRecovery(engine, dir string, items uint64, reps int) Recovery {
	r := Recovery{Engine: engine}
	t0 := time.Now()
	res := Run(RecoveryShape, fillEngine(engine), dir, RunOpts{Duration: 30 * time.Minute, MaxItems: items})
	r.FillSecs = time.Since(t0).Seconds()
	if res.Error != "" {
		r.Error = "fill: " + res.Error
		return r
	}
	r.Items, r.Records = res.TotalItems, res.TotalCommands
	r.DiskBytes = diskUsage(dir)
	for i := 0; i < reps; i++ {
		for _, cold := range []bool{true, false} {
			if cold {
				if err := evict(dir); err != nil {
					r.Error = err.Error()
					return r
				}
			}
			secs, leader, err := recoverOnce(engine, dir, r.Items, r.Records)
			if err != nil {
				r.Error = err.Error()
				return r
			}
			if cold {
				r.ColdSecs = append(r.ColdSecs, secs)
			} else {
				r.WarmSecs = append(r.WarmSecs, secs)
			}
			if engine == "raft1" {
				if cold {
					r.ColdLeaderSecs = append(r.ColdLeaderSecs, leader)
				} else {
					r.WarmLeaderSecs = append(r.WarmLeaderSecs, leader)
				}
			}
		}
	}
	return r
}

// recoverOnce opens the log, reads every record, checks its CRC and decodes
// it into a discarding sink; the items found must be the items put.
func recoverOnce(engine, dir string, items, records uint64) (secs, leader float64, err error) {
	var d Discard
	t0 := time.Now()
	switch engine {
	case "raw":
		_, err = recoverRaw(dir, &d)
	case "seglog":
		var dec Decoder
		var l *dqwal.Log
		var rec *dqwal.Recovery
		l, rec, err = dqwal.Open(dir, dqwal.Options{}, nil, func(_ uint64, b []byte) error { return dec.Decode(b, &d) })
		if err == nil {
			err = l.Close()
			if rec.Torn != nil {
				err = fmt.Errorf("unexpected torn tail: %v", rec.Torn)
			}
		}
	case "raftwal":
		_, err = recoverRaftWAL(dir, &d)
	case "raft1":
		var rr RaftRecovery
		rr, err = recoverRaft(dir, records, &d)
		leader = rr.Leader.Seconds()
		secs = rr.Total.Seconds()
	default:
		err = fmt.Errorf("no recovery for %q", engine)
	}
	if engine != "raft1" {
		secs = time.Since(t0).Seconds()
	}
	if err == nil && d.Puts != items {
		err = fmt.Errorf("%s recovered %d items, %d were put", engine, d.Puts, items)
	}
	return secs, leader, err
}

// diskUsage is the bytes allocated to the files under dir.
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}
