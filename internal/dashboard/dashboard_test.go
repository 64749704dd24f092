package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/testlog"
)

const testCred = "dashboard-test-credential-0123456789"

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a dashboard over a real broker with one dead item in tasks.
type fixture struct {
	t      *testing.T
	b      *queue.Broker
	srv    *httptest.Server
	clock  *clock
	deadID uint64
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	b, err := queue.New(queue.Config{Queues: queue.DefaultQueues(), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tasks, _ := b.Queue("tasks")
	ctx := context.Background()
	ids, err := tasks.Put(ctx, []queue.Message{{Payload: []byte("boom")}, {Payload: []byte("fine")}}, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := tasks.Get(ctx, 1, true, 0, false)
	if err != nil || len(ds) != 1 || ds[0].ID != ids[0] {
		t.Fatalf("get: %v %v", ds, err)
	}
	if r := tasks.Nack([]queue.Nack{{ID: ds[0].ID, Lease: ds[0].Lease, Error: "handler: <b>boom</b>"}}); len(r) != 0 {
		t.Fatalf("nack refused: %v", r)
	}
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	cfg.Controller = &BrokerController{B: b}
	if cfg.Credential == nil {
		cfg.Credential = []byte(testCred)
	}
	cfg.Logger = testlog.New(t, "dashboard")
	cfg.Now = c.Now
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	d.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{t: t, b: b, srv: srv, clock: c, deadID: ids[0]}
}

// req makes a request; body, if not "", is sent as JSON with the page's
// own Origin. hdr adds or overrides headers ("" deletes one).
func (f *fixture) req(method, path, cookie, body string, hdr map[string]string) (*http.Response, string) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, f.srv.URL+Path+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Origin", f.srv.URL)
	}
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
	}
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// login logs in and returns the session cookie and CSRF token.
func (f *fixture) login() (cookie, csrf string) {
	f.t.Helper()
	resp, body := f.req("POST", "api/login", "", fmt.Sprintf(`{"credential":%q}`, testCred), nil)
	if resp.StatusCode != 200 {
		f.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == CookieName {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != Path || c.MaxAge <= 0 {
		f.t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path %s, a Max-Age", c, Path)
	}
	var info sessionInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.CSRF == "" {
		f.t.Fatalf("login answer %s: %v", body, err)
	}
	return c.Value, info.CSRF
}

func wantCode(t *testing.T, what string, resp *http.Response, body string, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s: %d %s, want %d", what, resp.StatusCode, body, code)
	}
}

// Without a session, only the page and its files are served: no queue,
// no count, no payload, no action.
func TestNothingWithoutASession(t *testing.T) {
	f := newFixture(t, Config{})
	for _, p := range []string{"", "static/app.js", "static/app.css"} {
		resp, body := f.req("GET", p, "", "", nil)
		wantCode(t, "GET "+p, resp, body, 200)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", p, csp)
		}
		if strings.Contains(body, "boom") {
			t.Errorf("GET %s shows a payload", p)
		}
	}
	for _, p := range []string{"api/session", "api/overview", "api/dead?queue=tasks"} {
		for _, cookie := range []string{"", "forged-session-id"} {
			resp, body := f.req("GET", p, cookie, "", nil)
			wantCode(t, "GET "+p+" cookie "+cookie, resp, body, 401)
			if strings.Contains(body, "tasks") || strings.Contains(body, "boom") {
				t.Errorf("GET %s without a session tells %s", p, body)
			}
		}
	}
	for _, p := range []string{"api/requeue", "api/purge", "api/close", "api/pause", "api/logout"} {
		resp, body := f.req("POST", p, "", `{"queue":"tasks","all":true}`, map[string]string{"X-CSRF-Token": "x"})
		wantCode(t, "POST "+p, resp, body, 401)
	}
	if st := f.b.Queues()[0].Stats(); st.Dead != 1 || st.Closed {
		t.Fatalf("the queue changed: %+v", st)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t, Config{})
	resp, body := f.req("POST", "api/login", "", `{"credential":"wrong"}`, nil)
	wantCode(t, "a wrong credential", resp, body, 401)
	if len(resp.Cookies()) != 0 {
		t.Fatal("a refused login set a cookie")
	}
	resp, body = f.req("POST", "api/login", "", fmt.Sprintf(`{"credential":%q}`, testCred+"x"), nil)
	wantCode(t, "the credential and more", resp, body, 401)
	cookie, csrf := f.login()
	resp, body = f.req("GET", "api/session", cookie, "", nil)
	wantCode(t, "session", resp, body, 200)
	if !strings.Contains(body, csrf) {
		t.Fatalf("session %s lacks the CSRF token", body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("API answer cacheable: %q", resp.Header.Get("Cache-Control"))
	}
	// Logout needs the token too, then ends the session.
	resp, body = f.req("POST", "api/logout", cookie, `{}`, nil)
	wantCode(t, "logout without token", resp, body, 403)
	resp, body = f.req("POST", "api/logout", cookie, `{}`, map[string]string{"X-CSRF-Token": csrf})
	wantCode(t, "logout", resp, body, 200)
	resp, body = f.req("GET", "api/overview", cookie, "", nil)
	wantCode(t, "overview after logout", resp, body, 401)
}

// Every POST must be JSON, from the page's origin, with the session's
// CSRF token.
func TestCSRF(t *testing.T) {
	f := newFixture(t, Config{})
	cookie, csrf := f.login()
	other, otherCSRF := f.login()
	_ = other
	body := `{"queue":"tasks","all":true}`
	for _, c := range []struct {
		what string
		hdr  map[string]string
		code int
	}{
		{"no token", map[string]string{}, 403},
		{"a wrong token", map[string]string{"X-CSRF-Token": csrf + "x"}, 403},
		{"another session's token", map[string]string{"X-CSRF-Token": otherCSRF}, 403},
		{"a form", map[string]string{"X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"text/plain", map[string]string{"X-CSRF-Token": csrf, "Content-Type": "text/plain"}, 415},
		{"another origin", map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, 403},
		{"a null origin", map[string]string{"X-CSRF-Token": csrf, "Origin": "null"}, 403},
		{"cross-site fetch", map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site fetch", map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-site"}, 403},
	} {
		resp, got := f.req("POST", "api/requeue", cookie, body, c.hdr)
		wantCode(t, c.what, resp, got, c.code)
	}
	// Login is held to the same origin rules (no login CSRF).
	resp, got := f.req("POST", "api/login", "", fmt.Sprintf(`{"credential":%q}`, testCred), map[string]string{"Origin": "http://evil.example"})
	wantCode(t, "cross-origin login", resp, got, 403)
	// GET on an action is not an action.
	resp, got = f.req("GET", "api/requeue?queue=tasks&all=true", cookie, "", nil)
	wantCode(t, "GET requeue", resp, got, 405)
	if st := f.b.Queues()[0].Stats(); st.Dead != 1 {
		t.Fatalf("a refused requeue moved items: dead %d", st.Dead)
	}
	// Without Origin (curl), with the token: done.
	resp, got = f.req("POST", "api/requeue", cookie, body, map[string]string{"X-CSRF-Token": csrf, "Origin": "", "Sec-Fetch-Site": "same-origin"})
	wantCode(t, "requeue", resp, got, 200)
	if got != `{"moved":1}`+"\n" {
		t.Fatalf("requeue: %s", got)
	}
}

func TestOverviewAndDeadJSON(t *testing.T) {
	f := newFixture(t, Config{})
	cookie, csrf := f.login()
	resp, body := f.req("GET", "api/overview", cookie, "", nil)
	wantCode(t, "overview", resp, body, 200)
	var ov Overview
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatal(err)
	}
	if ov.Now != f.clock.Now().UnixMilli() || len(ov.Queues) != 2 || ov.Workers == nil || len(ov.Workers) != 0 || !ov.Features.Pause || !ov.Features.Workers {
		t.Fatalf("overview %s", body)
	}
	q := ov.Queues[0]
	want := QueueView{Name: "tasks", Ready: 1, Dead: 1, Puts: 2, Deliveries: 1, Nacks: 1, DeadLettered: 1}
	if q != want {
		t.Fatalf("tasks: %+v, want %+v", q, want)
	}
	if strings.Contains(body, "boom") {
		t.Fatal("the overview shows payloads")
	}

	resp, body = f.req("GET", "api/dead?queue=tasks", cookie, "", nil)
	wantCode(t, "dead", resp, body, 200)
	var page DeadPage
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	wantItem := DeadItem{ID: fmt.Sprint(f.deadID), Attempt: 1, Error: "handler: <b>boom</b>", Payload: "boom", PayloadBytes: 4, PayloadIsText: true}
	if page.Queue != "tasks" || page.Total != 1 || len(page.Items) != 1 || page.Items[0] != wantItem {
		t.Fatalf("dead page %s, want the item %+v", body, wantItem)
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"api/dead?queue=nope", 404},
		{"api/dead?queue=tasks.dead", 400},
		{"api/dead?queue=tasks&limit=201", 400},
		{"api/dead?queue=tasks&limit=-1", 400},
		{"api/dead?queue=tasks&offset=x", 400},
	} {
		resp, body := f.req("GET", c.path, cookie, "", nil)
		wantCode(t, c.path, resp, body, c.code)
	}
	resp, body = f.req("GET", "api/dead?queue=tasks&offset=1", cookie, "", nil)
	wantCode(t, "dead page 2", resp, body, 200)
	if !strings.Contains(body, `"items":[]`) {
		t.Fatalf("past the end: %s", body)
	}

	tok := map[string]string{"X-CSRF-Token": csrf}
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"api/requeue", `{"queue":"tasks"}`, 400},
		{"api/requeue", `{"queue":"tasks","all":true,"ids":["1"]}`, 400},
		{"api/requeue", `{"queue":"tasks","ids":["x"]}`, 400},
		{"api/requeue", `{"queue":"tasks","ids":["1"],"extra":1}`, 400},
		{"api/requeue", `{"queue":"nope","all":true}`, 404},
		{"api/requeue", `{"queue":"tasks.dead","all":true}`, 400},
		{"api/pause", `{"queue":"nope","paused":true}`, 404},
		{"api/pause", `{"queue":"tasks.dead","paused":true}`, 400},
		{"api/close", `{"queue":"nope"}`, 404},
	} {
		resp, body := f.req("POST", c.path, cookie, c.body, tok)
		wantCode(t, c.path+" "+c.body, resp, body, c.code)
	}
	// One item by id: it is ready again, its attempts reset.
	resp, body = f.req("POST", "api/requeue", cookie, fmt.Sprintf(`{"queue":"tasks","ids":["%d"]}`, f.deadID), tok)
	wantCode(t, "requeue one", resp, body, 200)
	if st := f.b.Queues()[0].Stats(); st.Dead != 0 || st.Ready != 2 {
		t.Fatalf("after requeue: %+v", st)
	}
	// Pause and resume; the overview says so, and lists a consumer.
	tasks, _ := f.b.Queue("tasks")
	cons, err := tasks.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	cons.Grant(7)
	resp, body = f.req("POST", "api/pause", cookie, `{"queue":"tasks","paused":true}`, tok)
	wantCode(t, "pause", resp, body, 200)
	if !tasks.Paused() {
		t.Fatal("pause did not pause")
	}
	_, body = f.req("GET", "api/overview", cookie, "", nil)
	ov = Overview{}
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatal(err)
	}
	if !ov.Queues[0].Paused || len(ov.Workers) != 1 || ov.Workers[0].Queue != "tasks" || ov.Workers[0].Credit != 7 {
		t.Fatalf("overview of a paused queue with a consumer: %s", body)
	}
	resp, body = f.req("POST", "api/pause", cookie, `{"queue":"tasks","paused":false}`, tok)
	wantCode(t, "resume", resp, body, 200)
	if tasks.Paused() {
		t.Fatal("resume did not resume")
	}
	resp, body = f.req("POST", "api/close", cookie, `{"queue":"tasks"}`, tok)
	wantCode(t, "close", resp, body, 200)
	if !f.b.Queues()[0].Stats().Closed {
		t.Fatal("close did not close")
	}
}

// kill puts n items into tasks and fails each on its only attempt, and
// returns their ids, oldest first.
func (f *fixture) kill(n int) []uint64 {
	f.t.Helper()
	tasks, _ := f.b.Queue("tasks")
	ctx := context.Background()
	msgs := make([]queue.Message, n)
	for i := range msgs {
		msgs[i].Payload = []byte(fmt.Sprint("dead ", i))
	}
	ids, err := tasks.Put(ctx, msgs, true, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	// The fixture's ready item is first in line: take it with them, and
	// put it back untouched.
	ds, err := tasks.Get(ctx, n+1, true, 0, false)
	if err != nil || len(ds) != n+1 {
		f.t.Fatalf("get %d: %d, %v", n+1, len(ds), err)
	}
	var nacks []queue.Nack
	for _, d := range ds[1:] {
		nacks = append(nacks, queue.Nack{ID: d.ID, Lease: d.Lease, Error: "failed"})
	}
	nacks = append(nacks, queue.Nack{ID: ds[0].ID, Lease: ds[0].Lease, Action: queue.NackRelease})
	if r := tasks.Nack(nacks); len(r) != 0 {
		f.t.Fatalf("nack refused: %v", r)
	}
	return ids
}

// api/dead pages: offset and limit walk every dead item once, oldest
// first, with the total on each page.
func TestDeadPaging(t *testing.T) {
	f := newFixture(t, Config{})
	all := append([]uint64{f.deadID}, f.kill(120)...)
	cookie, _ := f.login()
	var got []string
	for _, c := range []struct {
		query string
		n     int
	}{
		{"", DefaultDeadPage},
		{"&offset=50&limit=50", 50},
		{"&offset=100&limit=50", 21},
		{"&offset=121&limit=50", 0},
	} {
		resp, body := f.req("GET", "api/dead?queue=tasks"+c.query, cookie, "", nil)
		wantCode(t, "dead"+c.query, resp, body, 200)
		var page DeadPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		if page.Total != len(all) || len(page.Items) != c.n {
			t.Fatalf("dead%s: total %d, %d items; want %d, %d", c.query, page.Total, len(page.Items), len(all), c.n)
		}
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
	}
	if len(got) != len(all) {
		t.Fatalf("the pages hold %d items, want %d", len(got), len(all))
	}
	for i, id := range all {
		if got[i] != fmt.Sprint(id) {
			t.Fatalf("item %d of the pages is %s, want %d", i, got[i], id)
		}
	}
	resp, body := f.req("GET", fmt.Sprintf("api/dead?queue=tasks&limit=%d", MaxDeadPage), cookie, "", nil)
	wantCode(t, "a page of MaxDeadPage", resp, body, 200)
}

// api/purge throws away the dead items of the queue named, and nothing
// else: not its ready items, not a dead item someone holds.
func TestPurgeDead(t *testing.T) {
	f := newFixture(t, Config{})
	f.kill(4) // 5 dead with the fixture's
	dq, _ := f.b.Queue("tasks" + queue.DeadSuffix)
	held, err := dq.Get(context.Background(), 1, true, 0, false)
	if err != nil || len(held) != 1 {
		t.Fatalf("get of a dead item: %v, %v", held, err)
	}
	cookie, csrf := f.login()
	tok := map[string]string{"X-CSRF-Token": csrf}
	for _, c := range []struct {
		what, cookie, body string
		hdr                map[string]string
		code               int
	}{
		{"no session", "", `{"queue":"tasks"}`, tok, 401},
		{"no token", cookie, `{"queue":"tasks"}`, nil, 403},
		{"another origin", cookie, `{"queue":"tasks"}`, map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, 403},
		{"an unknown queue", cookie, `{"queue":"nope"}`, tok, 404},
		{"a dead-letter queue's name", cookie, `{"queue":"tasks.dead"}`, tok, 400},
		{"an unknown field", cookie, `{"queue":"tasks","all":true}`, tok, 400},
		{"a body over MaxBody", cookie, `{"queue":"` + strings.Repeat("t", MaxBody) + `"}`, tok, 413},
	} {
		resp, body := f.req("POST", "api/purge", c.cookie, c.body, c.hdr)
		wantCode(t, c.what, resp, body, c.code)
	}
	if st := f.b.Queues()[0].Stats(); st.Dead != 5 || st.Ready != 1 {
		t.Fatalf("a refused purge changed tasks: %+v", st)
	}
	resp, body := f.req("POST", "api/purge", cookie, `{"queue":"tasks"}`, tok)
	wantCode(t, "purge", resp, body, 200)
	if body != `{"purged":4}`+"\n" {
		t.Fatalf("purge: %s, want 4 purged (the fifth is held)", body)
	}
	if st := f.b.Queues()[0].Stats(); st.Dead != 1 || st.Ready != 1 {
		t.Fatalf("after the purge tasks has %+v; want the held dead item and the ready one", st)
	}
	_, body = f.req("GET", "api/dead?queue=tasks", cookie, "", nil)
	if !strings.Contains(body, `"total":1,`) || !strings.Contains(body, `"items":[]`) {
		t.Fatalf("dead after the purge: %s", body)
	}
	resp, body = f.req("POST", "api/purge", cookie, `{"queue":"tasks"}`, tok)
	wantCode(t, "a purge of nothing", resp, body, 200)
	if body != `{"purged":0}`+"\n" {
		t.Fatalf("a purge of nothing: %s", body)
	}
}

func TestDeadPayloadPreview(t *testing.T) {
	long := strings.Repeat("é", PayloadPreview) // 2 bytes each: the clip cuts a rune
	it := deadItem(queue.Delivery{ID: 1 << 60, Payload: []byte(long)})
	if !it.PayloadIsText || !it.PayloadClipped || it.PayloadBytes != len(long) || it.Payload != strings.Repeat("é", PayloadPreview/2) || it.ID != "1152921504606846976" {
		t.Fatalf("clipped text: %+v", it)
	}
	it = deadItem(queue.Delivery{Payload: []byte{0xff, 0x00, 0x41}})
	if it.PayloadIsText || it.Payload != "ff0041" {
		t.Fatalf("binary: %+v", it)
	}
}

// What a peer can make the master hold is bounded: bodies, sessions,
// login attempts; sessions expire.
func TestBounds(t *testing.T) {
	f := newFixture(t, Config{MaxSessions: 3, LoginBurst: 100, LoginEvery: time.Second, SessionIdle: time.Minute, SessionTTL: time.Hour})
	cookie, csrf := f.login()
	big := `{"queue":"tasks","ids":["` + strings.Repeat("1", MaxBody) + `"]}`
	resp, body := f.req("POST", "api/requeue", cookie, big, map[string]string{"X-CSRF-Token": csrf})
	wantCode(t, "a body over MaxBody", resp, body, 413)
	ids := make([]string, MaxRequeueIDs+1)
	for i := range ids {
		ids[i] = `"1"`
	}
	resp, body = f.req("POST", "api/requeue", cookie, `{"queue":"tasks","ids":[`+strings.Join(ids, ",")+`]}`, map[string]string{"X-CSRF-Token": csrf})
	wantCode(t, "too many ids", resp, body, 413)

	// Three more logins: at most three sessions, the least recently used
	// (the first) is gone.
	f.clock.Add(time.Second)
	for range 3 {
		f.clock.Add(time.Second)
		f.login()
	}
	resp, body = f.req("GET", "api/overview", cookie, "", nil)
	wantCode(t, "the evicted session", resp, body, 401)

	// Idle expiry, then the lifetime.
	f.clock.Add(time.Second)
	c2, _ := f.login()
	f.clock.Add(59 * time.Second)
	resp, body = f.req("GET", "api/overview", c2, "", nil)
	wantCode(t, "a session used within its idle time", resp, body, 200)
	f.clock.Add(time.Minute)
	resp, body = f.req("GET", "api/overview", c2, "", nil)
	wantCode(t, "an idle session", resp, body, 401)
	f.clock.Add(time.Second)
	c3, _ := f.login()
	for range 62 { // 61 min in steps under the idle time
		f.clock.Add(59 * time.Second)
		f.req("GET", "api/session", c3, "", nil)
	}
	resp, body = f.req("GET", "api/overview", c3, "", nil)
	wantCode(t, "a session past its lifetime", resp, body, 401)
}

// Login attempts, right or wrong, are held to LoginBurst at once, then one
// per LoginEvery.
func TestLoginRate(t *testing.T) {
	f := newFixture(t, Config{LoginBurst: 2, LoginEvery: time.Second})
	f.login()
	resp, body := f.req("POST", "api/login", "", `{"credential":"wrong"}`, nil)
	wantCode(t, "a wrong login", resp, body, 401)
	resp, body = f.req("POST", "api/login", "", fmt.Sprintf(`{"credential":%q}`, testCred), nil)
	wantCode(t, "a login past the rate", resp, body, 429)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	f.clock.Add(time.Second)
	resp, body = f.req("POST", "api/login", "", `{"credential":"wrong"}`, nil)
	wantCode(t, "a wrong login after a second", resp, body, 401)
	resp, body = f.req("POST", "api/login", "", fmt.Sprintf(`{"credential":%q}`, testCred), nil)
	wantCode(t, "a second login in that second", resp, body, 429)
	resp, body = f.req("POST", "api/login", "", `{"credential":"`+strings.Repeat("k", MaxBody)+`"}`, nil)
	wantCode(t, "a huge login", resp, body, 429)
	f.clock.Add(time.Second)
	resp, body = f.req("POST", "api/login", "", `{"credential":"`+strings.Repeat("k", MaxBody)+`"}`, nil)
	wantCode(t, "a huge login", resp, body, 413)

}

func TestNewRefuses(t *testing.T) {
	if _, err := New(Config{Credential: []byte("x")}); err == nil {
		t.Error("no controller: accepted")
	}
	if _, err := New(Config{Controller: &BrokerController{}}); err == nil {
		t.Error("no credential: accepted")
	}
}

// On a loopback listener, a Host that is a name other than localhost (a
// rebinding of another site's name to 127.0.0.1) is refused, page and API
// alike; IP addresses and localhost are served.
func TestLoopbackOnlyRefusesOtherNames(t *testing.T) {
	f := newFixture(t, Config{LoopbackOnly: true})
	cookie, _ := f.login() // by the server's IP address
	for _, c := range []struct {
		host string
		code int
	}{
		{"evil.example:9400", 421},
		{"evil.example", 421},
		{"localhost.evil.example:9400", 421},
		{"localhost:9400", 200},
		{"app.localhost:9400", 200},
		{"127.0.0.1:9400", 200},
		{"[::1]:9400", 200},
	} {
		for _, p := range []string{"", "api/overview"} {
			r, _ := http.NewRequest("GET", f.srv.URL+Path+p, nil)
			r.Host = c.host
			r.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Errorf("GET %s with Host %s: %d, want %d", Path+p, c.host, resp.StatusCode, c.code)
			}
		}
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:9400": true, "[::1]:0": true, "localhost:9400": true,
		":9400": false, "0.0.0.0:9400": false, "10.0.0.1:9400": false, "example.com:80": false, "bad": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
