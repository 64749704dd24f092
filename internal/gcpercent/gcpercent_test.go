package gcpercent

import (
	"os"
	"runtime/debug"
	"testing"
)

// keep restores the collector's percent after the test.
func keep(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

func TestSetLeavesGOGCAlone(t *testing.T) {
	keep(t)
	t.Setenv("GOGC", "150") // as if the user had started us so
	debug.SetGCPercent(150)
	if Set(Slave) || debug.SetGCPercent(150) != 150 {
		t.Fatal("Set changed the percent the user chose with GOGC")
	}
}

func TestSetWithoutGOGC(t *testing.T) {
	keep(t)
	t.Setenv("GOGC", "") // restored after the test
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	if !Set(Slave) || debug.SetGCPercent(100) != Slave {
		t.Fatalf("without GOGC the percent is not %d", Slave)
	}
}

// The runtime ignores an empty or unreadable GOGC (it runs at 100), and so
// does Set: such a GOGC chose nothing.
func TestSetIgnoresWhatTheRuntimeIgnores(t *testing.T) {
	for _, v := range []string{"", "abc"} {
		keep(t)
		t.Setenv("GOGC", v)
		if !Set(Slave) || debug.SetGCPercent(100) != Slave {
			t.Errorf("GOGC=%q: the percent is not %d", v, Slave)
		}
	}
	keep(t)
	t.Setenv("GOGC", "off")
	debug.SetGCPercent(-1)
	if Set(Slave) || debug.SetGCPercent(-1) != -1 {
		t.Error("GOGC=off: Set turned the collector on")
	}
}
