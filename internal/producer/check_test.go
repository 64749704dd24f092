package producer

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckerJudgesEachKindOfResult(t *testing.T) {
	c := newChecker(8)
	c.result(100, 10, []byte("1")) // before its put's answer is recorded
	c.putAnswered([]int{1, 2, 3}, []uint64{10, 11, 12})
	c.result(101, 11, []byte("4"))
	c.result(101, 11, []byte("4")) // read again: its ack was lost
	c.result(102, 12, []byte("8")) // wrong
	c.putUnanswered([]int{4, 5})   // no answer: put again
	c.putAnswered([]int{4, 5}, []uint64{14, 15})
	c.result(103, 13, []byte("16")) // the first put of 4 was stored: tolerated
	c.result(104, 14, []byte("16"))
	c.result(105, 15, []byte("25"))
	c.result(106, 15, []byte("25")) // a second result on the same connection
	c.putAnswered([]int{6, 7}, []uint64{16, 17})
	c.result(107, 16, []byte("36"))
	c.disconnected()                // the master went away
	c.result(108, 16, []byte("36")) // done again after the restart: a fault
	c.result(107, 18, []byte("49")) // id 107 again, for a task no put of 7 left unanswered
	c.result(109, 99, []byte("36")) // 6's put was answered at once: not ours
	// 8 was never answered; 7 (task 17) has no result.
	if answered, done, reads := c.progress(); answered != 7 || done != 6 || reads != 12 {
		t.Fatalf("progress %d %d %d; want 7 6 12", answered, done, reads)
	}
	s := c.summary()
	if len(s.Notes) == 0 {
		t.Error("no notes on the faults")
	}
	s.Notes = nil
	// Wrong: task 12's 8, and the results for 18 and 99. Missing: 17, and 8.
	want := Summary{Tasks: 8, Answered: 7, Exact: 4, Wrong: 3, Duplicates: 1, Missing: 2,
		Resent: 2, Extra: 1, Redone: 1, Reread: 1, IDsReused: 1}
	if !equal(s, want) {
		t.Fatalf("summary\n%+v\nwant\n%+v", s, want)
	}
	if s.OK() {
		t.Fatal("a summary with faults is OK")
	}
}

func TestCheckerAllRight(t *testing.T) {
	c := newChecker(3)
	c.putUnanswered([]int{1, 2, 3})
	c.putAnswered([]int{1, 2, 3}, []uint64{5, 6, 7})
	for i, v := range []string{"1", "4", "9"} {
		c.result(uint64(20+i), uint64(5+i), []byte(v))
	}
	c.disconnected()
	c.result(30, 2, []byte("4")) // the unanswered put of 2 was stored too
	s := c.summary()
	if !s.OK() || s.Exact != 3 || s.Extra != 1 || s.Resent != 3 {
		t.Fatalf("summary %+v: want OK, 3 exact, 1 extra, 3 resent", s)
	}
	// A task done again after its result was read, or a result id given
	// twice, is a fault of a durable master.
	for _, bad := range []Summary{{Redone: 1}, {IDsReused: 1}} {
		s2 := s
		s2.Redone, s2.IDsReused = bad.Redone, bad.IDsReused
		if s2.OK() {
			t.Errorf("summary %+v is OK", s2)
		}
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	for _, s := range []Summary{
		{Tasks: 20000, Answered: 20000, Exact: 20000, Resent: 300, Extra: 12, Redone: 5, Reread: 7, IDsReused: 2, Elapsed: 4200 * time.Millisecond},
		{Tasks: 10, Answered: 9, Exact: 7, Wrong: 1, Duplicates: 1, Missing: 1, Elapsed: time.Second},
	} {
		var b bytes.Buffer
		s.Write(&b)
		text := "2026-01-01 producer-1 | " + strings.ReplaceAll(b.String(), "\n", "\nproducer-1 | ")
		got, err := ParseSummary(text)
		if err != nil {
			t.Fatalf("%v in\n%s", err, text)
		}
		if !equal(got, s) {
			t.Fatalf("read back %+v\nwant %+v\nfrom\n%s", got, s, text)
		}
	}
	if _, err := ParseSummary("nothing here"); err == nil {
		t.Fatal("a summary parsed from nothing")
	}
}

func TestRoot(t *testing.T) {
	for _, k := range []int{1, 2, 3, 99, 100, 46340, 200000, 1 << 30} {
		v := int64(k) * int64(k)
		if got, ok := root(itoa(v)); !ok || got != k {
			t.Errorf("root(%d) = %d, %v; want %d", v, got, ok, k)
		}
		if _, ok := root(itoa(v + 1)); ok && k > 1 {
			t.Errorf("root(%d) found a square", v+1)
		}
	}
	for _, s := range []string{"", "-4", "x", "2"} {
		if _, ok := root(s); ok {
			t.Errorf("root(%q) ok", s)
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func equal(a, b Summary) bool {
	a.Notes, b.Notes = nil, nil
	return reflect.DeepEqual(a, b)
}
