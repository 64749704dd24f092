package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/progress"
)

// sample is one Stats of the queues and when it came.
type sample struct {
	at    time.Time
	stats []distq.Stats
}

// rateRow is one queue in a refresh of watch: its depths now, and its rates
// since the sample before (per second; -1 when unknown: the first sample,
// a queue new since, or a counter that went down because the master
// restarted).
type rateRow struct {
	distq.Stats
	Put, Delivered, Acked, Nacked float64
	// ETA is the time to drain what is queued (ready, delayed and leased)
	// at the rate items leave (acked or dead-lettered) less the rate they
	// come; -1 when it does not drain.
	ETA time.Duration
}

// rates computes the rows of cur against prev (nil: no rates yet).
func rates(prev *sample, cur sample) []rateRow {
	rows := make([]rateRow, len(cur.stats))
	for i, s := range cur.stats {
		r := rateRow{Stats: s, Put: -1, Delivered: -1, Acked: -1, Nacked: -1, ETA: -1}
		backlog := s.Ready + s.Delayed + s.Leased
		if backlog == 0 {
			r.ETA = 0
		}
		if p, ok := find(prev, s.Name); ok && !restarted(p, s) {
			dt := cur.at.Sub(prev.at).Seconds()
			if dt > 0 {
				r.Put = rate(p.PutTotal, s.PutTotal, dt)
				r.Delivered = rate(p.DeliveredTotal, s.DeliveredTotal, dt)
				r.Acked = rate(p.AckedTotal, s.AckedTotal, dt)
				r.Nacked = rate(p.NackedTotal, s.NackedTotal, dt)
				gone := rate(p.AckedTotal+p.DeadTotal, s.AckedTotal+s.DeadTotal, dt)
				if backlog > 0 && r.Put >= 0 && gone > r.Put {
					r.ETA = time.Duration(float64(backlog) / (gone - r.Put) * float64(time.Second))
				}
			}
		}
		rows[i] = r
	}
	return rows
}

func find(prev *sample, name string) (distq.Stats, bool) {
	if prev == nil {
		return distq.Stats{}, false
	}
	for _, s := range prev.stats {
		if s.Name == name {
			return s, true
		}
	}
	return distq.Stats{}, false
}

// restarted reports whether a counter went down: the master restarted
// between the two samples, and their difference means nothing.
func restarted(before, now distq.Stats) bool {
	return now.PutTotal < before.PutTotal || now.DeliveredTotal < before.DeliveredTotal ||
		now.AckedTotal < before.AckedTotal || now.NackedTotal < before.NackedTotal || now.DeadTotal < before.DeadTotal
}

func rate(before, now uint64, dt float64) float64 {
	return float64(now-before) / dt
}

func showRate(r float64) string {
	switch {
	case r < 0:
		return "-"
	case r < 10:
		return fmt.Sprintf("%.1f", r)
	}
	return progress.Human(r)
}

func showETA(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return progress.Clock(d)
}

// watchFrame renders one refresh for a terminal: a title line and a table.
func watchFrame(master string, interval time.Duration, at time.Time, rows []rateRow, err error) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "distq watch: master %s, every %v, %s\n\n", master, interval, at.Format("15:04:05"))
	if err != nil {
		fmt.Fprintf(&b, "distq: %s (trying again)\n", cleanMessage(err.Error()))
		return b.Bytes()
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSTATE\tREADY\tLEASED\tDELAYED\tDEAD\tCONSUMERS\tPUT/S\tDELIVERED/S\tACKED/S\tNACKED/S\tETA")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Name, state(r.Stats),
			r.Ready, r.Leased, r.Delayed, r.Dead, r.Consumers,
			showRate(r.Put), showRate(r.Delivered), showRate(r.Acked), showRate(r.Nacked), showETA(r.ETA))
	}
	tw.Flush()
	return b.Bytes()
}

// watchLine renders one refresh as one line, for a log or a pipe.
func watchLine(at time.Time, rows []rateRow, err error) string {
	var b strings.Builder
	b.WriteString(at.Format(time.RFC3339))
	if err != nil {
		fmt.Fprintf(&b, " error=%q\n", cleanMessage(err.Error()))
		return b.String()
	}
	for i, r := range rows {
		if i > 0 {
			b.WriteString(" |")
		}
		fmt.Fprintf(&b, " %s ready=%d leased=%d delayed=%d dead=%d consumers=%d put/s=%s delivered/s=%s acked/s=%s nacked/s=%s eta=%s",
			r.Name, r.Ready, r.Leased, r.Delayed, r.Dead, r.Consumers,
			showRate(r.Put), showRate(r.Delivered), showRate(r.Acked), showRate(r.Nacked), showETA(r.ETA))
		if r.Closed {
			b.WriteString(" closed")
		}
		if r.Paused {
			b.WriteString(" paused")
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// redraw writes frame over the previous one: home, each line cleared to
// its end, the rest of the screen cleared (no flicker of a full clear).
func redraw(w io.Writer, frame []byte, first bool) {
	var b bytes.Buffer
	if first {
		b.WriteString("\033[2J")
	}
	b.WriteString("\033[H")
	for _, line := range bytes.SplitAfter(frame, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		b.Write(bytes.TrimSuffix(line, []byte("\n")))
		b.WriteString("\033[K\n")
	}
	b.WriteString("\033[J")
	w.Write(b.Bytes())
}

func runWatch(ctx context.Context, m *Main, in *distq.Inspector) error {
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	var prev *sample
	for i := 0; m.count == 0 || i < m.count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		st, err := queueStats(ctx, in, m.args)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, distq.ErrUnavailable) {
				return err
			}
		}
		var rows []rateRow
		if err == nil {
			cur := sample{now, st}
			rows = rates(prev, cur)
			prev = &cur
		}
		if m.terminal {
			redraw(m.stdout, watchFrame(m.conn.Master, m.interval, now, rows, err), i == 0)
		} else {
			io.WriteString(m.stdout, watchLine(now, rows, err))
		}
	}
	return nil
}
