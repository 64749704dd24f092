// Package progress renders a live progress line: a bar redrawn in place on a
// terminal, or a log line at intervals when the output is not a terminal.
package progress

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Snapshot is what a progress line shows.
type Snapshot struct {
	Done, Total int
	Elapsed     time.Duration
}

// Percent is the share done, 0..100.
func (s Snapshot) Percent() float64 {
	if s.Total <= 0 {
		return 100
	}
	return 100 * float64(s.Done) / float64(s.Total)
}

// Rate is items per second so far.
func (s Snapshot) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Done) / s.Elapsed.Seconds()
}

// ETA is the time left at the rate so far; -1 when unknown.
func (s Snapshot) ETA() time.Duration {
	r := s.Rate()
	if r <= 0 {
		return -1
	}
	return time.Duration(float64(s.Total-s.Done) / r * float64(time.Second))
}

// Bar draws s as one terminal line of the given width of bar cells, for
// example "[#########...........]  45.0%  4500/10000  12.3k/s  ETA 0:03".
func Bar(s Snapshot, width int) string {
	filled := int(float64(width) * s.Percent() / 100)
	filled = min(max(filled, 0), width)
	eta := "--:--"
	if d := s.ETA(); d >= 0 {
		eta = Clock(d)
	}
	return fmt.Sprintf("[%s%s] %5.1f%%  %d/%d  %s/s  ETA %s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		s.Percent(), s.Done, s.Total, Human(s.Rate()), eta)
}

// Redraw writes line over the current terminal line.
func Redraw(w io.Writer, line string) {
	fmt.Fprintf(w, "\r\033[K%s", line)
}

// Clock formats d as m:ss or h:mm:ss.
func Clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// Human formats a rate with a k or M suffix.
func Human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
