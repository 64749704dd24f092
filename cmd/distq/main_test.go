package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/distq/distq"
)

func newTestMain() (*Main, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return NewMain(strings.NewReader(""), &stdout, &stderr), &stdout, &stderr
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(m *Main) bool
	}{
		{[]string{"stats"}, func(m *Main) bool { return m.cmd.name == "stats" && !m.json && len(m.args) == 0 }},
		{[]string{"-master", "h:1", "stats", "-json", "tasks", "results"}, func(m *Main) bool {
			return m.conn.Master == "h:1" && m.json && slices.Equal(m.args, []string{"tasks", "results"})
		}},
		// connection flags after the command, flags after arguments
		{[]string{"dead", "tasks", "-limit", "5", "-master", "h:2", "-offset", "10"}, func(m *Main) bool {
			return m.queue == "tasks" && m.limit == 5 && m.offset == 10 && m.conn.Master == "h:2"
		}},
		{[]string{"peek", "tasks"}, func(m *Main) bool { return m.limit == 20 && m.offset == 0 }},
		{[]string{"requeue", "tasks", "3", "1", "3"}, func(m *Main) bool { return slices.Equal(m.ids, []uint64{3, 1}) && !m.all }},
		{[]string{"requeue", "-all", "tasks"}, func(m *Main) bool { return m.all && len(m.ids) == 0 }},
		{[]string{"put", "tasks", "a", "b"}, func(m *Main) bool { return slices.Equal(m.args, []string{"a", "b"}) }},
		{[]string{"put", "tasks", "--", "-1", "-ids"}, func(m *Main) bool { return slices.Equal(m.args, []string{"-1", "-ids"}) && !m.printIDs }},
		{[]string{"put", "-nowait", "-ids", "tasks"}, func(m *Main) bool { return m.nowait && m.printIDs && len(m.args) == 0 }},
		{[]string{"get", "results"}, func(m *Main) bool { return m.n == 1 && m.timeout == 0 && !m.nowait }},
		{[]string{"get", "-n", "7", "-timeout", "2s", "results"}, func(m *Main) bool { return m.n == 7 && m.timeout == 2*time.Second }},
		{[]string{"get", "-nowait", "results", "-n", "3"}, func(m *Main) bool { return m.nowait && m.n == 3 }},
		{[]string{"watch", "-count", "3", "-interval", "50ms", "tasks"}, func(m *Main) bool {
			return m.count == 3 && m.interval == 50*time.Millisecond && slices.Equal(m.args, []string{"tasks"})
		}},
		{[]string{"close", "tasks"}, func(m *Main) bool { return m.queue == "tasks" }},
		{[]string{"-connect-timeout", "2s", "stats"}, func(m *Main) bool { return m.connectTimeout == 2*time.Second }},
	} {
		m, _, _ := newTestMain()
		if err := m.ParseFlags(tc.args); err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !tc.check(m) {
			t.Errorf("%q: parsed %+v", tc.args, m)
		}
	}
}

func TestParseFlagsBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"stats", "-frob"},
		{"-master"},
		{"peek"},
		{"peek", ""},
		{"peek", "tasks", "extra"},
		{"peek", "-limit", "0", "tasks"},
		{"peek", "-limit", "10001", "tasks"},
		{"dead", "-offset", "-1", "tasks"},
		{"requeue", "tasks"},
		{"requeue", "-all", "tasks", "3"},
		{"requeue", "tasks", "x"},
		{"requeue", "tasks", "0"},
		{"close", "tasks", "results"},
		{"get", "-n", "0", "results"},
		{"get", "-nowait", "-timeout", "1s", "results"},
		{"get", "-timeout", "-1s", "results"},
		{"get", "results", "extra"},
		{"put", "-nowait", "-timeout", "1s", "tasks"},
		{"watch", "-interval", "1ms"},
		{"watch", "-count", "-1"},
		{"-connect-timeout", "0s", "stats"},
		{"help", "frobnicate"},
	} {
		m, stdout, stderr := newTestMain()
		code := m.Main(context.Background(), args)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "distq: ") || strings.HasPrefix(lines[0], "distq: distq:") ||
			!strings.HasPrefix(lines[1], "run 'distq") {
			t.Errorf("%q: stderr %q, want one error line and a hint", args, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q", args, stdout.String())
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}} {
		m, stdout, stderr := newTestMain()
		if code := m.Main(context.Background(), args); code != exitOK {
			t.Fatalf("%q: exit %d", args, code)
		}
		out := stdout.String()
		for _, want := range []string{"Usage:", "Exit status:", "-authkey-file", "DISTQ_AUTHKEY_FILE", "DISTQ_AUTHKEY ", "Examples:"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: help lacks %q", args, want)
			}
		}
		for _, c := range commands {
			if !strings.Contains(out, "\n  "+c.name+" ") {
				t.Errorf("%q: help does not list %s", args, c.name)
			}
		}
		if stderr.Len() != 0 {
			t.Errorf("%q: stderr %q", args, stderr.String())
		}
	}
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "-h"}, {"help", c.name}} {
			m, stdout, _ := newTestMain()
			if code := m.Main(context.Background(), args); code != exitOK {
				t.Fatalf("%q: exit %d", args, code)
			}
			out := stdout.String()
			for _, want := range []string{"Usage: distq " + c.name, "Example", "-master", "Exit status"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q: help lacks %q:\n%s", args, want, out)
				}
			}
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, exitOK},
		{usagef("bad"), exitUsage},
		{&connectError{errors.New("no authkey")}, exitConnect},
		{fmt.Errorf("master x: %w", distq.ErrAuthFailed), exitConnect},
		{fmt.Errorf("master x: %w", distq.ErrMasterUnverified), exitConnect},
		{&distq.Error{Kind: distq.ErrUnavailable, Msg: "gone", Code: codes.Unavailable}, exitConnect},
		{&distq.Error{Kind: distq.ErrUnknownQueue, Msg: `unknown queue "x"`, Code: codes.NotFound}, exitFailed},
		{&distq.Error{Kind: distq.ErrFull, Msg: "full", Code: codes.ResourceExhausted}, exitFailed},
		{&distq.Error{Kind: distq.ErrClosed, Msg: "closed", Code: codes.FailedPrecondition}, exitFailed},
		{&kindError{"queue t is empty", distq.ErrEmpty}, exitEmpty},
		{&kindError{"queue t is closed and drained", errDrained}, exitDrained},
		{context.Canceled, exitFailed},
		{errors.New("anything else"), exitFailed},
	} {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

func TestCleanMessage(t *testing.T) {
	for in, want := range map[string]string{
		"distq: queue full: distq: queue full: \"tasks\" holds 5 items": `queue full: "tasks" holds 5 items`,
		"distq: distq: too many open streams (ResourceExhausted)":       "too many open streams (ResourceExhausted)",
		"distq: unknown queue: distq: unknown queue \"nope\"":           `unknown queue "nope"`,
		"master 127.0.0.1:4000: distq: master unavailable: gone":        "master 127.0.0.1:4000: master unavailable: gone",
		"auth: authkey from $DISTQ_AUTHKEY is empty":                    "auth: authkey from $DISTQ_AUTHKEY is empty",
		"queue closed: \"tasks\"":                                       "queue closed: \"tasks\"",
	} {
		if got := cleanMessage(in); got != want {
			t.Errorf("cleanMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNoKey: without a key the tool says so once and exits 3, before it
// tries the network.
func TestNoKey(t *testing.T) {
	t.Setenv("DISTQ_AUTHKEY_FILE", "")
	t.Setenv("DISTQ_AUTHKEY", "")
	os.Unsetenv("DISTQ_AUTHKEY")
	m, stdout, stderr := newTestMain()
	if code := m.Main(context.Background(), []string{"-master", "127.0.0.1:1", "stats"}); code != exitConnect {
		t.Fatalf("exit %d, want %d", code, exitConnect)
	}
	if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "-authkey-file") || stdout.Len() != 0 {
		t.Fatalf("stderr %q, stdout %q", got, stdout.String())
	}
}

// TestUnreachable: a master that refuses connections is exit 3, one line.
func TestUnreachable(t *testing.T) {
	t.Setenv("DISTQ_AUTHKEY", "a key long enough for the test")
	t.Setenv("DISTQ_AUTHKEY_FILE", "")
	m, _, stderr := newTestMain()
	if code := m.Main(context.Background(), []string{"-master", "127.0.0.1:1", "-connect-timeout", "5s", "stats"}); code != exitConnect {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitConnect, stderr.String())
	}
	if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "distq: master 127.0.0.1:1: ") {
		t.Fatalf("stderr %q", got)
	}
}

func TestPutLinesBatches(t *testing.T) {
	var in strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&in, "%d\n", i)
	}
	in.WriteString("last line without newline")
	var sizes []int
	var all []string
	err := putLines(strings.NewReader(in.String()), func(msgs []distq.Message) error {
		sizes = append(sizes, len(msgs))
		for _, m := range msgs {
			all = append(all, string(m.Payload))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{1000, 1000, 501}) || all[0] != "0" || all[2499] != "2499" || all[2500] != "last line without newline" {
		t.Fatalf("batches %v, first %q, last %q", sizes, all[0], all[len(all)-1])
	}
	// A failed batch stops the rest.
	calls := 0
	err = putLines(strings.NewReader(in.String()), func([]distq.Message) error { calls++; return errors.New("refused") })
	if err == nil || calls != 1 {
		t.Fatalf("after a failed batch: err %v, %d calls", err, calls)
	}
}
