package queue

// The functions that change a queue log nothing: they record in an effects
// value what they did that is worth a line, and the live operation that
// called them logs it once the change is made (report). Once the changes
// are journaled (issue 9), a replay makes them again and must stay silent;
// the log is the live master's, as it is around raft's FSM.Apply.

// effects is what the state changes of one live operation did that the
// operation reports.
type effects struct {
	dead     []deadLettered // in the order they happened
	expired  int            // leases that ran out
	promoted int            // delayed items made ready
}

// deadLettered is one item moved to a dead-letter queue, as its log line
// names it.
type deadLettered struct {
	id       uint64
	attempts uint32
	err      string // the item's last error
	why      string // whyMaxAttempts or whyFailed
}

// The reasons of a dead-lettering: fixed strings, which the rate-limited
// log counts by.
const (
	whyMaxAttempts = "max attempts reached"
	whyFailed      = "failed permanently"
)

// report logs fx, the effects of an operation on q. Called with q.mu held
// (the lines of one queue stay in order), after the operation's changes.
// It is inlined, so that the hot paths, which mostly have nothing to
// report, pay a few comparisons for it.
func (q *Queue) report(fx *effects) {
	if len(fx.dead) > 0 || fx.expired > 0 || fx.promoted > 0 {
		q.logEffects(fx)
	}
}

// logEffects logs fx in the order its lines always came: the
// dead-letterings, then the expiries, then the promotions.
func (q *Queue) logEffects(fx *effects) {
	for _, d := range fx.dead {
		// At a bounded rate: a worker that fails every task it takes would
		// otherwise write a line per task.
		q.b.deadLog.Note("item dead-lettered", d.why, "", "queue", q.nameArg, "id", d.id, "attempts", d.attempts, "error", d.err)
	}
	if fx.expired > 0 {
		// At a bounded rate: the scan loop wakes for every deadline.
		q.b.expiryLog.Note("leases expired; items back in the queue", "lease ran out", "", "queue", q.nameArg, "count", fx.expired)
	}
	if fx.promoted > 0 && q.b.log.IsDebug() { // its arguments would allocate on every scan
		q.b.log.Debug("delayed items ready for their retry", "queue", q.nameArg, "count", fx.promoted)
	}
}
