// Package dashboard is the master's web dashboard, served on -http-addr
// beside /metrics: the queues with their depths and rates drawn as charts,
// the connected workers, the dead items with their last errors a page at
// a time, and buttons to requeue or purge them, to pause and resume a
// queue and to close it.
//
// Everything the page needs is embedded in the binary (assets/): a page,
// a style sheet and a small script that draws its own charts; nothing is
// fetched from anywhere else. The page talks to small JSON endpoints under
// /dashboard/api/ that call the broker in process (through a Controller).
//
// Access: nothing but the login page and its two static files is served
// without a session. A session is had by posting the credential (the
// authkey, or the dashboard credential the operator gave the master),
// compared in constant time; it lives in an HttpOnly, SameSite=Strict
// cookie and ends after an idle time, a lifetime, or at logout. Every
// POST must be JSON (which a cross-site form cannot send), must come from
// the page's own origin when the browser says where it comes from, and,
// except the login, must carry the session's CSRF token. Login attempts,
// sessions and request bodies are bounded.
package dashboard

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/queue"
)

// Path is where the dashboard is served.
const Path = "/dashboard/"

// CookieName names the session cookie.
const CookieName = "distq_dashboard"

// Defaults for Config fields left zero, and fixed bounds.
const (
	DefaultMaxSessions = 16
	DefaultSessionTTL  = 12 * time.Hour
	DefaultSessionIdle = time.Hour
	// DefaultLoginBurst login attempts may come at once; after them, one
	// per DefaultLoginEvery, from everyone together.
	DefaultLoginBurst = 5
	DefaultLoginEvery = time.Second

	// MaxBody bounds the body of every POST.
	MaxBody = 64 << 10
	// MaxRequeueIDs bounds the ids of one requeue.
	MaxRequeueIDs = 1000
	// MaxDeadPage bounds a page of dead items; DefaultDeadPage is the
	// page's size when it names none.
	MaxDeadPage     = 200
	DefaultDeadPage = 50
	// MaxCredential bounds the credential a login may post.
	MaxCredential = 4096
)

// Config configures a Dashboard.
type Config struct {
	// Controller is the broker (required).
	Controller Controller
	// Credential is what a login must post (required; the authkey, or
	// the dashboard credential).
	Credential []byte
	// Logger logs logins and actions; nil logs nothing.
	Logger hclog.Logger
	// MaxSessions bounds the sessions held at once (DefaultMaxSessions):
	// a login past it ends the least recently used session.
	MaxSessions int
	// SessionTTL ends a session this long after its login
	// (DefaultSessionTTL); SessionIdle ends it after this long without a
	// request (DefaultSessionIdle).
	SessionTTL, SessionIdle time.Duration
	// LoginBurst and LoginEvery bound login attempts: LoginBurst at once,
	// then one per LoginEvery (DefaultLoginBurst, DefaultLoginEvery).
	LoginBurst int
	LoginEvery time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// LoopbackOnly refuses requests whose Host header is a name other
	// than localhost: a page of another site whose name was made to
	// resolve to 127.0.0.1 (DNS rebinding) is then refused outright.
	// Set it when the listener is bound to a loopback address.
	LoopbackOnly bool
}

// Dashboard serves the page and its API.
type Dashboard struct {
	ctl      Controller
	cred     []byte
	log      hclog.Logger
	sessions *sessions
	logins   *bucket
	ttl      time.Duration
	now      func() time.Time
	loopback bool
}

//go:embed assets
var assets embed.FS

// New checks cfg and returns a Dashboard.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Controller == nil {
		return nil, errors.New("dashboard: no controller")
	}
	if len(cfg.Credential) == 0 {
		return nil, errors.New("dashboard: empty credential")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = DefaultLoginBurst
	}
	if cfg.LoginEvery <= 0 {
		cfg.LoginEvery = DefaultLoginEvery
	}
	return &Dashboard{
		ctl:      cfg.Controller,
		cred:     append([]byte(nil), cfg.Credential...),
		log:      cfg.Logger,
		sessions: newSessions(cfg.MaxSessions, cfg.SessionTTL, cfg.SessionIdle, cfg.Now),
		logins:   newBucket(cfg.LoginBurst, cfg.LoginEvery, cfg.Now),
		ttl:      cfg.SessionTTL,
		now:      cfg.Now,
		loopback: cfg.LoopbackOnly,
	}, nil
}

// Register adds the dashboard's routes to mux: the page at Path, its API
// under Path+"api/", and a redirect from "/" to Path.
func (d *Dashboard) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "assets")
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFileFS(w, r, static, "index.html") })
	mux.Handle("GET /{$}", http.RedirectHandler(Path, http.StatusFound))
	mux.Handle("GET "+Path+"{$}", d.headers(page, false))
	mux.Handle("GET "+Path+"static/", d.headers(http.StripPrefix(Path+"static/", http.FileServerFS(static)), false))
	mux.Handle("POST "+Path+"api/login", d.headers(http.HandlerFunc(d.login), true))
	mux.Handle("GET "+Path+"api/session", d.headers(d.authed(d.session), true))
	mux.Handle("POST "+Path+"api/logout", d.headers(d.action(d.logout), true))
	mux.Handle("GET "+Path+"api/overview", d.headers(d.authed(d.overview), true))
	mux.Handle("GET "+Path+"api/dead", d.headers(d.authed(d.dead), true))
	mux.Handle("POST "+Path+"api/requeue", d.headers(d.action(d.requeue), true))
	mux.Handle("POST "+Path+"api/purge", d.headers(d.action(d.purge), true))
	mux.Handle("POST "+Path+"api/pause", d.headers(d.action(d.pause), true))
	mux.Handle("POST "+Path+"api/close", d.headers(d.action(d.close), true))
}

// csp allows the page its own script, style and connections only, and no
// framing (no clickjacking of its buttons).
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// headers sets the headers every dashboard response carries; noStore keeps
// API answers out of every cache. With LoopbackOnly it first refuses a
// Host that is a name other than localhost.
func (d *Dashboard) headers(h http.Handler, noStore bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.loopback && !loopbackHost(r.Host) {
			fail(w, http.StatusMisdirectedRequest, "this dashboard is served on a loopback address: use an IP address or localhost in the URL")
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		if noStore {
			hd.Set("Cache-Control", "no-store")
		} else {
			hd.Set("Cache-Control", "no-cache")
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names the machine itself in
// a way no other site's page can: an IP address, or localhost.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// IsLoopback reports whether addr (host:port, as -http-addr takes it)
// binds a loopback address only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.IsLoopback()
	}
	return strings.EqualFold(host, "localhost")
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// failErr answers err of the controller with its status.
func (d *Dashboard) failErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, queue.ErrUnknownQueue):
		code = http.StatusNotFound
	case errors.Is(err, queue.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnsupported):
		code = http.StatusNotImplemented
	case errors.Is(err, queue.ErrShutdown), errors.Is(err, queue.ErrNoSpace),
		errors.Is(err, queue.ErrLogUnavailable), errors.Is(err, queue.ErrLogClosed):
		code = http.StatusServiceUnavailable
	default:
		d.log.Error("dashboard action failed", "error", err)
	}
	fail(w, code, err.Error())
}

// sessionOf returns the request's session's CSRF token.
func (d *Dashboard) sessionOf(r *http.Request) (id, csrf string, ok bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return "", "", false
	}
	csrf, ok = d.sessions.get(c.Value)
	return c.Value, csrf, ok
}

// authed serves h to requests of a live session only.
func (d *Dashboard) authed(h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, csrf, ok := d.sessionOf(r)
		if !ok {
			fail(w, http.StatusUnauthorized, "log in first")
			return
		}
		h(w, r, csrf)
	})
}

// sameOrigin refuses a POST that is not JSON, or that the browser says
// comes from another origin. A cross-site form cannot send JSON, and a
// cross-site script that tries is stopped by CORS's preflight, which the
// dashboard never answers; the Origin check refuses it again, and the CSRF
// token once more.
func sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(strings.ToLower(mt)) != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, "want Content-Type: application/json")
		return false
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		fail(w, http.StatusForbidden, "cross-site request refused")
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host || (u.Scheme != "http" && u.Scheme != "https") {
			fail(w, http.StatusForbidden, "cross-origin request refused")
			return false
		}
	}
	return true
}

// action serves h to a same-origin JSON POST of a live session that
// carries the session's CSRF token; h gets the session's id.
func (d *Dashboard) action(h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(w, r) {
			return
		}
		id, csrf, ok := d.sessionOf(r)
		if !ok {
			fail(w, http.StatusUnauthorized, "log in first")
			return
		}
		if !equal([]byte(r.Header.Get("X-CSRF-Token")), []byte(csrf)) {
			fail(w, http.StatusForbidden, "missing or wrong CSRF token")
			return
		}
		h(w, r, id)
	})
}

// decode reads a JSON body of at most MaxBody bytes into v.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBody))
			return false
		}
		fail(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

type loginRequest struct {
	Credential string `json:"credential"`
}

type sessionInfo struct {
	CSRF     string   `json:"csrf"`
	Features Features `json:"features"`
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	if ok, retry := d.logins.take(); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)+1))
		fail(w, http.StatusTooManyRequests, "too many login attempts; try again shortly")
		return
	}
	var req loginRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Credential) > MaxCredential || !equal([]byte(req.Credential), d.cred) {
		d.log.Warn("dashboard login refused: wrong credential", "peer", r.RemoteAddr)
		fail(w, http.StatusUnauthorized, "wrong credential")
		return
	}
	id, csrf := d.sessions.create()
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    id,
		Path:     Path,
		MaxAge:   int(d.ttl / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil,
	})
	d.log.Info("dashboard login", "peer", r.RemoteAddr, "sessions", d.sessions.len())
	writeJSON(w, http.StatusOK, sessionInfo{CSRF: csrf, Features: d.ctl.Features()})
}

func (d *Dashboard) session(w http.ResponseWriter, _ *http.Request, csrf string) {
	writeJSON(w, http.StatusOK, sessionInfo{CSRF: csrf, Features: d.ctl.Features()})
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, id string) {
	d.sessions.delete(id)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Path, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, struct{}{})
}

// Overview is the answer of api/overview.
type Overview struct {
	// Now is the master's clock in Unix milliseconds: the page computes
	// rates over the master's time between two overviews.
	Now      int64       `json:"now"`
	Queues   []QueueView `json:"queues"`
	Features Features    `json:"features"`
	// Workers is null when the master cannot list them.
	Workers []Worker `json:"workers"`
}

func (d *Dashboard) overview(w http.ResponseWriter, _ *http.Request, _ string) {
	ov := Overview{Now: d.now().UnixMilli(), Queues: d.ctl.Queues(), Features: d.ctl.Features()}
	if ov.Queues == nil {
		ov.Queues = []QueueView{}
	}
	if ov.Features.Workers {
		ws, err := d.ctl.Workers()
		if err != nil {
			d.failErr(w, err)
			return
		}
		ov.Workers = append([]Worker{}, ws...)
	}
	writeJSON(w, http.StatusOK, ov)
}

// intParam reads a whole number from 0 to max from the query; absent, it
// is def.
func intParam(r *http.Request, name string, def, max int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("%s %q: want a whole number from 0 to %d", name, s, max)
	}
	return n, nil
}

func (d *Dashboard) dead(w http.ResponseWriter, r *http.Request, _ string) {
	name := r.URL.Query().Get("queue")
	offset, err := intParam(r, "offset", 0, 1<<30)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := intParam(r, "limit", DefaultDeadPage, MaxDeadPage)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := d.ctl.Dead(r.Context(), name, offset, limit)
	if err != nil {
		d.failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

type requeueRequest struct {
	Queue string   `json:"queue"`
	IDs   []string `json:"ids"`
	All   bool     `json:"all"`
}

func (d *Dashboard) requeue(w http.ResponseWriter, r *http.Request, _ string) {
	var req requeueRequest
	if !decode(w, r, &req) {
		return
	}
	if req.All == (len(req.IDs) > 0) {
		fail(w, http.StatusBadRequest, "name the ids to requeue, or all, not both")
		return
	}
	if len(req.IDs) > MaxRequeueIDs {
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("at most %d ids at once", MaxRequeueIDs))
		return
	}
	ids := make([]uint64, 0, len(req.IDs))
	for _, s := range req.IDs {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail(w, http.StatusBadRequest, fmt.Sprintf("id %q is not a whole number", s))
			return
		}
		ids = append(ids, id)
	}
	n, err := d.ctl.Requeue(r.Context(), req.Queue, ids)
	if err != nil {
		d.failErr(w, err)
		return
	}
	d.log.Info("dashboard: dead items requeued", "queue", req.Queue, "asked", askedText(req.All, len(ids)), "moved", n, "peer", r.RemoteAddr)
	writeJSON(w, http.StatusOK, struct {
		Moved int `json:"moved"`
	}{n})
}

// queueRequest names the queue of an action that takes nothing else.
type queueRequest struct {
	Queue string `json:"queue"`
}

// purge throws away the dead items of the queue named (its origin's name,
// as api/dead takes it): a dead item an operator has looked at and will
// never run need not sit in the dead-letter queue for ever.
func (d *Dashboard) purge(w http.ResponseWriter, r *http.Request, _ string) {
	var req queueRequest
	if !decode(w, r, &req) {
		return
	}
	n, err := d.ctl.Purge(r.Context(), req.Queue)
	if err != nil {
		d.failErr(w, err)
		return
	}
	d.log.Info("dashboard: dead items purged", "queue", req.Queue, "purged", n, "peer", r.RemoteAddr)
	writeJSON(w, http.StatusOK, struct {
		Purged int `json:"purged"`
	}{n})
}

func askedText(all bool, n int) string {
	if all {
		return "all"
	}
	return strconv.Itoa(n)
}

type pauseRequest struct {
	Queue  string `json:"queue"`
	Paused bool   `json:"paused"`
}

func (d *Dashboard) pause(w http.ResponseWriter, r *http.Request, _ string) {
	var req pauseRequest
	if !decode(w, r, &req) {
		return
	}
	if err := d.ctl.SetPaused(r.Context(), req.Queue, req.Paused); err != nil {
		d.failErr(w, err)
		return
	}
	d.log.Info("dashboard: queue paused or resumed", "queue", req.Queue, "paused", req.Paused, "peer", r.RemoteAddr)
	writeJSON(w, http.StatusOK, req)
}

func (d *Dashboard) close(w http.ResponseWriter, r *http.Request, _ string) {
	var req queueRequest
	if !decode(w, r, &req) {
		return
	}
	if err := d.ctl.Close(r.Context(), req.Queue); err != nil {
		d.failErr(w, err)
		return
	}
	d.log.Info("dashboard: queue closed", "queue", req.Queue, "peer", r.RemoteAddr)
	writeJSON(w, http.StatusOK, req)
}
