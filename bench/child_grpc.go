package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/benchmark"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/distq/distq/internal/gcpercent"
	"github.com/distq/distq/internal/window"
	pb "github.com/distq/distq/proto/distq/v1"
)

// The transport floors: what grpc-go alone does on this machine, measured
// with grpc-go's own benchmark service (the streaming echo its benchmarks
// use) and none of distq's code, with the flow-control windows the master
// and the Go client set (internal/window: no bandwidth-delay
// probing). A task cannot cross a master and a slave faster than a round
// trip of it, nor can 1,000 consumers move more tasks than its round trips
// allow with a credit's worth of tasks per message.

// runGRPCEcho serves grpc-go's benchmark service on 127.0.0.1:0, writes the
// address to -addr-file, and serves until it is stopped.
func runGRPCEcho(ctx context.Context, args []string, _ io.Writer) error {
	fs := flag.NewFlagSet("grpc-echo", flag.ContinueOnError)
	addrFile := fs.String("addr-file", "", "write the listening address to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addrFile == "" {
		return errors.New("-addr-file is required")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	stop := benchmark.StartServer(benchmark.ServerInfo{Type: "protobuf", Listener: l}, window.ServerOptions()...)
	defer stop()
	tmp := *addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, *addrFile); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// LoadResult is what grpc-ping prints in closed loop (-rate 0).
type LoadResult struct {
	Conns      int     `json:"conns"`
	Size       int     `json:"size"`
	RoundTrips int64   `json:"round_trips"`
	Seconds    float64 `json:"seconds"`
}

// runGRPCPing opens -conns connections to a grpc-echo server, one stream
// each, and sends messages of -size bytes that come back at that size. At
// -rate > 0 (one connection) it paces round trips and prints their
// latencies as a LatencyResult; at -rate 0 every stream runs round trips
// back to back for -duration and it prints a LoadResult.
func runGRPCPing(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("grpc-ping", flag.ContinueOnError)
	server := fs.String("server", "", "the grpc-echo server's host:port")
	conns := fs.Int("conns", 1, "connections, one stream each")
	size := fs.Int("size", 16, "message size in bytes, each way")
	rate := fs.Float64("rate", 0, "round trips per second on one connection; 0: back to back on every connection")
	duration := fs.Duration("duration", 5*time.Second, "how long to measure")
	closed := fs.Int("n", 0, "closed loop: this many round trips back to back on one connection, each timed (prints latencies; instead of -rate)")
	startAt := fs.Int64("start-at", 0, "Unix time in `ms` to start measuring at, once connected (0: at once), so that processes started one after the other measure together")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" || *conns < 1 || *size < 0 || *rate < 0 || *duration <= 0 || ((*rate > 0 || *closed > 0) && *conns != 1) || *closed < 0 || (*closed > 0 && *rate > 0) {
		return errors.New("want -server, -conns ≥ 1 (1 with -rate or -n), -size ≥ 0, -rate ≥ 0 or -n ≥ 0 (not both) and a positive -duration")
	}
	ctx, cancel := context.WithTimeout(ctx, *duration+5*time.Minute)
	defer cancel()
	// Paced like the consumers it stands in for, so that the floor is the
	// most grpc-go allows them.
	gcpercent.Set(gcpercent.Slave)
	streams := make([]testpb.BenchmarkService_StreamingCallClient, *conns)
	for i := range streams {
		conn, err := grpc.NewClient(*server, append(window.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			return err
		}
		defer conn.Close()
		st, err := testpb.NewBenchmarkServiceClient(conn).StreamingCall(ctx)
		if err != nil {
			return err
		}
		// One round trip first, unmeasured: it connects.
		if err := benchmark.DoStreamingRoundTrip(st, *size, *size); err != nil {
			return err
		}
		streams[i] = st
	}
	if *startAt > 0 {
		wait := time.Until(time.UnixMilli(*startAt))
		if wait <= 0 {
			return fmt.Errorf("connected %v after -start-at: start later", -wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if *closed > 0 {
		res, err := closedLoop(ctx, *closed, 100, func() error {
			return benchmark.DoStreamingRoundTrip(streams[0], *size, *size)
		})
		if err != nil {
			return err
		}
		return writeJSON(stdout, res)
	}
	if *rate > 0 {
		samples, elapsed, err := paced(ctx, *rate, *duration, func() error {
			return benchmark.DoStreamingRoundTrip(streams[0], *size, *size)
		})
		if err != nil {
			return err
		}
		return writeJSON(stdout, pacedResult(*rate, samples, elapsed))
	}
	var count atomic.Int64
	var stop atomic.Bool
	errc := make(chan error, len(streams))
	var wg sync.WaitGroup
	start := time.Now()
	for _, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := benchmark.DoStreamingRoundTrip(st, *size, *size); err != nil {
					errc <- err
					return
				}
				count.Add(1)
				if stop.Load() {
					return
				}
			}
		}()
	}
	var err error
	select {
	case <-time.After(*duration):
	case err = <-errc:
	case <-ctx.Done():
		err = ctx.Err()
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	return writeJSON(stdout, LoadResult{Conns: *conns, Size: *size, RoundTrips: count.Load(), Seconds: elapsed.Seconds()})
}

// paced runs fn at rate per second for d, timing each call. Calls are
// sequential: a slow one delays those due after it, which then run back to
// back to keep the rate.
func paced(ctx context.Context, rate float64, d time.Duration, fn func() error) ([]time.Duration, time.Duration, error) {
	total := int(d.Seconds() * rate)
	samples := make([]time.Duration, 0, total)
	ticker := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer ticker.Stop()
	start := time.Now()
	for len(samples) < total {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		due := min(int(time.Since(start).Seconds()*rate), total)
		for len(samples) < due {
			t0 := time.Now()
			if err := fn(); err != nil {
				return nil, 0, err
			}
			samples = append(samples, time.Since(t0))
		}
	}
	return samples, time.Since(start), nil
}

// pacedResult sums up what paced measured.
func pacedResult(rate float64, samples []time.Duration, elapsed time.Duration) LatencyResult {
	return LatencyResult{
		TargetRate:   rate,
		AchievedRate: float64(len(samples)) / elapsed.Seconds(),
		Seconds:      elapsed.Seconds(),
		Sent:         len(samples),
		Latencies:    SummarizeLatencies(samples),
	}
}

// creditBytes is the size on the wire of a credit's worth of deliveries in
// one packed batch, as the master sends them to a consumer: ids and leases
// far into a run, first attempts, two-digit payloads. The acks coming back
// (ids, leases, replies of up to four digits) are about as large.
func creditBytes(credit int) int {
	b := &pb.DeliveryBatch{Payloads: &pb.Packed{}}
	for i := range credit {
		b.Ids = append(b.Ids, uint64(1_000_000+i))
		b.Leases = append(b.Leases, uint64(1_000_000+i))
		b.Attempts = append(b.Attempts, 1)
		b.Payloads.Data = append(b.Payloads.Data, "42"...)
		b.Payloads.Sizes = append(b.Payloads.Sizes, 2)
	}
	return proto.Size(&pb.ConsumeResponse{Batch: b})
}
