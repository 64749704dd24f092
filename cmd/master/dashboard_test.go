package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distq/distq/internal/dashboard"
)

// The dashboard's credential: -dashboard-credential-file, else its
// environment variable, else the authkey; a short one is refused.
func TestDashboardCredential(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile := write("flag", "from-the-flag-0123456789\n")
	envFile := write("env", "from-the-environment-0123456789\r\n")
	short := write("short", "short\n")
	key := []byte("the-authkey")

	t.Setenv(dashboard.EnvCredentialFile, "")
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags(nil); err != nil || !m.dashboard {
		t.Fatalf("-dashboard defaults to on: %v %v", m.dashboard, err)
	}
	for _, c := range []struct {
		flag, env, want, from string
	}{
		{"", "", "the-authkey", "the authkey"},
		{"", envFile, "from-the-environment-0123456789", "$" + dashboard.EnvCredentialFile},
		{flagFile, envFile, "from-the-flag-0123456789", "-dashboard-credential-file"},
	} {
		t.Setenv(dashboard.EnvCredentialFile, c.env)
		m.dashCredFile = c.flag
		got, from, err := m.dashboardCredential(key)
		if err != nil || string(got) != c.want || from != c.from {
			t.Errorf("flag %q env %q: %q from %s, %v; want %q from %s", c.flag, c.env, got, from, err, c.want, c.from)
		}
	}
	m.dashCredFile = short
	if _, _, err := m.dashboardCredential(key); err == nil || !strings.Contains(err.Error(), "want 16 to") {
		t.Errorf("a 5-byte credential: %v", err)
	}
	m.dashCredFile = filepath.Join(dir, "missing")
	if _, _, err := m.dashboardCredential(key); err == nil || !strings.Contains(err.Error(), "-dashboard-credential-file") {
		t.Errorf("a missing file: %v", err)
	}
}
