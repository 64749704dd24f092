package queue

// signal is a broadcast that waiters pick up as a channel, so that a wait can
// be combined with a context and a timeout in one select. The channel is made
// only when somebody waits, so the hot paths that broadcast with no waiter
// allocate nothing. Guarded by the queue's mutex.
type signal struct {
	ch chan struct{}
}

// wait returns a channel that is closed at the next broadcast.
func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
