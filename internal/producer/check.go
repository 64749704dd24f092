package producer

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// checker matches the results read to the puts answered. Task k (1..N) is
// the number k, so a result names its task twice: by ReplyTo, the id the
// master gave the task, and by its value k*k. A put whose answer was lost
// leaves ids the producer never learns; the results of those items are
// recognised by their values alone.
//
// A result is read under a lease and acked once recorded, so a lost ack
// brings the same result item back: it is counted once (reread). A master
// killed mid-run can also lose a slave's ack with its reply after the
// reply was delivered to us (deliveries do not wait for the disk): the
// task is then done again, and a second result item for it arrives. That
// is told from a double answer by the connection it arrives on: the
// master's crash ends the connection, so a second result read on the same
// connection as the first is a duplicate, and one read on a later
// connection is a task done again (tolerated, and counted).
type checker struct {
	mu       sync.Mutex
	n        int
	taskOf   map[uint64]int      // task id of an answered put -> its number k
	resent   []int               // resent[k]: times k's put went unanswered
	results  map[uint64][]result // by ReplyTo: the distinct result items read
	epoch    int                 // connections of the result reader that ended
	answered int                 // len(taskOf)
	done     int                 // answered task ids with at least one result
	reads    int                 // results read, rereads included
	reread   int                 // a result item read again
	resentN  int                 // items put again after an unanswered put
	reused   int                 // task ids the master gave twice (never should)
	taskOfR  map[uint64]uint64   // result item id -> the task it answered
	rReused  int                 // result item ids seen answering two tasks
}

// result is one distinct result item.
type result struct {
	id    uint64 // the result item's own id
	value string // its payload
	epoch int    // the reader's connection it was first read on
}

func (r result) String() string {
	return fmt.Sprintf("{id %d value %q connection %d}", r.id, r.value, r.epoch)
}

func newChecker(n int) *checker {
	return &checker{
		n:       n,
		taskOf:  make(map[uint64]int, n),
		resent:  make([]int, n+1),
		results: make(map[uint64][]result, n),
		taskOfR: make(map[uint64]uint64, n),
	}
}

// putAnswered records the ids the master gave the puts of ks.
func (c *checker) putAnswered(ks []int, ids []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		if _, dup := c.taskOf[id]; dup {
			c.reused++ // the master must never give an id twice
			continue
		}
		c.taskOf[id] = ks[i]
		c.answered++
		if len(c.results[id]) > 0 {
			c.done++
		}
	}
}

// putUnanswered records that the puts of ks got no answer: they may or may
// not be stored, and are put again.
func (c *checker) putUnanswered(ks []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range ks {
		c.resent[k]++
	}
	c.resentN += len(ks)
}

// disconnected records that the result reader's connection ended.
func (c *checker) disconnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
}

// result records a result item read: its id, the task it answers, its value.
func (c *checker) result(id, replyTo uint64, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	rs := c.results[replyTo]
	for _, r := range rs {
		if r.id == id {
			c.reread++ // delivered again: its ack was lost
			return
		}
	}
	c.results[replyTo] = append(rs, result{id: id, value: string(payload), epoch: c.epoch})
	if t, ok := c.taskOfR[id]; ok && t != replyTo {
		c.rReused++
	}
	c.taskOfR[id] = replyTo
	if len(rs) == 0 {
		if _, ok := c.taskOf[replyTo]; ok {
			c.done++
		}
	}
}

// progress is how far the run is: puts answered, and those of them with a
// result.
func (c *checker) progress() (answered, done, reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answered, c.done, c.reads
}

// summary judges everything read so far.
func (c *checker) summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Summary{Tasks: c.n, Answered: c.answered, Resent: c.resentN, Reread: c.reread, Wrong: c.reused, IDsReused: c.rReused}
	// again sorts the second and later results of a task: done again after
	// a restart (read on a later connection than every result before it),
	// or a duplicate.
	seen := map[string]int{}
	note := func(kind string, replyTo uint64, rs []result) {
		if seen[kind]++; seen[kind] <= maxNotes {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: task %d: results %v", kind, replyTo, rs))
		}
	}
	again := func(replyTo uint64, rs []result) (ok bool) {
		ok = true
		for i := 1; i < len(rs); i++ {
			if rs[i].epoch == rs[i-1].epoch {
				s.Duplicates++
				note("duplicate", replyTo, rs)
				ok = false
			} else {
				s.Redone++
				note("done again", replyTo, rs)
			}
		}
		return ok
	}
	for id, k := range c.taskOf {
		rs := c.results[id]
		if len(rs) == 0 {
			s.Missing++
			note(fmt.Sprintf("missing (number %d)", k), id, nil)
			continue
		}
		once := again(id, rs)
		for _, r := range rs {
			if v, ok := parse(r.value); !ok || v != int64(k)*int64(k) {
				s.Wrong++
				note(fmt.Sprintf("wrong (number %d)", k), id, rs)
				once = false
			}
		}
		if once {
			s.Exact++
		}
	}
	// Results of tasks whose ids the producer never learnt: each must be
	// the square of a number whose put went unanswered, at most one task
	// per such put.
	extra := map[int]int{}
	for replyTo, rs := range c.results {
		if _, ok := c.taskOf[replyTo]; ok {
			continue
		}
		again(replyTo, rs)
		k, ok := root(rs[0].value)
		for _, r := range rs[1:] {
			if r.value != rs[0].value {
				ok = false
			}
		}
		if !ok || k < 1 || k > c.n || extra[k] >= c.resent[k] {
			s.Wrong += len(rs) // results the producer cannot account for
			note("unaccounted for", replyTo, rs)
			continue
		}
		extra[k]++
		s.Extra++
	}
	s.Missing += c.n - c.answered // never answered: the run stopped early
	return s
}

// parse reads a decimal square.
func parse(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v >= 0
}

// root is k for a value k*k.
func root(s string) (int, bool) {
	v, ok := parse(s)
	if !ok {
		return 0, false
	}
	k := int64(math.Sqrt(float64(v)))
	for k*k > v {
		k--
	}
	for (k+1)*(k+1) <= v {
		k++
	}
	if k*k != v || k > math.MaxInt32 {
		return 0, false
	}
	return int(k), true
}

// Summary is the outcome of a run.
type Summary struct {
	// Tasks is N; Answered the tasks whose put the master answered (each
	// task is put until one of its puts is answered); Exact those with
	// one result, the right one, read once or more.
	Tasks, Answered, Exact int
	// Wrong results (not the square, or not accounted for by any put),
	// Duplicates (a second result item for a task, read on the same
	// connection as the one before), Missing (answered tasks without a
	// result, and tasks never answered).
	Wrong, Duplicates, Missing int
	// Resent counts the items put again after a put went unanswered (the
	// master went away, or its answer was lost): the first put may have
	// been stored too. Extra counts the tasks stored twice that way (their
	// results arrived under ids no answer gave); they are tolerated, as a
	// master that does not deduplicate puts stores a put sent twice twice.
	Resent, Extra int
	// Redone counts second result items for a task read on a later
	// connection than the first: the task was done again after a restart
	// although its result had been read. A master hands a result out only
	// once the ack that made it is on disk, so this is a fault. Reread
	// counts result items read again (their ack was lost), which is not.
	Redone, Reread int
	// IDsReused counts result item ids read answering two different
	// tasks: an id given twice, a fault (a master hands an item out only
	// once its record is on disk, so a restart never gives its id again).
	IDsReused int
	Elapsed   time.Duration
	// Notes show a few results of each kind of fault (not printed by Write).
	Notes []string
}

// maxNotes is how many examples of each kind Summary.Notes keeps.
const maxNotes = 5

// OK reports whether every task was answered and has exactly one result,
// the right one, and no result is wrong.
func (s Summary) OK() bool {
	return s.Answered == s.Tasks && s.Exact == s.Tasks && s.Wrong == 0 && s.Duplicates == 0 && s.Missing == 0 &&
		s.Redone == 0 && s.IDsReused == 0
}

// Write prints the summary for a person; ParseSummary reads it back.
func (s Summary) Write(w io.Writer) {
	verdict := "OK"
	if !s.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "producer %s: %d tasks, %d puts answered, %d results exactly once and right, %d wrong, %d duplicate, %d missing\n",
		verdict, s.Tasks, s.Answered, s.Exact, s.Wrong, s.Duplicates, s.Missing)
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Exact) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "producer put again after no answer %d, stored twice %d, done again %d, results read again %d, result ids given twice %d; elapsed %s, %.0f tasks/s\n",
		s.Resent, s.Extra, s.Redone, s.Reread, s.IDsReused, s.Elapsed.Round(time.Millisecond), rate)
}

var (
	verdictLine = regexp.MustCompile(`producer (OK|FAILED): (\d+) tasks, (\d+) puts answered, (\d+) results exactly once and right, (\d+) wrong, (\d+) duplicate, (\d+) missing`)
	detailLine  = regexp.MustCompile(`producer put again after no answer (\d+), stored twice (\d+), done again (\d+), results read again (\d+), result ids given twice (\d+); elapsed (\S+),`)
)

// ParseSummary reads back the last summary Write printed into text (a
// producer's output or log, with any prefixes).
func ParseSummary(text string) (Summary, error) {
	v := verdictLine.FindAllStringSubmatch(text, -1)
	d := detailLine.FindAllStringSubmatch(text, -1)
	if len(v) == 0 || len(d) == 0 {
		return Summary{}, fmt.Errorf("no producer summary in the output")
	}
	n := func(s string) int { x, _ := strconv.Atoi(s); return x }
	vm, dm := v[len(v)-1], d[len(d)-1]
	elapsed, err := time.ParseDuration(dm[6])
	if err != nil {
		return Summary{}, fmt.Errorf("producer summary: elapsed %q: %w", dm[6], err)
	}
	s := Summary{
		Tasks: n(vm[2]), Answered: n(vm[3]), Exact: n(vm[4]), Wrong: n(vm[5]), Duplicates: n(vm[6]), Missing: n(vm[7]),
		Resent: n(dm[1]), Extra: n(dm[2]), Redone: n(dm[3]), Reread: n(dm[4]), IDsReused: n(dm[5]), Elapsed: elapsed,
	}
	if (vm[1] == "OK") != s.OK() {
		return Summary{}, fmt.Errorf("producer summary says %s but its counts say otherwise", vm[1])
	}
	return s, nil
}
