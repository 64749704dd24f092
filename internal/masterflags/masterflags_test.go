package masterflags

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, f *Flags, args ...string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterTwiceKeepsWhatWasParsed(t *testing.T) {
	var f Flags
	parse(t, &f)
	if f.Master != DefaultMaster {
		t.Fatalf("default master %q, want %q", f.Master, DefaultMaster)
	}
	parse(t, &f, "-master", "10.0.0.1:4000", "-authkey-file", "k")
	parse(t, &f, "-tls-ca", "ca.pem")
	if f.Master != "10.0.0.1:4000" || f.AuthkeyFile != "k" || f.TLSCA != "ca.pem" {
		t.Fatalf("after two parses: %+v", f)
	}
}

func TestOptions(t *testing.T) {
	t.Setenv("DISTQ_AUTHKEY_FILE", "")
	t.Setenv("DISTQ_AUTHKEY", "")
	os.Unsetenv("DISTQ_AUTHKEY")
	var f Flags
	parse(t, &f)
	if _, err := f.Options(); err == nil || !strings.Contains(err.Error(), "-authkey-file") {
		t.Fatalf("no key: error %v, want one naming -authkey-file", err)
	}
	t.Setenv("DISTQ_AUTHKEY", "from-env")
	o, err := f.Options()
	if err != nil || string(o.AuthKey) != "from-env" || o.TLS != nil {
		t.Fatalf("key from the environment: %v, %+v", err, o)
	}
	file := filepath.Join(t.TempDir(), "authkey")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse(t, &f, "-authkey-file", file)
	if o, err = f.Options(); err != nil || string(o.AuthKey) != "from-file" {
		t.Fatalf("key from -authkey-file: %v, %q", err, o.AuthKey)
	}
	parse(t, &f, "-tls-cert", "c.pem")
	if _, err := f.Options(); err == nil || !strings.Contains(err.Error(), "-tls-ca") {
		t.Fatalf("-tls-cert without -tls-ca: %v", err)
	}
}
