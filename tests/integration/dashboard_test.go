package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/distq/distq"
)

// EnvScreenshot names a file the browser test copies its screenshot to
// (the README's docs/dashboard.png is made with it).
const envScreenshot = "DISTQ_DASHBOARD_SCREENSHOT"

// chromium finds a Chromium or Chrome to drive: $DISTQ_CHROMIUM, else the
// usual names on PATH.
func chromium() (string, error) {
	if p := os.Getenv("DISTQ_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// dashboardURL reads the dashboard's address from the master's log line
// "serving the dashboard: url=…".
func dashboardURL(t *testing.T, p *proc) string {
	t.Helper()
	line := p.waitLine("serving the dashboard", 30*time.Second)
	_, rest, ok := strings.Cut(line, "url=")
	if !ok {
		t.Fatalf("no url in %q", line)
	}
	return strings.Fields(rest)[0]
}

// The dashboard in a real headless Chromium: a master with a producer and
// a slave at work; the page refuses a wrong credential, logs in with the
// dashboard credential, shows the counters moving and the rates drawn,
// lists the slave among the workers and a dead item with its error,
// requeues the item at a click, pauses and resumes a queue, pages through
// more dead items than a page holds, and purges them.
func TestDashboardInABrowser(t *testing.T) {
	browser, err := chromium()
	if err != nil {
		t.Skip("SKIPPED, not tested in a browser: no Chromium found (Debian's chromium package; .ci/run installs it; or set DISTQ_CHROMIUM)")
	}
	key := writeKey(t, testKey)
	const cred = "dashboard-browser-test-credential"
	credFile := filepath.Join(t.TempDir(), "dashboard-credential")
	if err := os.WriteFile(credFile, []byte(cred+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, addr := startMaster(t, key, "-http-addr", "127.0.0.1:0", "-dashboard-credential-file", credFile,
		"-queue", "tasks", "-queue", "results", "-queue", "jobs", "-max-attempts", "1")
	url := dashboardURL(t, m)

	// A dead item in jobs (which no slave reads): taken, failed on its
	// only attempt.
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, 3*time.Minute)
	jobs := c.Queue("jobs")
	deadID, err := jobs.Put(ctx, []byte(`{"report":"q3"}`))
	if err != nil {
		t.Fatal(err)
	}
	task, err := jobs.Lease(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Fail(ctx, fmt.Errorf("render q3: template missing")); err != nil {
		t.Fatal(err)
	}
	waitDead(t, c, "jobs", 1)

	// Work going on: a producer puts numbers into tasks at a steady pace
	// (a load, not a synchronisation), and a slave squares them.
	startSlave(t, "slave", addr, key, "-concurrency", "2")
	pctx, stopProducing := context.WithCancel(ctx)
	produced := make(chan error, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		tasks := c.Queue("tasks")
		for i := 1; ; i++ {
			msgs := make([]distq.Message, 10)
			for j := range msgs {
				msgs[j].Payload = []byte(strconv.Itoa((i*10+j)%100 + 1))
			}
			if _, err := tasks.PutBatch(pctx, msgs); err != nil {
				if pctx.Err() != nil {
					err = nil
				}
				produced <- err
				return
			}
			select {
			case <-pctx.Done():
				produced <- nil
				return
			case <-tick.C:
			}
		}
	}()
	defer func() {
		stopProducing()
		if err := <-produced; err != nil {
			t.Errorf("producer: %v", err)
		}
	}()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // root in CI containers has no user namespace sandbox
		chromedp.WindowSize(1400, 1050),
		chromedp.Flag("disable-gpu", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// A hang bound for every step below, which all wait on events.
	bctx, cancelSteps := context.WithTimeout(bctx, 2*time.Minute)
	defer cancelSteps()

	row := `#queues tbody tr[data-queue="tasks"]`
	type css = chromedp.CSS
	poll := func(expr string) chromedp.Action[chromedp.Void] { return chromedp.Poll[chromedp.Void](expr) }
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(css(`#credential`)),
		// A wrong credential: refused, still on the login form.
		chromedp.SendKeys(css(`#credential`), "not-the-credential"),
		chromedp.Click(css(`#login-submit`)),
		poll(`document.getElementById("login-error").textContent !== ""`),
	)
	if err != nil {
		t.Fatalf("the login page: %v", err)
	}
	if errText := text(`#login-error`); !strings.Contains(errText, "wrong credential") {
		t.Fatalf("after a wrong credential the page says %q", errText)
	}
	err = chromedp.Do(bctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("credential").value = ""`),
		chromedp.SendKeys(css(`#credential`), cred),
		chromedp.Click(css(`#login-submit`)),
		chromedp.WaitVisible(css(`#app`)),
		chromedp.WaitVisible(css(row+` .c-acks`)),
		poll(`document.querySelector('`+row+` .c-acks').textContent !== ""`),
	)
	if err != nil {
		t.Fatalf("logging in: %v", err)
	}
	firstAcks := text(row + ` .c-acks`)
	t.Logf("tasks acked, first seen: %s", firstAcks)
	deadRow := fmt.Sprintf(`#dead tr[data-id="%d"]`, deadID)
	// The counters move, and the rates are drawn from two polls or more.
	err = chromedp.Do(bctx,
		poll(fmt.Sprintf(`document.querySelector('%s .c-acks').textContent !== %q`, row, firstAcks)),
		poll(`parseFloat(document.querySelector('`+row+` .c-r-acks').textContent) > 0`),
		// The dead item of jobs, with its error and payload.
		chromedp.WaitVisible(css(deadRow+` button.requeue`)),
		poll(`document.querySelectorAll('#charts canvas').length >= 6`),
		// The slave, in the workers' table.
		poll(`Array.from(document.querySelectorAll('#workers-table tbody tr')).some((tr) => tr.cells[1].textContent === "tasks")`),
	)
	if err != nil {
		t.Fatalf("watching the counters: %v", err)
	}
	if deadErr, deadPayload := text(deadRow+` td.err`), text(deadRow+` td.payload`); !strings.Contains(deadErr, "render q3: template missing") || deadPayload != `{"report":"q3"}` {
		t.Fatalf("dead item shown as error %q, payload %q", deadErr, deadPayload)
	}
	// Let the charts hold a few seconds of history: wait for fifteen more
	// polls, counted by the page's status line changing.
	for range 15 {
		status := text(`#status`)
		if err := chromedp.Do(bctx, poll(fmt.Sprintf(`document.getElementById("status").textContent !== %q`, status))); err != nil {
			t.Fatalf("waiting for polls: %v", err)
		}
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(shot, []byte("\x89PNG")) {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(shot))
	}
	png := filepath.Join(t.TempDir(), "dashboard.png")
	if dst := os.Getenv(envScreenshot); dst != "" {
		png = dst
	}
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", png, len(shot))

	// Requeue the dead item by clicking: it leaves the dead list and is
	// ready in jobs again.
	err = chromedp.Do(bctx,
		chromedp.Click(css(deadRow+` button.requeue`)),
		chromedp.WaitVisible(css(`#dead-empty`)),
		poll(`document.querySelector('#queues tr[data-queue="jobs"] .c-ready').textContent === "1" &&
			document.querySelector('#queues tr[data-queue="jobs"] .c-dead').textContent === "0"`),
	)
	if err != nil {
		t.Fatalf("requeue by click: %v", err)
	}
	m.waitLine("dashboard: dead items requeued", 30*time.Second)
	if dead, err := jobs.Dead(ctx, 0, 10); err != nil || len(dead) != 0 {
		t.Fatalf("after the click, jobs.dead holds %v (%v)", dead, err)
	}
	// Pause tasks by clicking, then resume it.
	err = chromedp.Do(bctx,
		chromedp.Click(css(row+` button.pause`)),
		poll(`document.querySelector('`+row+` .c-state').textContent === "paused"`),
		poll(`document.querySelector('`+row+` button.pause').textContent === "Resume"`),
	)
	if err != nil {
		t.Fatalf("pause by click: %v", err)
	}
	m.waitLine("dashboard: queue paused or resumed: queue=tasks paused=true", 30*time.Second)
	err = chromedp.Do(bctx,
		chromedp.Click(css(row+` button.pause`)),
		poll(`document.querySelector('`+row+` .c-state').textContent === "open"`),
	)
	if err != nil {
		t.Fatalf("resume by click: %v", err)
	}
	m.waitLine("dashboard: queue paused or resumed: queue=tasks paused=false", 30*time.Second)
	got, err := jobs.GetNowait(ctx)
	if err != nil || got.ID != deadID || string(got.Payload) != `{"report":"q3"}` {
		t.Fatalf("the requeued item: %+v, %v", got, err)
	}

	// More dead items in jobs than a page shows (50): the panel pages
	// through them, stays on its page across polls, and purges them all.
	const many = 60
	msgs := make([]distq.Message, many)
	for i := range msgs {
		msgs[i].Payload = []byte(fmt.Sprintf(`{"report":"r%d"}`, i))
	}
	if _, err := jobs.PutBatch(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	for range many {
		task, err := jobs.Lease(ctx, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Fail(ctx, fmt.Errorf("render: template missing")); err != nil {
			t.Fatal(err)
		}
	}
	waitDead(t, c, "jobs", many)
	deadCount := func(want string) chromedp.Action[chromedp.Void] {
		return poll(fmt.Sprintf(`document.getElementById("dead-count").textContent === %q`, want))
	}
	deadRows := func(n int) chromedp.Action[chromedp.Void] {
		return poll(fmt.Sprintf(`document.querySelectorAll("#dead tbody tr").length === %d`, n))
	}
	err = chromedp.Do(bctx,
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("dead-queue");
			s.value = "jobs"; s.dispatchEvent(new Event("change")); })()`),
		deadCount("items 1–50 of 60"),
		deadRows(50),
		poll(`document.getElementById("dead-prev").disabled && !document.getElementById("dead-next").disabled`),
		chromedp.Click(css(`#dead-next`)),
		deadCount("items 51–60 of 60"),
		deadRows(10),
		poll(`!document.getElementById("dead-prev").disabled && document.getElementById("dead-next").disabled`),
	)
	if err != nil {
		t.Fatalf("paging the dead items: %v", err)
	}
	// Two more polls: still on the second page.
	for range 2 {
		status := text(`#status`)
		if err := chromedp.Do(bctx, poll(fmt.Sprintf(`document.getElementById("status").textContent !== %q`, status))); err != nil {
			t.Fatalf("waiting for polls: %v", err)
		}
	}
	if got := text(`#dead-count`); got != "items 51–60 of 60" {
		t.Fatalf("after two polls the panel shows %q", got)
	}

	// Purge dead, the confirm dialog accepted through the DevTools
	// protocol as a user would click OK; the panel steps back from its
	// second page, now past the end, to an empty first one.
	type dialog struct {
		msg string
		err error
	}
	dctx, stopDialogs := context.WithCancel(bctx)
	defer stopDialogs()
	dialogs := chromedp.Events(dctx, page.JavascriptDialogOpening)
	accepted := make(chan dialog, 1)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			_, err := chromedp.Call(dctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			select {
			case accepted <- dialog{ev.Message, err}:
			default:
			}
		}
	}()
	if err := chromedp.Do(bctx, chromedp.Click(css(`#purge-dead`))); err != nil {
		t.Fatalf("clicking Purge dead: %v", err)
	}
	select {
	case d := <-accepted:
		if d.err != nil || !strings.Contains(d.msg, "jobs") {
			t.Fatalf("the confirm dialog %q: %v", d.msg, d.err)
		}
	case <-bctx.Done():
		t.Fatal("Purge dead asked nothing")
	}
	err = chromedp.Do(bctx,
		chromedp.WaitVisible(css(`#dead-empty`)),
		deadCount("0 dead"),
		poll(`document.querySelector('#queues tr[data-queue="jobs"] .c-dead').textContent === "0"`),
		poll(`document.getElementById("purge-dead").disabled && document.getElementById("dead-next").disabled`),
	)
	if err != nil {
		t.Fatalf("purge by click: %v", err)
	}
	m.waitLine(fmt.Sprintf("dashboard: dead items purged: queue=jobs purged=%d", many), 30*time.Second)
	if st, err := jobs.Stats(ctx); err != nil || st.Dead != 0 || st.Ready != 0 {
		t.Fatalf("after the purge jobs has %+v (%v); want nothing dead, nothing ready", st, err)
	}
}
