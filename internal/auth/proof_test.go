package auth

import (
	"encoding/hex"
	"testing"
)

// TestProofVectors pins the byte layouts of auth.proto with values computed
// independently (Python's hmac module), so that clients in other languages
// can check themselves against the same numbers.
func TestProofVectors(t *testing.T) {
	key := []byte("correct horse battery staple")
	cn, sn := make([]byte, 32), make([]byte, 32)
	for i := range 32 {
		cn[i], sn[i] = byte(i), byte(32+i)
	}
	sk := sessionKey(key, cn, sn)
	for _, tc := range []struct{ name, got, want string }{
		{"server_proof", hex.EncodeToString(serverProof(key, cn, sn)), "3763b70a274ff33fd120fc3e3a0a3c52d1939578faadb4874f7213e9dd53ed01"},
		{"client_proof", hex.EncodeToString(clientProof(key, sn, cn)), "dc8972747b0f71d72ff2f9cdce05146aa5fd652c49bfbc965da69bd15ae95a7c"},
		{"session_key", hex.EncodeToString(sk), "c02c2caddd4cdd665dd2ca085c80994cb026f5f2119b3de58787f306a5b638f2"},
		{"call mac", hex.EncodeToString(callMAC(sk, "/distq.v1.QueueService/Stats", "1")), "6c5bb72d2bbe6eb24413bea040c46d6aa2724f446d4bce09822fa20f39062a72"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}
