package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
)

// closedSlaves is the slave count of the closed-loop rows, as in the
// latency scenario's.
const closedSlaves = 2

// The keys of the closed-loop rows that the comparisons name.
const (
	keyGRPC        = "grpc-go"
	keyGRPCPaced   = "grpc-go-paced"
	keyDistq       = "distq"
	keyDistqFsync  = "distq-fsync-always"
	keyDistqIntvl  = "distq-fsync-interval"
	keyRedis       = "redis"
	keyNATS        = "nats-jetstream"
	keyNATSSyncAll = "nats-jetstream-sync-always"
)

// ClosedLoopRow is one system's closed-loop latency: one task in flight at
// a time, from the start of its put to its result in the producer's hands.
type ClosedLoopRow struct {
	Key    string `json:"key"`
	System string `json:"system"`
	Config string `json:"config"`
	// Skipped says why the row was not measured (a peer not installed).
	Skipped   string  `json:"skipped,omitempty"`
	TripsPerS float64 `json:"trips_per_s,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
	Latencies
	Notes string `json:"notes,omitempty"`
}

// closedLoop measures distq with one task in flight: the floor of one bare
// grpc-go round trip (its benchmark service) back to back, then a master
// with two slaves and the closed-loop child in memory, then the same with
// -data-dir -fsync always and -fsync interval (each on a fresh data dir
// once its first segments are prepared). The interval row is the like of
// NATS JetStream's default, which leaves a write in the page cache.
func (s *Suite) closedLoop(ctx context.Context) error {
	n := s.cfg.ClosedN
	if err := s.closedFloor(ctx, ClosedLoopRow{Key: keyGRPC, System: "grpc-go " + grpc.Version, Config: "floor: 1 round trip, no queue",
		Notes: "grpc-go's benchmark service, 16 bytes each way on a kept stream; a task crosses the network 4 times"},
		"-n", strconv.Itoa(n)); err != nil {
		return fmt.Errorf("grpc floor: %w", err)
	}
	for i, m := range durableModes {
		row := ClosedLoopRow{Key: keyDistq, System: "distq", Config: "in memory",
			Notes: "master + 2 slaves; Put, then Queue(\"results\").GetTimeout (kept streams), one connection"}
		switch i {
		case 1:
			row.Key, row.Config = keyDistqFsync, "-data-dir -fsync always"
		case 2:
			row.Key, row.Config = keyDistqIntvl, "-data-dir -fsync interval (100ms)"
		}
		if err := s.closedDistq(ctx, m, n, row); err != nil {
			return fmt.Errorf("distq %s: %w", row.Config, err)
		}
		if i == 0 {
			if err := s.closedPacedFloor(ctx, n); err != nil {
				return fmt.Errorf("grpc floor at distq's pace: %w", err)
			}
		}
	}
	return nil
}

// closedFloor runs grpc-go's bare round trips (16 bytes each way) with
// grpc-ping's pace flags against a fresh grpc-echo server, as row.
func (s *Suite) closedFloor(ctx context.Context, row ClosedLoopRow, pace ...string) error {
	echo, echoAddr, err := s.env.StartEcho(ctx)
	if err != nil {
		return err
	}
	p, err := s.env.StartPing("grpc-ping", echoAddr, append([]string{"-size", "16"}, pace...)...)
	if err == nil {
		err = s.closedChild(ctx, p, row)
	}
	if err != nil {
		echo.Kill()
		return err
	}
	return StopAll(ctx, 15*time.Second, echo)
}

// closedPacedFloor measures grpc-go's bare round trip again, one every
// trip of the in-memory distq row just measured rather than back to back,
// and lists it beside the back-to-back floor. In a closed loop each process
// sleeps between its turns, and waking a process that slept costs more than
// passing work to one that is awake (on the benchmarks' virtual machine,
// tens of microseconds more after 400 µs asleep): the back-to-back floor
// leaves that out, this one has its share of it.
func (s *Suite) closedPacedFloor(ctx context.Context, n int) error {
	trip, ok := s.rep.closedRow(keyDistq)
	if !ok || trip.TripsPerS <= 0 {
		return nil
	}
	rate := trip.TripsPerS
	every := time.Duration(float64(time.Second) / rate)
	err := s.closedFloor(ctx, ClosedLoopRow{Key: keyGRPCPaced, System: "grpc-go " + grpc.Version,
		Config: fmt.Sprintf("floor: 1 round trip every %s (distq's trip)", fmtMs(float64(every)/float64(time.Millisecond))),
		Notes:  "as the floor, one round trip every in-memory distq trip of this run instead of back to back: each side sleeps between turns, as a closed loop's processes do"},
		"-rate", strconv.FormatFloat(rate, 'f', 1, 64), "-duration", (time.Duration(n) * every).String())
	if err != nil {
		return err
	}
	s.rep.floorsFirst()
	return nil
}

// floorsFirst moves the paced floor's row, measured after distq's first
// row, up beside the back-to-back floor, so that the table reads floors
// first.
func (r *Report) floorsFirst() {
	from := slices.IndexFunc(r.ClosedLoop, func(c ClosedLoopRow) bool { return c.Key == keyGRPCPaced })
	to := slices.IndexFunc(r.ClosedLoop, func(c ClosedLoopRow) bool { return c.Key == keyGRPC }) + 1
	if from < 0 || to <= 0 || from <= to {
		return
	}
	paced := r.ClosedLoop[from]
	r.ClosedLoop = slices.Insert(slices.Delete(r.ClosedLoop, from, from+1), to, paced)
}

// closedDistq runs one distq row on a fresh master in mode m.
func (s *Suite) closedDistq(ctx context.Context, m durableMode, n int, row ClosedLoopRow) error {
	flags := []string{"-log-level", "warn"}
	dir := ""
	if m.flags != nil {
		var err error
		if dir, err = s.env.DataDir(scenarioClosedLoop); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		flags = append(append(flags, "-data-dir", dir), m.flags...)
	}
	master, addr, err := s.env.StartMaster(ctx, flags...)
	if err != nil {
		return err
	}
	if dir != "" {
		if err := waitSettled(ctx, dir, 30*time.Second); err != nil {
			master.Kill()
			return err
		}
	}
	slaves, err := s.env.StartSlaves(addr, closedSlaves)
	if err != nil {
		master.Kill()
		return err
	}
	p, err := s.env.StartChild("closed-loop", "closed-loop", addr, "-n", strconv.Itoa(n), "-slaves", strconv.Itoa(closedSlaves))
	if err == nil {
		err = s.closedChild(ctx, p, row)
	}
	if err != nil {
		s.env.Procs.KillAll()
		return err
	}
	if err := StopAll(ctx, 15*time.Second, slaves...); err != nil {
		return err
	}
	return StopAll(ctx, 30*time.Second, master)
}

// closedChild waits for a closed-loop child (distq's or a peer's) and adds
// its row.
func (s *Suite) closedChild(ctx context.Context, p *Proc, row ClosedLoopRow) error {
	if err := p.Wait(ctx, 2*time.Minute+time.Duration(s.cfg.ClosedN/100)*time.Second); err != nil {
		return err
	}
	var res LatencyResult
	if err := lastJSON(p.Stdout(), &res); err != nil {
		return p.failure(err)
	}
	row.TripsPerS, row.Seconds, row.Latencies = res.AchievedRate, res.Seconds, res.Latencies
	s.addClosed(row)
	return nil
}

func (s *Suite) addClosed(row ClosedLoopRow) {
	if row.Skipped != "" {
		s.logf("   closed loop %s (%s): skipped: %s", row.System, row.Config, row.Skipped)
	} else {
		s.logf("   closed loop %s (%s): p50 %s p90 %s p99 %s p99.9 %s over %s trips (%s/s)", row.System, row.Config,
			fmtMs(row.P50Ms), fmtMs(row.P90Ms), fmtMs(row.P99Ms), fmtMs(row.P999Ms), fmtCount(row.Count), fmtRate(row.TripsPerS))
	}
	s.rep.ClosedLoop = append(s.rep.ClosedLoop, row)
}

// closedRow returns the measured closed-loop row with key.
func (r *Report) closedRow(key string) (ClosedLoopRow, bool) {
	for _, c := range r.ClosedLoop {
		if c.Key == key && c.Skipped == "" && c.Count > 0 {
			return c, true
		}
	}
	return ClosedLoopRow{}, false
}
