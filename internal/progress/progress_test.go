package progress

import (
	"strings"
	"testing"
	"time"
)

func TestBar(t *testing.T) {
	s := Snapshot{Done: 50, Total: 100, Elapsed: 2 * time.Second}
	got := Bar(s, 10)
	for _, want := range []string{"[#####.....]", " 50.0%", "50/100", "25/s", "ETA 0:02"} {
		if !strings.Contains(got, want) {
			t.Errorf("Bar() = %q, missing %q", got, want)
		}
	}
}

func TestSnapshotEdges(t *testing.T) {
	if p := (Snapshot{Total: 0}).Percent(); p != 100 {
		t.Errorf("empty total: percent %v, want 100", p)
	}
	if eta := (Snapshot{Total: 10}).ETA(); eta != -1 {
		t.Errorf("no progress: ETA %v, want -1", eta)
	}
	if got := Bar(Snapshot{Done: 200, Total: 100, Elapsed: time.Second}, 4); !strings.HasPrefix(got, "[####]") {
		t.Errorf("overfull bar %q", got)
	}
}

func TestHumanAndClock(t *testing.T) {
	cases := map[float64]string{12: "12", 12345: "12.3k", 2_500_000: "2.50M"}
	for v, want := range cases {
		if got := Human(v); got != want {
			t.Errorf("Human(%v) = %q, want %q", v, got, want)
		}
	}
	if got := Clock(3*time.Hour + 4*time.Minute + 5*time.Second); got != "3:04:05" {
		t.Errorf("Clock = %q", got)
	}
	if got := Clock(65 * time.Second); got != "1:05" {
		t.Errorf("Clock = %q", got)
	}
}
