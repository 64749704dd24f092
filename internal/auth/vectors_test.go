package auth

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vectors is testdata/vectors.json: the byte layouts of auth.proto and the
// key-file rule as numbers. The Python client's tests
// (clients/python/tests/test_auth.py) check the same file, so the two
// implementations cannot drift apart.
type vectors struct {
	Key         string `json:"key"`
	ClientNonce string `json:"client_nonce"`
	ServerNonce string `json:"server_nonce"`
	ServerProof string `json:"server_proof"`
	ClientProof string `json:"client_proof"`
	SessionKey  string `json:"session_key"`
	Calls       []struct {
		Method string `json:"method"`
		Seq    string `json:"seq"`
		MAC    string `json:"mac"`
	} `json:"calls"`
	KeyFiles []struct {
		File  string `json:"file"`
		Key   string `json:"key"`
		Error bool   `json:"error"`
	} `json:"key_files"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Calls) == 0 || len(v.KeyFiles) == 0 {
		t.Fatal("testdata/vectors.json has no calls or no key files")
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func TestSharedVectors(t *testing.T) {
	v := loadVectors(t)
	key, cn, sn := unhex(t, v.Key), unhex(t, v.ClientNonce), unhex(t, v.ServerNonce)
	sk := sessionKey(key, cn, sn)
	check := func(name string, got []byte, want string) {
		t.Helper()
		if g := hex.EncodeToString(got); g != want {
			t.Errorf("%s = %s, want %s", name, g, want)
		}
	}
	check("server_proof", serverProof(key, cn, sn), v.ServerProof)
	check("client_proof", clientProof(key, sn, cn), v.ClientProof)
	check("session_key", sk, v.SessionKey)
	for _, c := range v.Calls {
		if _, ok := parseSeq(c.Seq); !ok {
			t.Errorf("seq %q of the vectors is not a valid distq-seq", c.Seq)
		}
		check("mac "+c.Method+" "+c.Seq, callMAC(sk, c.Method, c.Seq), c.MAC)
	}
}

func TestSharedKeyFileVectors(t *testing.T) {
	v := loadVectors(t)
	dir := t.TempDir()
	for i, kf := range v.KeyFiles {
		name := filepath.Join(dir, "key")
		if err := os.WriteFile(name, unhex(t, kf.File), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadKey(name)
		switch {
		case kf.Error && err == nil:
			t.Errorf("file %d (%q): key %q, want an error", i, unhex(t, kf.File), got)
		case !kf.Error && err != nil:
			t.Errorf("file %d (%q): %v", i, unhex(t, kf.File), err)
		case !kf.Error && string(got) != string(unhex(t, kf.Key)):
			t.Errorf("file %d (%q): key %q, want %q", i, unhex(t, kf.File), got, unhex(t, kf.Key))
		}
	}
}
