package dashboard

import (
	"fmt"
	"os"
	"strings"
)

// EnvCredentialFile names the environment variable that gives
// -dashboard-credential-file.
const EnvCredentialFile = "DISTQ_DASHBOARD_CREDENTIAL_FILE"

// MinCredential is the shortest dashboard credential a file may hold.
const MinCredential = 16

// ReadCredential reads a dashboard credential from file (source names
// where the name came from, for the error). Like an authkey file, one
// trailing "\n" or "\r\n" is trimmed; it must be MinCredential to
// MaxCredential bytes.
func ReadCredential(file, source string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("dashboard credential (%s): %w", source, err)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	if len(s) < MinCredential || len(s) > MaxCredential {
		return nil, fmt.Errorf("dashboard credential file %q (%s) holds %d bytes: want %d to %d (e.g. head -c 24 /dev/urandom | base64)",
			file, source, len(s), MinCredential, MaxCredential)
	}
	return []byte(s), nil
}
