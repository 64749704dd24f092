package logbench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Plan is what a run measures.
type Plan struct {
	Shapes        []Shape       `json:"shapes"`
	Reps          int           `json:"reps"`
	Warmup        time.Duration `json:"warmup_ns"`
	Duration      time.Duration `json:"duration_ns"`
	RecoveryItems []uint64      `json:"recovery_items"`
	RecoveryReps  int           `json:"recovery_reps"`
}

// DecisionShape is the cell the decision rule reads (design §2.5: P = 8,
// S = 64; 8-byte payloads and settles of 256 fixed before the run).
const DecisionShape = "p8-s64-8B-b256"

func masterShape(name string, p, s, payload, batch int) Shape {
	return Shape{Name: name, Producers: p, PutBatch: 1000, Payload: payload, Slaves: s, SettleBatch: batch, ReplySize: 5, ReaderMax: 4096}
}

func paced(s Shape, rate int) Shape { s.Rate = rate; return s }

// DefaultPlan is `make bench-log`: four master shapes at saturation and one
// paced at 1 M items/s, the issue's shape with
// a sync per batch and with group commit, 3 interleaved repetitions; then
// restarts with 1 M and 10 M queued items.
func DefaultPlan() Plan {
	return Plan{
		Shapes: []Shape{
			masterShape(DecisionShape, 8, 64, 8, 256),
			masterShape("p8-s64-3B-b64", 8, 64, 3, 64),
			masterShape("p8-s64-100B-b1024", 8, 64, 100, 1024),
			masterShape("p2-s2-8B-b256", 2, 2, 8, 256),
			paced(masterShape("p8-s64-8B-b256-at1M", 8, 64, 8, 256), 1_000_000),
			{Name: "issue-serial", Writers: 8, Batch: 1024, RecordSize: 24, Serial: true},
			{Name: "issue-group", Writers: 8, Batch: 1024, RecordSize: 24},
		},
		Reps:          3,
		Warmup:        500 * time.Millisecond,
		Duration:      3 * time.Second,
		RecoveryItems: []uint64{1_000_000, 10_000_000},
		RecoveryReps:  3,
	}
}

// QuickPlan is a smoke run of the same code (seconds, not minutes).
func QuickPlan() Plan {
	p := DefaultPlan()
	p.Shapes = []Shape{p.Shapes[0], p.Shapes[4], p.Shapes[5], p.Shapes[6]}
	p.Reps = 1
	p.Warmup = 100 * time.Millisecond
	p.Duration = 500 * time.Millisecond
	p.RecoveryItems = []uint64{200_000}
	p.RecoveryReps = 1
	return p
}

// IssueEngines are measured in the issue's shape: also raft-wal with one
// entry per record, as the issue's raft-wal figure may have been made.
var IssueEngines = []string{"raw", "recycled", "seglog", "raftwal", "raftwalcmd", "raft1", "raft1cmd"}

// EnginesFor is the engines measured in a shape.
func EnginesFor(s Shape) []string {
	if s.Issue() {
		return IssueEngines
	}
	return Engines
}

// Report is the JSON output.
type Report struct {
	Started    time.Time         `json:"started"`
	Command    string            `json:"command"`
	Machine    Machine           `json:"machine"`
	Plan       Plan              `json:"plan"`
	Engines    map[string]string `json:"engines"`
	Results    []Result          `json:"results"`
	Cells      []Cell            `json:"cells"`
	Recoveries []Recovery        `json:"recoveries"`
	Decision   Decision          `json:"decision"`
}

// Machine is what the run ran on.
type Machine struct {
	GoVersion string `json:"go"`
	CPUs      int    `json:"cpus"`
	Kernel    string `json:"kernel"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
	Dir       string `json:"-"`
	FS        string `json:"filesystem"`
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// RunPlan runs p under base (a directory the caller made), every cell in its
// own temporary directory, removed after. Engines rotate their order every
// repetition and every shape, so that no engine always runs first.
func RunPlan(p Plan, base string, progress io.Writer) (*Report, error) {
	rep := &Report{Started: time.Now(), Plan: p, Engines: EngineDoc}
	rep.Machine = Machine{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), LoadStart: loadavg(), FS: fsType(base)}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		rep.Machine.Kernel = strings.TrimSpace(string(b))
	}
	cell := func() (string, func(), error) {
		d, err := os.MkdirTemp(base, "cell-")
		return d, func() { os.RemoveAll(d) }, err
	}
	for r := 0; r < p.Reps; r++ {
		for si, sh := range p.Shapes {
			es := EnginesFor(sh)
			if len(es) == 0 {
				continue
			}
			k := (r + si) % len(es)
			order := append(slices.Clone(es[k:]), es[:k]...)
			for _, e := range order {
				d, done, err := cell()
				if err != nil {
					return rep, err
				}
				runtime.GC()
				res := Run(sh, e, d, RunOpts{Warmup: p.Warmup, Duration: p.Duration})
				done()
				res.Rep = r + 1
				rep.Results = append(rep.Results, res)
				fmt.Fprintf(progress, "rep %d %-18s %-10s %12.0f items/s  cpu %6.0f ns/item  put p99 %7.2f ms  sync p50 %6.2f ms %s\n",
					r+1, sh.Name, e, res.ItemsPerSec, res.CPUNsPerItem, max(res.PutWait.P99, res.BatchWait.P99)/1e3, res.Sync.P50/1e3, res.Error)
			}
		}
	}
	for _, n := range p.RecoveryItems {
		for _, e := range RecoveryEngines {
			d, done, err := cell()
			if err != nil {
				return rep, err
			}
			runtime.GC()
			rc := MeasureRecovery(e, d, n, p.RecoveryReps)
			done()
			rep.Recoveries = append(rep.Recoveries, rc)
			fmt.Fprintf(progress, "recovery %-8s %9d items  %6.0f MB  cold %v warm %v %s\n", e, rc.Items, float64(rc.DiskBytes)/1e6, rc.ColdSecs, rc.WarmSecs, rc.Error)
		}
	}
	rep.Machine.LoadEnd = loadavg()
	rep.Cells = Summarize(rep.Results)
	rep.Decision = Decide(rep.Cells)
	return rep, nil
}

// Cell is the median over repetitions of one shape and engine.
type Cell struct {
	Shape, Engine                    string
	Reps                             int
	ItemsPerSec                      float64
	ItemsMin                         float64
	ItemsMax                         float64
	GroupsPerSec                     float64
	MeanGroupBytes                   float64
	BytesPerItem                     float64 // log bytes (frames) per item
	CPUNsPerItem                     float64
	AllocsPerItem                    float64
	PutP50, PutP99, PutP999          float64 // µs
	SettleP50, SettleP99, SettleP999 float64
	SyncP50, SyncP99                 float64
	Errors                           int
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Summarize takes the median of every figure over the repetitions of a cell,
// in plan order.
func Summarize(rs []Result) []Cell {
	type key struct{ s, e string }
	var order []key
	by := map[key][]Result{}
	for _, r := range rs {
		k := key{r.Shape, r.Engine}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], r)
	}
	var cells []Cell
	for _, k := range order {
		g := by[k]
		f := func(get func(Result) float64) float64 {
			var v []float64
			for _, r := range g {
				if r.Error == "" {
					v = append(v, get(r))
				}
			}
			return median(v)
		}
		c := Cell{Shape: k.s, Engine: k.e, Reps: len(g)}
		for _, r := range g {
			if r.Error != "" {
				c.Errors++
				continue
			}
			if c.ItemsMin == 0 || r.ItemsPerSec < c.ItemsMin {
				c.ItemsMin = r.ItemsPerSec
			}
			c.ItemsMax = max(c.ItemsMax, r.ItemsPerSec)
		}
		c.ItemsPerSec = f(func(r Result) float64 { return r.ItemsPerSec })
		c.GroupsPerSec = f(func(r Result) float64 { return r.GroupsPerSec })
		c.MeanGroupBytes = f(func(r Result) float64 { return r.MeanGroupBytes })
		c.CPUNsPerItem = f(func(r Result) float64 { return r.CPUNsPerItem })
		c.BytesPerItem = f(func(r Result) float64 {
			if r.Items == 0 {
				return 0
			}
			return float64(r.Bytes) / float64(r.Items)
		})
		c.AllocsPerItem = f(func(r Result) float64 { return r.AllocsPerItem })
		c.PutP50 = f(func(r Result) float64 { return max(r.PutWait.P50, r.BatchWait.P50) })
		c.PutP99 = f(func(r Result) float64 { return max(r.PutWait.P99, r.BatchWait.P99) })
		c.PutP999 = f(func(r Result) float64 { return max(r.PutWait.P999, r.BatchWait.P999) })
		c.SettleP50 = f(func(r Result) float64 { return r.SettleWait.P50 })
		c.SettleP99 = f(func(r Result) float64 { return r.SettleWait.P99 })
		c.SettleP999 = f(func(r Result) float64 { return r.SettleWait.P999 })
		c.SyncP50 = f(func(r Result) float64 { return r.Sync.P50 })
		c.SyncP99 = f(func(r Result) float64 { return r.Sync.P99 })
		cells = append(cells, c)
	}
	return cells
}

// Decision is the rule of design §2.5, fixed before the run: take (a), a
// one-node raft on raft-wal, if in the decision cell raft1 (one entry per
// group) reaches at least 0.9x seglog's items/s, at most 1.15x its CPU per
// item, and at most 1.3x its p99 durable wait (both the producers' put and the
// reader's settle); otherwise (b), our segment log.
type Decision struct {
	Shape        string  `json:"shape"`
	ItemsRatio   float64 `json:"items_ratio"`      // raft1 / seglog, need >= 0.9
	CPURatio     float64 `json:"cpu_ratio"`        // need <= 1.15
	PutP99Ratio  float64 `json:"put_p99_ratio"`    // need <= 1.3
	SettleP99Rat float64 `json:"settle_p99_ratio"` // need <= 1.3
	Pass         bool    `json:"raft1_passes"`
	Choice       string  `json:"choice"`
	Why          string  `json:"why"`
}

// Decide applies the rule to the decision cell.
func Decide(cells []Cell) Decision {
	d := Decision{Shape: DecisionShape}
	var a, b *Cell
	for i := range cells {
		if cells[i].Shape == DecisionShape {
			switch cells[i].Engine {
			case "raft1":
				a = &cells[i]
			case "seglog":
				b = &cells[i]
			}
		}
	}
	if a == nil || b == nil || b.ItemsPerSec == 0 || b.CPUNsPerItem == 0 || b.PutP99 == 0 || b.SettleP99 == 0 {
		d.Why = "the decision cell was not measured"
		return d
	}
	d.ItemsRatio = a.ItemsPerSec / b.ItemsPerSec
	d.CPURatio = a.CPUNsPerItem / b.CPUNsPerItem
	d.PutP99Ratio = a.PutP99 / b.PutP99
	d.SettleP99Rat = a.SettleP99 / b.SettleP99
	var fails []string
	if d.ItemsRatio < 0.9 {
		fails = append(fails, fmt.Sprintf("items/s %.2fx < 0.9x", d.ItemsRatio))
	}
	if d.CPURatio > 1.15 {
		fails = append(fails, fmt.Sprintf("CPU per item %.2fx > 1.15x", d.CPURatio))
	}
	if d.PutP99Ratio > 1.3 {
		fails = append(fails, fmt.Sprintf("put p99 %.2fx > 1.3x", d.PutP99Ratio))
	}
	if d.SettleP99Rat > 1.3 {
		fails = append(fails, fmt.Sprintf("settle p99 %.2fx > 1.3x", d.SettleP99Rat))
	}
	d.Pass = len(fails) == 0
	if d.Pass {
		d.Choice = "a"
		d.Why = "raft1 meets every throughput and latency bound of the rule (the functional points remain to weigh)"
	} else {
		d.Choice = "b"
		d.Why = "raft1 misses: " + strings.Join(fails, "; ")
	}
	return d
}

// WriteTable prints the cells and the recoveries.
func WriteTable(w io.Writer, rep *Report) {
	ms := func(us float64) string { return fmt.Sprintf("%.2f", us/1e3) }
	fmt.Fprintf(w, "medians of %d repetitions of %s (after %s of warm-up); wait = a producer's put (master shapes) or a writer's batch (issue shapes), from append to durable; sync = each fdatasync (fsync for raft-wal) the engine made\n",
		rep.Plan.Reps, rep.Plan.Duration, rep.Plan.Warmup)
	shape := ""
	for _, c := range rep.Cells {
		if c.Shape != shape {
			shape = c.Shape
			fmt.Fprintf(w, "\n%s\n", shape)
			fmt.Fprintf(w, "%-10s %11s %21s %8s %9s %6s %8s %7s %22s %16s %12s\n", "engine", "items/s", "(min-max)", "groups/s", "KiB/group",
				"B/item", "cpu ns/i", "alloc/i", "wait p50/p99/p99.9 ms", "settle p50/p99", "sync p50/p99")
		}
		settle := "-"
		if c.SettleP50 > 0 {
			settle = ms(c.SettleP50) + "/" + ms(c.SettleP99)
		}
		errs := ""
		if c.Errors > 0 {
			errs = fmt.Sprintf("  (%d runs failed)", c.Errors)
		}
		fmt.Fprintf(w, "%-10s %11.0f %10.0f-%-10.0f %8.0f %9.1f %6.1f %8.0f %7.3f %22s %16s %12s%s\n", c.Engine, c.ItemsPerSec, c.ItemsMin, c.ItemsMax,
			c.GroupsPerSec, c.MeanGroupBytes/1024, c.BytesPerItem, c.CPUNsPerItem, c.AllocsPerItem,
			ms(c.PutP50)+"/"+ms(c.PutP99)+"/"+ms(c.PutP999), settle, ms(c.SyncP50)+"/"+ms(c.SyncP99), errs)
	}
	if len(rep.Recoveries) > 0 {
		fmt.Fprintf(w, "\nrestart with queued items (median of %d; cold = page cache of the files dropped first)\n", rep.Plan.RecoveryReps)
		fmt.Fprintf(w, "%-8s %11s %9s %7s %8s %8s %8s %s\n", "engine", "items", "disk MB", "B/item", "fill s", "cold s", "warm s", "")
		for _, r := range rep.Recoveries {
			extra := r.Error
			if len(r.ColdLeaderSecs) > 0 {
				extra = fmt.Sprintf("of which until leader: cold %.3f s, warm %.3f s %s", median(r.ColdLeaderSecs), median(r.WarmLeaderSecs), r.Error)
			}
			perItem := 0.0
			if r.Items > 0 {
				perItem = float64(r.DiskBytes) / float64(r.Items)
			}
			fmt.Fprintf(w, "%-8s %11d %9.0f %7.1f %8.1f %8.3f %8.3f %s\n", r.Engine, r.Items, float64(r.DiskBytes)/1e6, perItem, r.FillSecs,
				median(r.ColdSecs), median(r.WarmSecs), extra)
		}
	}
	d := rep.Decision
	fmt.Fprintf(w, "\ndecision (%s, raft1 against seglog): items/s %.2fx (>= 0.9), CPU/item %.2fx (<= 1.15), put p99 %.2fx (<= 1.3), settle p99 %.2fx (<= 1.3): (%s) %s\n",
		d.Shape, d.ItemsRatio, d.CPURatio, d.PutP99Ratio, d.SettleP99Rat, d.Choice, d.Why)
}
