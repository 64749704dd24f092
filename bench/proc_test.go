package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLineBuffer(t *testing.T) {
	b := newLineBuffer()
	b.Write([]byte("one\ntw"))
	b.Write([]byte("o\nthr"))
	lines, _, closed := b.snapshot()
	if strings.Join(lines, ",") != "one,two" || closed {
		t.Fatalf("lines %q closed %v", lines, closed)
	}
	b.close()
	lines, _, closed = b.snapshot()
	if strings.Join(lines, ",") != "one,two,thr" || !closed {
		t.Fatalf("after close: lines %q closed %v", lines, closed)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 4}
	b.Write([]byte("abc"))
	b.Write([]byte("def"))
	if b.String() != "cdef" {
		t.Errorf("tail = %q", b.String())
	}
}

func TestProcWaitAndKill(t *testing.T) {
	ps := NewProcs()
	defer ps.KillAll()
	ctx := context.Background()

	p, err := ps.Start("echo", "sh", "-c", "echo hello; echo oops >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitLine(ctx, 5*time.Second, func(l string) bool { return l == "hello" }); err != nil {
		t.Fatal(err)
	}
	err = p.Wait(ctx, 5*time.Second)
	var ce *ChildError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "oops") {
		t.Errorf("Wait = %v; want a ChildError carrying stderr", err)
	}

	slow, err := ps.Start("sleeper", "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Wait(ctx, 50*time.Millisecond); !errors.Is(err, errNoExit) {
		t.Errorf("Wait on a sleeper = %v; want errNoExit", err)
	}
	if !slow.Exited() {
		t.Error("the sleeper was not killed")
	}
}
