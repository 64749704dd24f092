package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	m := &Main{stdout: io.Discard, stderr: io.Discard}
	if err := m.ParseFlags([]string{"-n", "200000", "-rate", "4000", "-batch", "50"}); err != nil {
		t.Fatal(err)
	}
	if m.n != 200000 || m.rate != 4000 || m.batch != 50 || !m.closeTasks {
		t.Fatalf("parsed %+v", m)
	}
	for _, bad := range [][]string{{"-n", "0"}, {"-batch", "0"}, {"-batch", "10001"}, {"-rate", "-1"}, {"-slaves", "-1"}, {"-drain", "0s"}, {"stray"}} {
		m := &Main{stdout: io.Discard, stderr: io.Discard}
		if err := m.ParseFlags(bad); err == nil {
			t.Errorf("%s: accepted", strings.Join(bad, " "))
		}
	}
}
