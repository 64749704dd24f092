package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// Report is everything one run measured: what the table shows, and what
// bench.json holds.
type Report struct {
	Started     time.Time `json:"started"`
	WallSeconds float64   `json:"wall_seconds"`
	Quick       bool      `json:"quick"`
	Machine     Machine   `json:"machine"`
	Settings    Settings  `json:"settings"`

	Throughput []ThroughputRow `json:"throughput"`
	Latency    []LatencyRow    `json:"latency"`
	Memory     []MemoryRow     `json:"memory"`
	// Restart is the restart scenario: a master on a data dir with many
	// items queued, started again after SIGTERM and after SIGKILL.
	Restart []RestartRow `json:"restart,omitempty"`
	// PutLatency is the durable-latency scenario: one 1-item Put at a time
	// through masters with and without -data-dir, and the disk's own
	// fdatasync.
	PutLatency []LatencyRow `json:"put_latency,omitempty"`
	// ClosedLoop is one task in flight at a time (put → its result), for
	// distq and its peers in the same run; Comparisons are distq's figures
	// against the peers' (issue 11).
	ClosedLoop  []ClosedLoopRow  `json:"closed_loop,omitempty"`
	Comparisons []PeerComparison `json:"peer_comparisons,omitempty"`
	// Idle is the idle scenario: many connected slaves with nothing to
	// do, and what they cost the master and themselves (issue 11).
	Idle []IdleRow `json:"idle,omitempty"`

	// Problems are things that went wrong without spoiling a figure (a
	// slave that did not exit by itself, a goal missed).
	Problems []string `json:"problems,omitempty"`
	// Failure is set when the run stopped on an error.
	Failure string `json:"failure,omitempty"`
}

// Settings are the sizes and knobs of the run.
type Settings struct {
	Prefetch          int     `json:"prefetch"`
	Runs              int     `json:"runs"`
	DemoTasks         int     `json:"demo_tasks"`
	ProducerTasks     int     `json:"producer_tasks"`
	ProducerBatch     int     `json:"producer_batch"`
	ProducerPutters   int     `json:"producer_putters"`
	PythonTasks       int     `json:"python_tasks"`
	LatencySeconds    float64 `json:"latency_seconds"`
	MemorySteps       []int   `json:"memory_steps"`
	ManyConsumers     int     `json:"many_consumers"`
	ManyProcesses     int     `json:"many_processes"`
	ManyPrefetch      []int   `json:"many_prefetch"`
	ManyTasks         int     `json:"many_tasks"`
	ManyRuns          int     `json:"many_runs"`
	FloorSeconds      float64 `json:"floor_seconds"`
	RestartSteps      []int   `json:"restart_steps"`
	PutLatencySeconds float64 `json:"put_latency_seconds"`
	ClosedLoopTrips   int     `json:"closed_loop_trips"`
	PeerTasks         int     `json:"peer_tasks"`
	IdleSlaves        int     `json:"idle_slaves"`
	IdleProcesses     int     `json:"idle_processes"`
	IdlePrefetch      int     `json:"idle_prefetch"`
	IdleSeconds       float64 `json:"idle_window_seconds"`
}

// ThroughputRow is one scenario/configuration measured over several runs.
type ThroughputRow struct {
	Scenario string    `json:"scenario"`
	Config   string    `json:"config"`
	Slaves   int       `json:"slaves"`
	Tasks    int       `json:"tasks"`
	Runs     []float64 `json:"runs_tasks_per_s"`
	Spread
	// VsPython is Median / the Python recipe's median with one slave.
	VsPython float64 `json:"vs_python_k1,omitempty"`
	Notes    string  `json:"notes,omitempty"`
	// PeakRSS is the master's peak resident memory (many-slaves only).
	PeakRSS int64 `json:"master_peak_rss_bytes,omitempty"`
	// GRPCFloor is the most tasks/s grpc-go alone allows this row's
	// connections and credit (many-slaves only; see manyFloor).
	GRPCFloor float64 `json:"grpc_floor_tasks_per_s,omitempty"`
	// Estimate combines the floor with the 2-slave demo (see manyEstimate)
	// run just before each of the row's runs, whose median is
	// DemoReference (many-slaves only).
	Estimate      float64 `json:"estimate_tasks_per_s,omitempty"`
	DemoReference float64 `json:"demo_reference_tasks_per_s,omitempty"`
	// CPUPerTask is the CPU time per task of every process of the run
	// (master and slaves or consumers; the consumers' logins and shutdown left out),
	// in µs, median of the runs (demo and many-slaves rows);
	// FloorCPUPerTask the same of the grpc-go floor (its server and
	// clients, per round trip over the credit), and CPUEstimate the
	// demo K=2's plus the floor's (many-slaves only). On a shared
	// machine these hold still when the share of the cores a run gets
	// does not.
	CPUPerTask      float64 `json:"cpu_us_per_task,omitempty"`
	FloorCPUPerTask float64 `json:"floor_cpu_us_per_task,omitempty"`
	CPUEstimate     float64 `json:"cpu_estimate_us_per_task,omitempty"`
	// VsInMemory is Median / the in-memory median measured interleaved
	// with it (durable rows only), and Goal the least it should be.
	VsInMemory float64 `json:"vs_in_memory,omitempty"`
	Goal       float64 `json:"goal_vs_in_memory,omitempty"`
	// InMemory is that in-memory median (durable rows only).
	InMemory float64 `json:"in_memory_tasks_per_s,omitempty"`
	// DiskBytes is the data dir's size after a run (durable rows only).
	DiskBytes int64 `json:"data_dir_bytes,omitempty"`
	// VsMetricsOff is Median / the median of the same workload without
	// -http-addr, measured interleaved with it (metrics rows only),
	// MetricsGoal the least it should be, MetricsOff that median, and
	// Scrapes how many scrapes of /metrics answered during its runs.
	VsMetricsOff float64 `json:"vs_metrics_off,omitempty"`
	MetricsGoal  float64 `json:"goal_vs_metrics_off,omitempty"`
	MetricsOff   float64 `json:"metrics_off_tasks_per_s,omitempty"`
	Scrapes      int     `json:"scrapes,omitempty"`
}

// LatencyRow is one open-loop latency phase.
type LatencyRow struct {
	Label        string  `json:"label"`
	TargetRate   float64 `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Seconds      float64 `json:"seconds"`
	Latencies
	Notes string `json:"notes,omitempty"`
}

// RestartRow is one restart of a master on a data dir holding Queued
// items.
type RestartRow struct {
	Queued int    `json:"queued"`
	After  string `json:"after"` // how the previous master ended: SIGTERM or SIGKILL ("- (empty dir)": the first start)
	// Seconds is from the exec of the new master to its -addr-file
	// (written once it serves).
	Seconds float64 `json:"seconds"`
	// CPUSeconds is the CPU time the new master had used by then (user
	// and system, all threads): the work, whatever else the machine runs.
	CPUSeconds float64 `json:"cpu_seconds"`
	// RunQueueSeconds is how long its threads had waited, runnable, for
	// a CPU the machine's other work held.
	RunQueueSeconds float64 `json:"run_queue_seconds"`
	// RecoverSeconds is what the master's own "data recovered" log line
	// says the data dir took to read (0: not found).
	RecoverSeconds float64 `json:"recover_seconds,omitempty"`
	// Recovered is the items that line counts (-1: not found).
	Recovered int `json:"recovered_items"`
	// DiskBytes is the data dir's allocated size before the restart.
	DiskBytes    int64   `json:"disk_bytes"`
	BytesPerItem float64 `json:"disk_bytes_per_item"`
	// StopSeconds is how long the SIGTERM took to end the previous master.
	StopSeconds float64 `json:"stop_seconds,omitempty"`
	Notes       string  `json:"notes,omitempty"`
}

// MemoryRow is the master's memory with a number of tasks queued.
type MemoryRow struct {
	Label        string  `json:"label"`
	Queued       int     `json:"queued"`
	RSS          int64   `json:"rss_bytes"`
	HWM          int64   `json:"peak_rss_bytes"`
	BytesPerTask float64 `json:"bytes_per_task,omitempty"`
	PutSeconds   float64 `json:"put_seconds,omitempty"`
	Notes        string  `json:"notes,omitempty"`
}

// row returns the throughput row for scenario and config, if measured.
func (r *Report) row(scenario, config string) (ThroughputRow, bool) {
	for _, t := range r.Throughput {
		if t.Scenario == scenario && t.Config == config {
			return t, true
		}
	}
	return ThroughputRow{}, false
}

// fillRatios sets VsPython on every row from the Python K=1 median.
func (r *Report) fillRatios() {
	py, ok := r.row(scenarioPython, "K=1")
	if !ok || py.Median <= 0 {
		return
	}
	for i := range r.Throughput {
		r.Throughput[i].VsPython = r.Throughput[i].Median / py.Median
	}
}

// WriteJSON writes the report to dir/bench.json.
func (r *Report) WriteJSON(dir string) (string, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	name := filepath.Join(dir, "bench.json")
	return name, os.WriteFile(name, append(b, '\n'), 0o644)
}
