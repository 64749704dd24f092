package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "authkey")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestLoadKeyFromFile(t *testing.T) {
	t.Setenv(EnvKeyFile, "")
	t.Setenv(EnvKey, "from-env")
	for content, want := range map[string]string{
		"secret":         "secret",
		"secret\n":       "secret",
		"secret\r\n":     "secret",
		"secret\n\n":     "secret\n",
		"  secret  \n":   "  secret  ",
		"sec\nret":       "sec\nret",
		"secret\r":       "secret\r",
		"x\r\n\r\n":      "x\r\n",
		"\x00\xff\x01\n": "\x00\xff\x01",
	} {
		got, err := LoadKey(writeFile(t, content))
		if err != nil || string(got) != want {
			t.Errorf("LoadKey(file %q) = %q, %v; want %q", content, got, err, want)
		}
	}
}

func TestLoadKeyPrecedence(t *testing.T) {
	flagFile, envFile := writeFile(t, "from-flag\n"), writeFile(t, "from-env-file\n")
	t.Setenv(EnvKeyFile, envFile)
	t.Setenv(EnvKey, "from-env")
	check := func(file, want string) {
		t.Helper()
		got, err := LoadKey(file)
		if err != nil || string(got) != want {
			t.Fatalf("LoadKey(%q) = %q, %v; want %q", file, got, err, want)
		}
	}
	check(flagFile, "from-flag")
	check("", "from-env-file")
	t.Setenv(EnvKeyFile, "")
	check("", "from-env")
}

func TestLoadKeyErrors(t *testing.T) {
	t.Setenv(EnvKeyFile, "")
	os.Unsetenv(EnvKey) // t.Setenv above restores the environment afterwards
	t.Setenv(EnvKey, "")
	os.Unsetenv(EnvKey)

	_, err := LoadKey("")
	for _, s := range []string{"-authkey-file", EnvKeyFile, EnvKey} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Fatalf("no key: error %v does not name %s", err, s)
		}
	}

	t.Setenv(EnvKey, "")
	if _, err := LoadKey(""); err == nil {
		t.Fatal("empty $DISTQ_AUTHKEY accepted")
	}
	for _, content := range []string{"", "\n", "\r\n"} {
		if _, err := LoadKey(writeFile(t, content)); err == nil {
			t.Fatalf("empty key file %q accepted", content)
		}
	}
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := LoadKey(missing); err == nil || !strings.Contains(err.Error(), "-authkey-file") {
		t.Fatalf("missing file: %v", err)
	}
	t.Setenv(EnvKeyFile, missing)
	if _, err := LoadKey(""); err == nil || !strings.Contains(err.Error(), EnvKeyFile) {
		t.Fatalf("missing file from env: %v", err)
	}
}

func TestLoadKeyShortKeyAllowed(t *testing.T) {
	t.Setenv(EnvKeyFile, "")
	t.Setenv(EnvKey, "x")
	if k, err := LoadKey(""); err != nil || string(k) != "x" {
		t.Fatalf("LoadKey = %q, %v", k, err)
	}
}
