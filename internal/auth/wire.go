package auth

import (
	"encoding/hex"
	"strings"
)

// Metadata keys of an authenticated call (auth.proto).
const (
	mdSession = "distq-session"
	mdSeq     = "distq-seq"
	mdMAC     = "distq-mac"
)

// exemptPrefixes lists the method paths that need no session: the handshake
// itself, and the health and reflection services that load balancers and
// tooling call without the key.
var exemptPrefixes = [...]string{
	"/distq.v1.AuthService/",
	"/grpc.health.v1.Health/",
	"/grpc.reflection.",
}

// exempt reports whether calls to method skip the per-call check. Client and
// server use the same list, so the client never spends a seq on a call the
// server will not check.
func exempt(method string) bool {
	for _, p := range exemptPrefixes {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// maxSeqDigits is the number of digits of the largest uint64.
const maxSeqDigits = 20

// parseSeq parses distq-seq strictly: 1 to 20 ASCII digits, no sign, no
// spaces, no leading zero, non-zero, no overflow. Being strict gives every seq
// exactly one spelling, so the string under the MAC and the number in the
// replay window can never disagree.
func parseSeq(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > maxSeqDigits || s[0] == '0' {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseMAC decodes distq-mac, which must be exactly 64 lowercase hex digits.
func parseMAC(s string) ([]byte, bool) {
	if len(s) != 2*macSize {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, false
		}
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

// validSessionID reports whether id looks like a session id a master could
// have issued: lowercase hex, and not absurdly long. The client checks it
// before it puts the id into metadata of every call.
func validSessionID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
