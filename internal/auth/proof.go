package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
)

// Domain-separation labels from auth.proto. Each HMAC use gets its own label
// so that a value computed for one purpose (say, the server proof the master
// hands to anyone who asks) can never serve as another (a client proof).
const (
	labelServer  = "distq-v1 server\n"
	labelClient  = "distq-v1 client\n"
	labelSession = "distq-v1 session\n"
	labelCall    = "distq-v1 call\n"
)

// nonceSize is the length of client and server nonces, in bytes.
const nonceSize = 32

// macSize is the length of an HMAC-SHA256 output, in bytes.
const macSize = sha256.Size

// sum returns HMAC-SHA256(key, label || parts...).
func sum(key []byte, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// serverProof is what the master sends to prove it holds key.
func serverProof(key, clientNonce, serverNonce []byte) []byte {
	return sum(key, labelServer, clientNonce, serverNonce)
}

// clientProof is what the client sends to prove it holds key. The nonces are
// in the opposite order from serverProof, on top of the different label.
func clientProof(key, serverNonce, clientNonce []byte) []byte {
	return sum(key, labelClient, serverNonce, clientNonce)
}

// sessionKey derives the per-session MAC key both sides compute after Login.
func sessionKey(key, clientNonce, serverNonce []byte) []byte {
	return sum(key, labelSession, clientNonce, serverNonce)
}

// callMAC authenticates the opening of one call: its full method path and its
// sequence number, as the exact decimal string sent in distq-seq.
func callMAC(sessionKey []byte, method, seq string) []byte {
	return sum(sessionKey, labelCall, []byte(method), []byte("\n"), []byte(seq))
}

// newNonce draws nonceSize bytes from crypto/rand.
func newNonce() ([]byte, error) {
	b := make([]byte, nonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}
