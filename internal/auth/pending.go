package auth

import (
	"container/list"
	"sync"
	"time"
)

// challenge is a server_nonce handed out by Challenge and not yet used by a
// Login.
type challenge struct {
	serverNonce string // raw bytes, as a map key
	clientNonce []byte
	expires     time.Time
}

// challengeTable holds outstanding challenges until their Login or their
// expiry, whichever comes first.
//
// Entries are kept in a list in order of issue. The lifetime is the same for
// all, so that is also the order of expiry: expired entries are swept from the
// front whenever a new one is added, with no timer and no goroutine, and each
// entry costs O(1) to add, take or sweep.
//
// When the table is full the oldest entry is evicted to make room. Challenge
// needs no key, so anyone can fill the table; evicting the oldest means a
// flood can at worst make a legitimate client's handshake fail (it retries),
// while refusing new challenges instead would lock every client out for as
// long as the flood lasts.
type challengeTable struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	byNonce map[string]*list.Element // of *challenge
	order   list.List                // of *challenge, oldest first
}

func newChallengeTable(max int, ttl time.Duration) *challengeTable {
	return &challengeTable{max: max, ttl: ttl, byNonce: make(map[string]*list.Element)}
}

// add remembers a challenge issued at now.
func (t *challengeTable) add(serverNonce, clientNonce []byte, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	for len(t.byNonce) >= t.max {
		t.removeLocked(t.order.Front())
	}
	c := &challenge{
		serverNonce: string(serverNonce),
		clientNonce: append([]byte(nil), clientNonce...),
		expires:     now.Add(t.ttl),
	}
	t.byNonce[c.serverNonce] = t.order.PushBack(c)
}

// take removes the challenge named by serverNonce and returns its client
// nonce if it was still valid at now. It removes the challenge even when the
// caller goes on to find the proof wrong: every server_nonce gets exactly one
// attempt, so a captured Login cannot be replayed and a proof cannot be
// guessed at repeatedly.
func (t *challengeTable) take(serverNonce []byte, now time.Time) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byNonce[string(serverNonce)]
	if !ok {
		return nil, false
	}
	c := e.Value.(*challenge)
	t.removeLocked(e)
	if !now.Before(c.expires) {
		return nil, false
	}
	return c.clientNonce, true
}

// len returns the number of challenges held, expired or not.
func (t *challengeTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byNonce)
}

// reset forgets every challenge.
func (t *challengeTable) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.byNonce)
	t.order.Init()
}

func (t *challengeTable) sweepLocked(now time.Time) {
	for e := t.order.Front(); e != nil && !now.Before(e.Value.(*challenge).expires); e = t.order.Front() {
		t.removeLocked(e)
	}
}

func (t *challengeTable) removeLocked(e *list.Element) {
	delete(t.byNonce, e.Value.(*challenge).serverNonce)
	t.order.Remove(e)
}
