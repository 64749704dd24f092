package auth

import (
	"strings"
	"testing"
)

func TestParseSeq(t *testing.T) {
	for s, want := range map[string]uint64{
		"1":                    1,
		"42":                   42,
		"4096":                 4096,
		"18446744073709551615": 1<<64 - 1,
	} {
		if got, ok := parseSeq(s); !ok || got != want {
			t.Errorf("parseSeq(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{
		"", "0", "00", "01", "+1", "-1", " 1", "1 ", "1\n", "1_000", "0x10", "1e3", "½",
		"18446744073709551616", "99999999999999999999", "100000000000000000000",
	} {
		if got, ok := parseSeq(s); ok {
			t.Errorf("parseSeq(%q) = %d, accepted", s, got)
		}
	}
}

func TestParseMAC(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	if b, ok := parseMAC(good); !ok || len(b) != 32 {
		t.Fatalf("parseMAC(good) = %x, %v", b, ok)
	}
	for _, s := range []string{
		"", good[:63], good + "0", strings.ToUpper(good), good[:62] + "0g", " " + good[1:], good[:63] + "\n",
	} {
		if _, ok := parseMAC(s); ok {
			t.Errorf("parseMAC(%q) accepted", s)
		}
	}
}

func TestExempt(t *testing.T) {
	for m, want := range map[string]bool{
		"/distq.v1.AuthService/Login":                                    true,
		"/distq.v1.AuthService/Challenge":                                true,
		"/grpc.health.v1.Health/Check":                                   true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
		"/distq.v1.QueueService/Stats":                                   false,
		"/distq.v1.AdminService/Purge":                                   false,
		"/distq.v1.AuthServiceX/Login":                                   false,
		"distq.v1.AuthService/Login":                                     false,
		"":                                                               false,
	} {
		if got := exempt(m); got != want {
			t.Errorf("exempt(%q) = %v, want %v", m, got, want)
		}
	}
}
