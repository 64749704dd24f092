package auth

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// EnvKey names the environment variable that holds the authkey itself.
const EnvKey = "DISTQ_AUTHKEY"

// EnvKeyFile names the environment variable that holds the path of a file
// containing the authkey. A file keeps the key out of `ps` and shell history,
// so it is preferred over EnvKey when both are set.
const EnvKeyFile = "DISTQ_AUTHKEY_FILE"

// LoadKey returns the authkey, looked up in this order:
//
//  1. the file named by file (the -authkey-file flag), if file != "";
//  2. the file named by $DISTQ_AUTHKEY_FILE, if set and non-empty;
//  3. the value of $DISTQ_AUTHKEY.
//
// Exactly one trailing "\n" or "\r\n" is trimmed from a file's contents, since
// editors and `echo` add one; anything else is part of the key. An empty key is
// an error: HMAC would accept it, but it would protect nothing. Short keys are
// returned as they are; warning about them is the caller's business.
func LoadKey(file string) ([]byte, error) {
	if file != "" {
		return readKeyFile(file, "-authkey-file")
	}
	if f := os.Getenv(EnvKeyFile); f != "" {
		return readKeyFile(f, "$"+EnvKeyFile)
	}
	v, ok := os.LookupEnv(EnvKey)
	if !ok {
		return nil, errors.New("auth: no authkey: set -authkey-file, $" + EnvKeyFile + " or $" + EnvKey)
	}
	if v == "" {
		return nil, errors.New("auth: authkey from $" + EnvKey + " is empty")
	}
	return []byte(v), nil
}

// readKeyFile reads a key file; source says where its name came from, so the
// error tells the operator what to fix.
func readKeyFile(name, source string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("auth: reading authkey file (%s): %w", source, err)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	if s == "" {
		return nil, fmt.Errorf("auth: authkey file %q (%s) is empty", name, source)
	}
	return []byte(s), nil
}
