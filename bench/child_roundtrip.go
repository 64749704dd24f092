package bench

import (
	"context"
	"errors"
	"flag"
	"io"
	"time"
)

// floorQueue is the queue the roundtrip subcommand puts into: the latency
// scenario's master serves it, and no slave reads it.
const floorQueue = "floor"

// The floors' rows among the latency phases.
const (
	grpcFloorLabel = "floor: grpc-go alone, 1 round trip"
	floorLabel     = "floor: 2 put round trips via master"
)

// runRoundTrip measures the floor under the latency figures: pairs of
// back-to-back puts on a queue no one consumes, paced at -rate, each pair
// timed as one sample. A put is one gRPC round trip through the master on a
// long-lived stream, the cheapest call there is; a task's put → result path
// crosses the master twice (producer → master → slave, then slave → master
// → producer), so it cannot be faster than a pair on the same machine.
func runRoundTrip(ctx context.Context, args []string, stdout io.Writer) error {
	var cf childFlags
	fs := flag.NewFlagSet("roundtrip", flag.ContinueOnError)
	cf.register(fs)
	rate := fs.Float64("rate", 1000, "pairs per second")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if *rate <= 0 || *duration <= 0 {
		return errors.New("-rate and -duration must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	q := c.Queue(floorQueue)
	payload, _ := recipeTask()
	pair := func() error {
		for range 2 {
			if _, err := q.Put(ctx, payload); err != nil {
				return err
			}
		}
		return nil
	}
	// One pair first, unmeasured: it opens the put stream.
	if err := pair(); err != nil {
		return err
	}

	samples, elapsed, err := paced(ctx, *rate, *duration, pair)
	if err != nil {
		return err
	}
	return writeJSON(stdout, pacedResult(*rate, samples, elapsed))
}
