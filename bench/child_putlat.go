package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// PutLatencyResult is what the put-latency and fdatasync subcommands
// print: operations one at a time, back to back.
type PutLatencyResult struct {
	Seconds float64 `json:"seconds"`
	PerS    float64 `json:"per_s"`
	Latencies
	// Stalled: a put got no answer within -stall, and the measuring
	// stopped there (put-latency only).
	Stalled bool `json:"stalled,omitempty"`
}

// runPutLatency puts one small task at a time into a queue, each Put
// waiting for its answer before the next starts, for a while, and times
// each call. Against a master with -data-dir -fsync always, each answer
// waits for its own fdatasync.
func runPutLatency(ctx context.Context, args []string, stdout io.Writer) error {
	var cf childFlags
	fs := flag.NewFlagSet("put-latency", flag.ContinueOnError)
	cf.register(fs)
	duration := fs.Duration("duration", 5*time.Second, "how long to put")
	size := fs.Int("size", 8, "payload bytes")
	queue := fs.String("queue", "tasks", "the queue to put into")
	warmup := fs.Int("warmup", 100, "puts before the measured ones (the connection and stream start)")
	stall := fs.Duration("stall", 10*time.Second, "a put without an answer this long stops the measuring, reported as stalled")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if *duration <= 0 || *size < 1 || *warmup < 0 || *stall <= 0 {
		return errors.New("-duration, -size and -stall must be positive, -warmup at least 0")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	q := c.Queue(*queue)
	stalled := false
	// put is one Put, given up after -stall: a master that does not answer
	// at all is a finding, not a hang of the benchmark.
	put := func(payload []byte) error {
		pctx, cancel := context.WithTimeout(ctx, *stall)
		defer cancel()
		_, err := q.Put(pctx, payload)
		if err != nil && pctx.Err() != nil && ctx.Err() == nil {
			stalled = true
			return nil
		}
		return err
	}
	for i := 0; i < *warmup && !stalled; i++ {
		if err := put(fixedPayload(i, *size)); err != nil {
			return fmt.Errorf("warm-up put: %w", err)
		}
	}
	samples := make([]time.Duration, 0, 1<<16)
	start := time.Now()
	for i := 0; time.Since(start) < *duration && !stalled; i++ {
		payload := fixedPayload(i, *size)
		t0 := time.Now()
		if err := put(payload); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		if !stalled {
			samples = append(samples, time.Since(t0))
		}
	}
	elapsed := time.Since(start)
	return writeJSON(stdout, PutLatencyResult{Seconds: elapsed.Seconds(), PerS: float64(len(samples)) / elapsed.Seconds(),
		Latencies: SummarizeLatencies(samples), Stalled: stalled})
}

// fdatasyncFile is the size of the fdatasync subcommand's file: written
// once and synced, then overwritten block by block, as the log writes into
// segments prepared ahead (so that no fdatasync also has to commit a
// growing file's size).
const fdatasyncFile = 16 << 20

// runFdatasync is the disk's own floor for a durable put: in a file in
// -dir, write one block and fdatasync it, back to back, for a while, and
// time each pair. No master is involved.
func runFdatasync(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fdatasync", flag.ContinueOnError)
	dir := fs.String("dir", "", "the directory to write the file in (removed afterwards); default the system temp dir")
	duration := fs.Duration("duration", 5*time.Second, "how long to measure")
	size := fs.Int("size", 4096, "bytes written before each fdatasync")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *duration <= 0 || *size < 1 || *size > fdatasyncFile {
		return fmt.Errorf("-duration must be positive, -size from 1 to %d", fdatasyncFile)
	}
	f, err := os.CreateTemp(*dir, "fdatasync-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, fdatasyncFile)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	block := make([]byte, *size)
	for i := range block {
		block[i] = byte(i)
	}
	fd := int(f.Fd())
	samples := make([]time.Duration, 0, 1<<16)
	var off int64
	start := time.Now()
	for time.Since(start) < *duration {
		if off+int64(*size) > fdatasyncFile {
			off = 0
		}
		t0 := time.Now()
		if _, err := f.WriteAt(block, off); err != nil {
			return err
		}
		if err := syscall.Fdatasync(fd); err != nil {
			return fmt.Errorf("fdatasync: %w", err)
		}
		samples = append(samples, time.Since(t0))
		off += int64(*size)
	}
	elapsed := time.Since(start)
	return writeJSON(stdout, PutLatencyResult{Seconds: elapsed.Seconds(), PerS: float64(len(samples)) / elapsed.Seconds(),
		Latencies: SummarizeLatencies(samples)})
}
