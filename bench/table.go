package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Table is a plain-text table with a header; columns listed in Right are
// right-aligned (numbers).
type Table struct {
	Header []string
	Rows   [][]string
	Right  map[int]bool
}

// Render writes the table with columns padded to their widest cell.
func (t *Table) Render(w io.Writer) {
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], utf8.RuneCountInString(c))
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString(" | ")
			}
			if t.Right[i] {
				b.WriteString(pad + c)
			} else if i < len(width)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c) // no trailing blanks
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.Header)
	sep := make([]string, len(width))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	fmt.Fprintln(w, strings.Join(sep, "-|-"))
	for _, r := range t.Rows {
		line(r)
	}
}

// WriteTables prints the report for a person: the machine, the throughput
// table, then latency, memory and anything that went wrong.
func WriteTables(w io.Writer, r *Report) {
	m := r.Machine
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "distq benchmark (%s run, %s UTC)\n", mode, r.Started.Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "machine: %s, %d cores, kernel %s, system temp dir (the durable scenarios' data dirs) on %s\n", m.CPU, m.Cores, m.Kernel, orDash(m.TempFS))
	fmt.Fprintf(w, "go: %s   python: %s   commit: %s   slave -prefetch %d, %d runs each\n",
		m.Go, m.Python, orDash(m.Commit), r.Settings.Prefetch, r.Settings.Runs)
	fmt.Fprintf(w, "load average (1 min, %d cores): %.1f at the start, %.1f at the end; above the cores, other work shared the machine\n",
		m.Cores, m.LoadStart, m.LoadEnd)
	if env := m.goEnvString(); env != "" {
		fmt.Fprintf(w, "Go runtime settings from the environment, in every process of the run (distq's and the peers' clients): %s\n", env)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "THROUGHPUT (tasks/s)")
	if len(r.Throughput) == 0 {
		fmt.Fprintln(w, "(none measured)")
	}
	t := &Table{
		Header: []string{"scenario", "config", "tasks", "median", "min", "max", "×Python(K=1)", "notes"},
		Right:  map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true},
	}
	for _, row := range r.Throughput {
		t.Rows = append(t.Rows, []string{row.Scenario, row.Config, fmtCount(row.Tasks),
			fmtRate(row.Median), fmtRate(row.Min), fmtRate(row.Max), fmtRatio(row.VsPython), row.Notes})
	}
	if len(t.Rows) > 0 {
		t.Render(w)
	}

	writeDurable(w, r)
	writeMetrics(w, r)

	if len(r.Latency) > 0 {
		fmt.Fprintln(w, "\nLATENCY (put → result, master + 2 slaves, open loop)")
		t := &Table{
			Header: []string{"phase", "target/s", "achieved/s", "tasks", "p50", "p99", "p99.9", "max"},
			Right:  map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true},
		}
		for _, l := range r.Latency {
			t.Rows = append(t.Rows, []string{l.Label, fmtRate(l.TargetRate), fmtRate(l.AchievedRate), fmtCount(l.Count),
				fmtMs(l.P50Ms), fmtMs(l.P99Ms), fmtMs(l.P999Ms), fmtMs(l.MaxMs)})
		}
		t.Render(w)
	}

	writeClosedLoop(w, r)

	if len(r.Memory) > 0 {
		fmt.Fprintf(w, "\nMEMORY (master RSS, %d-byte payloads in tasks, no slaves)\n", memoryPayload)
		t := &Table{
			Header: []string{"state", "RSS", "peak RSS", "bytes/task", "notes"},
			Right:  map[int]bool{1: true, 2: true, 3: true},
		}
		for _, m := range r.Memory {
			per := "-"
			if m.Queued > 0 {
				per = strconv.FormatFloat(m.BytesPerTask, 'f', 0, 64)
			}
			t.Rows = append(t.Rows, []string{m.Label, fmtBytes(m.RSS), fmtBytes(m.HWM), per, m.Notes})
		}
		t.Render(w)
	}

	writeRestart(w, r)
	writePutLatency(w, r)
	writeIdle(w, r)

	if len(r.Problems) > 0 {
		fmt.Fprintln(w, "\nPROBLEMS")
		for _, p := range r.Problems {
			fmt.Fprintln(w, "- "+p)
		}
	}
	if r.Failure != "" {
		fmt.Fprintln(w, "\nFAILED: "+firstLine(r.Failure))
	}
	fmt.Fprintln(w)
}

// writeDurable prints the durable rows against the in-memory figure
// measured interleaved with them.
func writeDurable(w io.Writer, r *Report) {
	t := &Table{
		Header: []string{"durable", "in-memory/s", "durable/s", "ratio", "goal", "verdict", "data dir after a run"},
		Right:  map[int]bool{1: true, 2: true, 3: true, 4: true, 6: true},
	}
	for _, row := range r.Throughput {
		if row.Goal == 0 {
			continue
		}
		verdict := "met"
		if row.VsInMemory < row.Goal {
			verdict = "NOT MET"
		}
		t.Rows = append(t.Rows, []string{row.Config, fmtRate(row.InMemory), fmtRate(row.Median),
			fmtRatio(row.VsInMemory), "≥ " + fmtRatio(row.Goal), verdict, fmtBytes(row.DiskBytes)})
	}
	if len(t.Rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nDURABLE vs IN-MEMORY (master -data-dir; medians of interleaved runs in this run)")
	t.Render(w)
}

// writeMetrics prints the metrics rows against the figure without
// metrics measured interleaved with them.
func writeMetrics(w io.Writer, r *Report) {
	t := &Table{
		Header: []string{"metrics", "off/s", "on/s", "ratio", "goal", "verdict", "scrapes answered"},
		Right:  map[int]bool{1: true, 2: true, 3: true, 4: true, 6: true},
	}
	for _, row := range r.Throughput {
		if row.MetricsGoal == 0 {
			continue
		}
		verdict := "met"
		if row.VsMetricsOff < row.MetricsGoal {
			verdict = "NOT MET"
		}
		t.Rows = append(t.Rows, []string{row.Config, fmtRate(row.MetricsOff), fmtRate(row.Median),
			fmtRatio(row.VsMetricsOff), "≥ " + fmtRatio(row.MetricsGoal), verdict, strconv.Itoa(row.Scrapes)})
	}
	if len(t.Rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nMETRICS ON vs OFF (-http-addr on the master and the slaves, scraped about once a second; medians of interleaved runs in this run)")
	t.Render(w)
}

// writeRestart prints the restart scenario.
func writeRestart(w io.Writer, r *Report) {
	if len(r.Restart) == 0 {
		return
	}
	fmt.Fprintf(w, "\nRESTART (master -data-dir -fsync always, %d-byte payloads queued; exec of the new master → its -addr-file)\n", memoryPayload)
	t := &Table{
		Header: []string{"queued", "after", "restart", "recovery (master's log)", "master CPU", "run-queue wait (all threads)", "disk", "disk bytes/item", "notes"},
		Right:  map[int]bool{0: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true},
	}
	for _, x := range r.Restart {
		rec := "-"
		if x.RecoverSeconds > 0 {
			rec = fmtMs(x.RecoverSeconds * 1000)
		}
		t.Rows = append(t.Rows, []string{fmtCount(x.Queued), x.After, fmtMs(x.Seconds * 1000), rec, fmtMs(x.CPUSeconds * 1000), fmtMs(x.RunQueueSeconds * 1000),
			fmtBytes(x.DiskBytes), strconv.FormatFloat(x.BytesPerItem, 'f', 1, 64), x.Notes})
	}
	t.Render(w)
}

// writeIdle prints the idle scenario.
func writeIdle(w io.Writer, r *Report) {
	if len(r.Idle) == 0 {
		return
	}
	fmt.Fprintln(w, "\nIDLE SLAVES (each its own connection and Consume stream with credit, the task queue empty; CPU as % of one core over the window)")
	t := &Table{
		Header: []string{"slaves", "window", "master CPU", "master RSS before", "with slaves", "bytes/slave", "consumers CPU", "consumers RSS", "bytes/slave", "notes"},
		Right:  map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true},
	}
	for _, x := range r.Idle {
		t.Rows = append(t.Rows, []string{fmtCount(x.Slaves), fmtMs(x.Window * 1000), fmtPercent(x.MasterCPU), fmtBytes(x.RSSBefore), fmtBytes(x.RSS),
			strconv.FormatFloat(x.PerSlave, 'f', 0, 64), fmtPercent(x.ConsumersCPU), fmtBytes(x.ConsumersRSS),
			strconv.FormatFloat(float64(x.ConsumersRSS)/float64(max(x.Slaves, 1)), 'f', 0, 64),
			fmt.Sprintf("%d processes, prefetch %d, connect %.1fs; %s", x.Processes, x.Prefetch, x.ConnectSeconds, x.Notes)})
	}
	t.Render(w)
}

// fmtPercent formats a share (0.0123) as a percentage ("1.23 %").
func fmtPercent(v float64) string { return strconv.FormatFloat(v*100, 'f', 2, 64) + " %" }

// writePutLatency prints the durable-latency scenario.
func writePutLatency(w io.Writer, r *Report) {
	if len(r.PutLatency) == 0 {
		return
	}
	fmt.Fprintln(w, "\nPUT LATENCY (one 1-item Put at a time, closed loop, no consumers) and the disk's fdatasync")
	t := &Table{
		Header: []string{"what", "ops/s", "count", "p50", "p99", "p99.9", "max", "notes"},
		Right:  map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true},
	}
	for _, l := range r.PutLatency {
		t.Rows = append(t.Rows, []string{l.Label, fmtRate(l.AchievedRate), fmtCount(l.Count),
			fmtMs(l.P50Ms), fmtMs(l.P99Ms), fmtMs(l.P999Ms), fmtMs(l.MaxMs), l.Notes})
	}
	t.Render(w)
}

// fmtRate formats a rate with thousands separators ("123,456").
func fmtRate(v float64) string {
	if v <= 0 {
		return "-"
	}
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return fmtCount(int(v + 0.5))
}

// fmtCount formats an integer with thousands separators.
func fmtCount(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtRatio formats a speed-up ("×31.4", "×312").
func fmtRatio(v float64) string {
	switch {
	case v <= 0:
		return "-"
	case v < 10:
		return "×" + strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return "×" + strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return "×" + strconv.FormatFloat(v, 'f', 0, 64)
	}
}

// fmtMs formats milliseconds with sensible precision.
func fmtMs(ms float64) string {
	switch {
	case ms <= 0:
		return "-"
	case ms < 1:
		return strconv.FormatFloat(ms*1000, 'f', 0, 64) + " µs"
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	}
}

// fmtBytes formats a byte count in MiB (or KiB when small).
func fmtBytes(b int64) string {
	switch {
	case b <= 0:
		return "-"
	case b < 1<<20:
		return strconv.FormatFloat(float64(b)/(1<<10), 'f', 0, 64) + " KiB"
	case b < 10<<30:
		return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB"
	default:
		return strconv.FormatFloat(float64(b)/(1<<30), 'f', 2, 64) + " GiB"
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// writeClosedLoop prints the closed-loop rows, distq's and the peers', and
// distq's figures against the peers'.
func writeClosedLoop(w io.Writer, r *Report) {
	if len(r.ClosedLoop) > 0 {
		fmt.Fprintln(w, "\nLATENCY (closed loop: one task in flight, put → its result; 2 slaves or 2 workers)")
		t := &Table{
			Header: []string{"system", "config", "trips", "trips/s", "p50", "p90", "p99", "p99.9", "max", "notes"},
			Right:  map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true},
		}
		for _, c := range r.ClosedLoop {
			if c.Skipped != "" {
				t.Rows = append(t.Rows, []string{c.System, c.Config, "-", "-", "-", "-", "-", "-", "-", "skipped: " + c.Skipped})
				continue
			}
			t.Rows = append(t.Rows, []string{c.System, c.Config, fmtCount(c.Count), fmtRate(c.TripsPerS),
				fmtMs(c.P50Ms), fmtMs(c.P90Ms), fmtMs(c.P99Ms), fmtMs(c.P999Ms), fmtMs(c.MaxMs), c.Notes})
		}
		t.Render(w)
	}
	if len(r.Comparisons) == 0 {
		return
	}
	fmt.Fprintln(w, "\nDISTQ vs PEERS (same run; latency ratio: distq ÷ peer, lower is better; throughput ratio: distq ÷ peer, higher is better)")
	t := &Table{
		Header: []string{"figure", "distq", "peer", "distq's", "peer's", "ratio", "goal", "verdict"},
		Right:  map[int]bool{3: true, 4: true, 5: true},
	}
	for _, c := range r.Comparisons {
		dv, pv := fmtMs(c.DistqV), fmtMs(c.PeerV)
		if c.Figure == "throughput" {
			dv, pv = fmtRate(c.DistqV)+"/s", fmtRate(c.PeerV)+"/s"
		}
		goal, verdict := "-", "-"
		if c.Goal > 0 {
			goal = "≤ " + fmtRatio(c.Goal)
		}
		if c.Met != nil {
			verdict = "met"
			if !*c.Met {
				verdict = "NOT MET"
			}
		}
		t.Rows = append(t.Rows, []string{c.Figure, c.Distq, c.Peer, dv, pv, fmtRatio(c.Ratio), goal, verdict})
	}
	t.Render(w)
}
