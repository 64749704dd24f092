package auth

import (
	"container/list"
	"sync"
	"time"
)

// session is the master's state for one successful Login.
type session struct {
	id  string
	key []byte // session key; set at creation, never changed, so read without the lock

	// Guarded by sessionTable.mu.
	replay   replayGuard
	lastUsed time.Time
	streams  int           // open streams on this session
	idle     *list.Element // in sessionTable.idle iff streams == 0
	gone     bool          // removed from the table
}

// sessionTable holds the live sessions.
//
// Sessions with no open stream sit in an LRU list, most recently used at the
// front; a session with an open stream is taken off the list (it cannot
// expire) and put back at the front when its last stream ends. Expiry is then
// a sweep from the back of the list whenever a session is added, and eviction
// when the table is full takes the least recently used idle session. Both are
// O(1) per session, with no timer and no goroutine; a session found expired by
// a lookup is removed on the spot.
//
// Only a key holder can create sessions, so a full table means many clients,
// or clients that leak sessions. Evicting the least recently used one costs
// its owner one transparent re-handshake ("distq: session unknown"). If every
// session has an open stream, Login fails with RESOURCE_EXHAUSTED instead:
// evicting would cut off a live stream's session.
type sessionTable struct {
	mu     sync.Mutex
	max    int
	replay ringBudget    // the replay guards' rings, together
	ttl    time.Duration // idle lifetime
	byID   map[string]*session
	idle   list.List // of *session with streams == 0, most recently used first
}

func newSessionTable(max int, idle time.Duration) *sessionTable {
	return &sessionTable{max: max, ttl: idle, byID: make(map[string]*session), replay: ringBudget{max: defaultRingBudget}}
}

// add inserts a new session, used at now.
func (t *sessionTable) add(id string, key []byte, now time.Time) (*session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	if len(t.byID) >= t.max {
		back := t.idle.Back()
		if back == nil {
			return nil, errTooManySessions
		}
		t.removeLocked(back.Value.(*session))
	}
	s := &session{id: id, key: key, lastUsed: now, replay: replayGuard{budget: &t.replay}}
	s.idle = t.idle.PushFront(s)
	t.byID[id] = s
	return s, nil
}

// lookup returns the live session named id. The caller checks the MAC with
// its key and then calls admit.
func (t *sessionTable) lookup(id string, now time.Time) (*session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.byID[id]
	if !ok {
		return nil, errSessionUnknown
	}
	if t.expiredLocked(s, now) {
		t.removeLocked(s)
		return nil, errSessionExpired
	}
	return s, nil
}

// admit records seq as used on s and counts the call as activity at now. It
// is called only after the call's MAC has been verified, so a peer without the
// session key cannot burn seqs of someone else's session.
func (t *sessionTable) admit(s *session, seq uint64, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.gone {
		// Expired or evicted between lookup and now.
		return errSessionUnknown
	}
	if s.replay.accept(seq, now.UnixNano()) != replayOK {
		return errReplayed
	}
	t.touchLocked(s, now)
	return nil
}

// hold keeps s alive while a stream admitted on it is open; release ends
// the hold. It fails if s is gone meanwhile.
func (t *sessionTable) hold(s *session, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.gone {
		return errSessionUnknown
	}
	t.touchLocked(s, now)
	s.streams++
	if s.idle != nil {
		t.idle.Remove(s.idle)
		s.idle = nil
	}
	return nil
}

func (t *sessionTable) touchLocked(s *session, now time.Time) {
	s.lastUsed = now
	if s.idle != nil {
		t.idle.MoveToFront(s.idle)
	}
}

// release ends a stream admitted on s at now.
func (t *sessionTable) release(s *session, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.streams--
	s.lastUsed = now
	if s.streams == 0 && !s.gone {
		s.idle = t.idle.PushFront(s)
	}
}

// len returns the number of sessions held, expired or not.
func (t *sessionTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// reset forgets every session; streams still open on them are unaffected
// until they end.
func (t *sessionTable) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.byID {
		t.removeLocked(s)
	}
}

func (t *sessionTable) expiredLocked(s *session, now time.Time) bool {
	return s.streams == 0 && !now.Before(s.lastUsed.Add(t.ttl))
}

func (t *sessionTable) sweepLocked(now time.Time) {
	for e := t.idle.Back(); e != nil; e = t.idle.Back() {
		s := e.Value.(*session)
		if !t.expiredLocked(s, now) {
			return
		}
		t.removeLocked(s)
	}
}

func (t *sessionTable) removeLocked(s *session) {
	s.replay.release()
	if s.idle != nil {
		t.idle.Remove(s.idle)
		s.idle = nil
	}
	delete(t.byID, s.id)
	s.gone = true
}
