package logbench

import "testing"

func TestDecideAppliesTheRule(t *testing.T) {
	cell := func(e string, items, cpu, put, settle float64) Cell {
		return Cell{Shape: DecisionShape, Engine: e, ItemsPerSec: items, CPUNsPerItem: cpu, PutP99: put, SettleP99: settle}
	}
	seglog := cell("seglog", 1000, 100, 2000, 2000)
	cases := []struct {
		raft1  Cell
		choice string
	}{
		{cell("raft1", 900, 115, 2600, 2600), "a"},  // every bound met exactly
		{cell("raft1", 899, 100, 2000, 2000), "b"},  // items/s
		{cell("raft1", 1000, 116, 2000, 2000), "b"}, // CPU per item
		{cell("raft1", 1000, 100, 2601, 2000), "b"}, // put p99
		{cell("raft1", 1000, 100, 2000, 2601), "b"}, // settle p99
	}
	for i, c := range cases {
		if d := Decide([]Cell{seglog, c.raft1}); d.Choice != c.choice {
			t.Errorf("case %d: %+v", i, d)
		}
	}
	if d := Decide([]Cell{seglog}); d.Choice != "" {
		t.Errorf("decided without raft1: %+v", d)
	}
}

func TestSummarizeTakesMedians(t *testing.T) {
	rs := []Result{
		{Shape: "s", Engine: "e", ItemsPerSec: 3, CPUNsPerItem: 30},
		{Shape: "s", Engine: "e", ItemsPerSec: 1, CPUNsPerItem: 10},
		{Shape: "s", Engine: "e", ItemsPerSec: 2, CPUNsPerItem: 20},
		{Shape: "s", Engine: "e", ItemsPerSec: 100, Error: "failed"},
	}
	c := Summarize(rs)
	if len(c) != 1 || c[0].ItemsPerSec != 2 || c[0].CPUNsPerItem != 20 || c[0].ItemsMin != 1 || c[0].ItemsMax != 3 || c[0].Errors != 1 {
		t.Fatalf("%+v", c)
	}
}
