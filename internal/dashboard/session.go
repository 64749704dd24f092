package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// A session is one login. The browser holds its id in an HttpOnly cookie;
// the master keeps only the id's SHA-256, so a memory dump or a timing
// difference in the map's lookup tells nothing usable.
type session struct {
	csrf    string // sent back by the page in X-CSRF-Token on every POST
	created time.Time
	seen    time.Time
}

// sessions holds at most max logins. A session ends after idle without a
// request, after ttl in any case, at logout, or when max newer logins push
// it out (the least recently used first).
type sessions struct {
	mu   sync.Mutex
	m    map[[32]byte]*session
	max  int
	ttl  time.Duration
	idle time.Duration
	now  func() time.Time
}

func newSessions(max int, ttl, idle time.Duration, now func() time.Time) *sessions {
	return &sessions{m: make(map[[32]byte]*session), max: max, ttl: ttl, idle: idle, now: now}
}

// token is 32 random bytes, URL-safe.
func token() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("dashboard: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session and returns its id and CSRF token.
func (s *sessions) create() (id, csrf string) {
	id, csrf = token(), token()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	for len(s.m) >= s.max {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.seen.Before(at) {
				oldest, at = k, v.seen
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(id))] = &session{csrf: csrf, created: now, seen: now}
	return id, csrf
}

func (s *sessions) expireLocked(now time.Time) {
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
}

func (s *sessions) expired(v *session, now time.Time) bool {
	return now.Sub(v.created) >= s.ttl || now.Sub(v.seen) >= s.idle
}

// get returns the CSRF token of the live session id and marks it used.
func (s *sessions) get(id string) (csrf string, ok bool) {
	if id == "" {
		return "", false
	}
	k := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return "", false
	}
	if s.expired(v, now) {
		delete(s.m, k)
		return "", false
	}
	v.seen = now
	return v.csrf, true
}

func (s *sessions) delete(id string) {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// equal compares two secrets in constant time, whatever their lengths:
// it compares their SHA-256 sums.
func equal(a, b []byte) bool {
	ha, hb := sha256.Sum256(a), sha256.Sum256(b)
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// bucket is a token bucket: burst attempts at once, then one per every.
// It bounds login attempts from everyone together, so that guessing the
// credential costs at least every per guess.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	burst  float64
	every  time.Duration
	last   time.Time
	now    func() time.Time
}

func newBucket(burst int, every time.Duration, now func() time.Time) *bucket {
	return &bucket{tokens: float64(burst), burst: float64(burst), every: every, last: now(), now: now}
}

// take takes a token; when there is none it says how long until one comes.
func (b *bucket) take() (ok bool, retry time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+float64(el)/float64(b.every))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(b.every))
}
