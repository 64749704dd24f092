package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Scenario names, as -only takes them and the report shows them.
const (
	scenarioDemo   = "demo"
	scenarioPython = "python"
	// The Python package's worker (clients/python) squaring the demo.
	scenarioPyWorker = "python-worker"
	scenarioProducer = "producer"
	scenarioLatency  = "latency"
	scenarioMemory   = "memory"
	scenarioMany     = "many-slaves"
	// The durable queues of issue 9 (master -data-dir).
	scenarioDurable        = "durable"
	scenarioDurableLatency = "durable-latency"
	scenarioRestart        = "restart"
	// Metrics on against off (issue 10 §7).
	scenarioMetrics = "metrics"
	// One task in flight, and the peers in the same run (issue 11 §1).
	scenarioClosedLoop = "closed-loop"
	scenarioPeers      = "peers"
	// Many connected slaves with nothing to do (issue 11 §2).
	scenarioIdle = "idle"
)

var allScenarios = []string{scenarioDemo, scenarioPython, scenarioPyWorker, scenarioProducer, scenarioDurable, scenarioLatency,
	scenarioClosedLoop, scenarioPeers, scenarioDurableLatency, scenarioMetrics, scenarioMemory, scenarioRestart, scenarioIdle, scenarioMany}

// Config is the suite's command line. Zero sizes take the defaults of the
// full or the -quick run.
type Config struct {
	Bin    string
	Out    string
	Recipe string
	Python string
	// PythonClient runs the Python package's slave (PySlave); empty: the
	// first python3 on PATH that imports grpc and protobuf.
	PythonClient string
	PySlave      string
	PyWorkerN    int
	Quick        bool

	Prefetch        int
	Runs            int
	DemoN           int
	ProducerN       int
	ProducerBatch   int
	ProducerPutters int
	PythonN         int
	LatencyDuration time.Duration
	LowRate         float64
	MemSteps        []int
	MemBudget       time.Duration
	ManyConsumers   int
	ManyProcs       int
	ManyPrefetch    []int
	ManyN           int
	ManyRuns        int
	FloorDuration   time.Duration
	RestartSteps    []int
	PutLatencyDur   time.Duration
	ClosedN         int    // closed-loop trips per row
	PeerN           int    // tasks per peer throughput run
	RedisServer     string // the redis-server binary
	IdleSlaves      int
	IdleProcs       int
	IdlePrefetch    int
	IdleWindow      time.Duration

	Only map[string]bool // nil: every scenario
}

// ParseConfig reads the suite's flags.
func ParseConfig(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("distq-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: distq-bench [flags]   (run the benchmarks)\n"+
			"       distq-bench producer|latency|roundtrip|fill|consumers|put-latency -master ADDR -authkey-file K ...   (a child role)\n"+
			"       distq-bench fdatasync -dir DIR ...   (the disk's floor for a durable put)\n"+
			"       distq-bench grpc-echo -addr-file F | grpc-ping -server ADDR ...   (grpc-go's benchmark service, for the floors)\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Bin, "bin", "bin", "`dir` holding the master and slave binaries")
	fs.StringVar(&c.Out, "out", "bench/results", "`dir` for bench.json and bench.png")
	fs.StringVar(&c.Recipe, "recipe", "bench/python/recipe.py", "the Python recipe")
	fs.StringVar(&c.Python, "python", "python3", "the Python interpreter")
	fs.StringVar(&c.PythonClient, "python-client", "", "the Python interpreter of the python-worker rows (default: the first python3 on PATH that imports grpc and google.protobuf)")
	fs.StringVar(&c.PySlave, "python-slave", "examples/python/slave.py", "the Python package's slave")
	fs.IntVar(&c.PyWorkerN, "python-worker-n", 0, "tasks per python-worker run (default 200000, quick 20000)")
	fs.BoolVar(&c.Quick, "quick", false, "small sizes: the whole run in under a minute")
	fs.IntVar(&c.Prefetch, "prefetch", 0, "-prefetch of every slave process (0: the slave's adaptive default)")
	fs.IntVar(&c.Runs, "runs", 3, "runs of each throughput configuration")
	fs.IntVar(&c.DemoN, "demo-n", 0, "tasks per demo run (default 2000000, quick 100000)")
	fs.IntVar(&c.ProducerN, "producer-n", 0, "tasks per separate-producer run (default 1000000, quick 100000)")
	fs.IntVar(&c.ProducerBatch, "producer-batch", 1000, "tasks per PutBatch of the separate producer")
	fs.IntVar(&c.ProducerPutters, "producer-putters", 2, "concurrent putters of the separate producer")
	fs.IntVar(&c.PythonN, "python-n", 0, "tasks per Python recipe run (default 20000, quick 5000)")
	fs.DurationVar(&c.LatencyDuration, "latency-duration", 0, "length of each latency phase (default 10s, quick 3s)")
	fs.Float64Var(&c.LowRate, "latency-rate", 1000, "rate of the first latency phase, tasks/s")
	memSteps := fs.String("memory-steps", "", "comma-separated queued-task counts to measure (default 1000000,10000000, quick 1000000)")
	fs.DurationVar(&c.MemBudget, "memory-budget", 0, "longest time to spend putting for one memory or restart step (default 4m, quick 40s)")
	fs.IntVar(&c.ManyConsumers, "many", 0, "consumers of the many-slaves scenario (default 1000, quick 200)")
	fs.IntVar(&c.ManyProcs, "many-procs", 4, "processes the many-slaves consumers are spread over")
	manyPrefetch := fs.String("many-prefetch", "", "comma-separated prefetch (credit) of each many-slaves consumer, one row each (default 2,16,256, quick 2,256)")
	fs.IntVar(&c.ManyN, "many-n", 0, "demo tasks of the many-slaves scenario (default: -demo-n)")
	fs.IntVar(&c.ManyRuns, "many-runs", 0, "runs of the many-slaves scenario (default -runs, quick 1)")
	fs.DurationVar(&c.FloorDuration, "floor-duration", 0, "length of each many-slaves grpc-go floor measurement (default 5s, quick 2s)")
	restartSteps := fs.String("restart-steps", "", "comma-separated queued-item counts at which the restart scenario restarts its durable master (default 1000000,10000000, quick 1000000)")
	fs.DurationVar(&c.PutLatencyDur, "put-latency-duration", 0, "length of each phase of the durable-latency scenario (default 5s, quick 2s)")
	fs.IntVar(&c.ClosedN, "closed-n", 0, "trips of each closed-loop latency row, distq's and the peers' (default 20000, quick 2000)")
	fs.IntVar(&c.PeerN, "peer-n", 0, "tasks per peer throughput run (default 30000, quick 5000)")
	fs.StringVar(&c.RedisServer, "redis-server", "redis-server", "the redis-server binary of the Redis peer (its rows are skipped when it is not found)")
	fs.IntVar(&c.IdleSlaves, "idle-slaves", 0, "connected slaves of the idle scenario (default 10000, quick 2000)")
	fs.IntVar(&c.IdleProcs, "idle-procs", 4, "processes the idle scenario's slaves are spread over")
	fs.IntVar(&c.IdlePrefetch, "idle-prefetch", 16, "prefetch (credit) of each idle slave")
	fs.DurationVar(&c.IdleWindow, "idle-window", 0, "how long the idle scenario measures CPU (default 65s: every connection's 60 s keepalive ping falls in it; quick 5s)")
	only := fs.String("only", "", "comma-separated scenarios to run: "+strings.Join(allScenarios, ","))
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.MemSteps, err = parseIncreasing("-memory-steps", *memSteps); err != nil {
		return c, err
	}
	if c.ManyPrefetch, err = parseIncreasing("-many-prefetch", *manyPrefetch); err != nil {
		return c, err
	}
	if c.RestartSteps, err = parseIncreasing("-restart-steps", *restartSteps); err != nil {
		return c, err
	}
	if *only != "" {
		c.Only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			s = strings.TrimSpace(s)
			known := false
			for _, a := range allScenarios {
				known = known || a == s
			}
			if !known {
				return c, fmt.Errorf("-only: unknown scenario %q (want %s)", s, strings.Join(allScenarios, ","))
			}
			c.Only[s] = true
		}
	}
	if c.IdleSlaves < 0 || c.IdleProcs < 1 || c.IdlePrefetch < 1 || c.IdleWindow < 0 {
		return c, errors.New("-idle-procs and -idle-prefetch must be positive, -idle-slaves and -idle-window at least 0 (0: the default)")
	}
	if c.ClosedN < 0 || c.PeerN < 0 {
		return c, errors.New("-closed-n and -peer-n must be at least 0 (0: the default)")
	}
	if c.Prefetch < 0 || c.Runs < 1 || c.ManyProcs < 1 || c.LowRate <= 0 || c.FloorDuration < 0 || c.PutLatencyDur < 0 {
		return c, errors.New("-runs, -many-procs and -latency-rate must be positive, -prefetch, -floor-duration and -put-latency-duration at least 0")
	}
	c.defaults()
	return c, nil
}

// defaults fills the sizes left at zero.
func (c *Config) defaults() {
	pick := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if c.Quick {
				*v = quick
			}
		}
	}
	pick(&c.DemoN, 2000000, 100000)
	pick(&c.ProducerN, 1000000, 100000)
	pick(&c.PythonN, 20000, 5000)
	pick(&c.PyWorkerN, 200000, 20000)
	pick(&c.ClosedN, 20000, 2000)
	pick(&c.PeerN, 30000, 5000)
	pick(&c.ManyConsumers, 1000, 200)
	pick(&c.IdleSlaves, 10000, 2000)
	pick(&c.ManyN, c.DemoN, c.DemoN)
	pick(&c.ManyRuns, c.Runs, 1)
	if c.LatencyDuration == 0 {
		c.LatencyDuration = 10 * time.Second
		if c.Quick {
			c.LatencyDuration = 3 * time.Second
		}
	}
	if c.MemSteps == nil {
		c.MemSteps = []int{1000000, 10000000}
		if c.Quick {
			c.MemSteps = []int{1000000}
		}
	}
	if c.ManyPrefetch == nil {
		c.ManyPrefetch = []int{2, 16, 256}
		if c.Quick {
			c.ManyPrefetch = []int{2, 256}
		}
	}
	if c.IdleWindow == 0 {
		// Longer than the Go client's keepalive (a ping per silent
		// connection every 60 s), so that every connection pings once.
		c.IdleWindow = 65 * time.Second
		if c.Quick {
			c.IdleWindow = 5 * time.Second
		}
	}
	if c.FloorDuration == 0 {
		c.FloorDuration = 5 * time.Second
		if c.Quick {
			c.FloorDuration = 2 * time.Second
		}
	}
	if c.RestartSteps == nil {
		c.RestartSteps = []int{1000000, 10000000}
		if c.Quick {
			c.RestartSteps = []int{1000000}
		}
	}
	if c.PutLatencyDur == 0 {
		c.PutLatencyDur = 5 * time.Second
		if c.Quick {
			c.PutLatencyDur = 2 * time.Second
		}
	}
	if c.MemBudget == 0 {
		c.MemBudget = 4 * time.Minute
		if c.Quick {
			c.MemBudget = 40 * time.Second
		}
	}
	if c.ManyProcs > c.ManyConsumers {
		c.ManyProcs = c.ManyConsumers
	}
}

// parseIncreasing parses a comma-separated list of increasing positive
// numbers; "" gives nil (the default).
func parseIncreasing(flagName, list string) ([]int, error) {
	if list == "" {
		return nil, nil
	}
	var ns []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive number", flagName, s)
		}
		if len(ns) > 0 && n <= ns[len(ns)-1] {
			return nil, fmt.Errorf("%s must increase", flagName)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// runs reports whether scenario s is selected.
func (c *Config) runs(s string) bool { return c.Only == nil || c.Only[s] }

// settings is the part of the config the report records.
func (c *Config) settings() Settings {
	return Settings{
		Prefetch:          c.Prefetch,
		Runs:              c.Runs,
		DemoTasks:         c.DemoN,
		ProducerTasks:     c.ProducerN,
		ProducerBatch:     c.ProducerBatch,
		ProducerPutters:   c.ProducerPutters,
		PythonTasks:       c.PythonN,
		LatencySeconds:    c.LatencyDuration.Seconds(),
		MemorySteps:       c.MemSteps,
		ManyConsumers:     c.ManyConsumers,
		ManyProcesses:     c.ManyProcs,
		ManyPrefetch:      c.ManyPrefetch,
		ManyTasks:         c.ManyN,
		ManyRuns:          c.ManyRuns,
		FloorSeconds:      c.FloorDuration.Seconds(),
		RestartSteps:      c.RestartSteps,
		PutLatencySeconds: c.PutLatencyDur.Seconds(),
		ClosedLoopTrips:   c.ClosedN,
		PeerTasks:         c.PeerN,
		IdleSlaves:        c.IdleSlaves,
		IdleProcesses:     c.IdleProcs,
		IdlePrefetch:      c.IdlePrefetch,
		IdleSeconds:       c.IdleWindow.Seconds(),
	}
}
