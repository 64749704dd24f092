package auth

import (
	"bytes"
	"context"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	distqv1 "github.com/distq/distq/proto/distq/v1"
)

// fuzzServer returns a server with one live session, opened through the
// real Challenge and Login handlers, and that session's id and key.
func fuzzServer(f *testing.F, cfg ServerConfig) (s *Server, id string, skey []byte) {
	f.Helper()
	clock := newFakeClock()
	cfg.Key, cfg.Clock = testKey, clock.Now
	s, err := NewServer(cfg)
	if err != nil {
		f.Fatal(err)
	}
	cn := bytes.Repeat([]byte{7}, nonceSize)
	ch, err := s.Challenge(context.Background(), &distqv1.ChallengeRequest{ClientNonce: cn})
	if err != nil {
		f.Fatal(err)
	}
	lr, err := s.Login(context.Background(), &distqv1.LoginRequest{
		ServerNonce: ch.ServerNonce, ClientProof: clientProof(testKey, ch.ServerNonce, cn),
	})
	if err != nil {
		f.Fatal(err)
	}
	return s, lr.SessionId, sessionKey(testKey, cn, ch.ServerNonce)
}

// FuzzVerifyCall feeds arbitrary distq-session, distq-seq, distq-mac and
// method values to the tap that checks every call as its headers arrive.
// It must never panic, and must accept a call only on the live session
// with the exact MAC for that method and seq, and never twice.
func FuzzVerifyCall(f *testing.F) {
	s, liveID, skey := fuzzServer(f, ServerConfig{})
	const stats = "/distq.v1.QueueService/Stats"
	goodMAC := func(seq string) string { return hex.EncodeToString(callMAC(skey, stats, seq)) }
	f.Add(true, "", "1", goodMAC("1"), stats)
	f.Add(true, "", "2", goodMAC("2"), stats)
	f.Add(true, "", "1", goodMAC("1"), stats) // replay
	f.Add(true, "", "02", goodMAC("02"), stats)
	f.Add(true, "", "+3", goodMAC("+3"), stats)
	f.Add(true, "", "18446744073709551616", goodMAC("1"), stats)
	f.Add(true, "", "5", "ZZ", stats)
	f.Add(false, "00112233445566778899aabbccddeeff", "1", goodMAC("1"), stats)
	f.Add(false, "", "", "", "")
	f.Add(false, "\x00\xff", "\n", "\xff", "/")
	f.Add(false, "", "", "", "/grpc.health.v1.Health/Check")

	f.Fuzz(func(t *testing.T, useLive bool, id, seq, mac, method string) {
		if useLive {
			id = liveID
		}
		n, ok := parseSeq(seq)
		if ref, err := strconv.ParseUint(seq, 10, 64); ok != (err == nil && ref != 0 && seq[0] != '0') || (ok && n != ref) {
			t.Fatalf("parseSeq(%q) = %d, %v; strconv says %d, %v", seq, n, ok, ref, err)
		}
		info := &tap.Info{FullMethodName: method, Header: metadata.MD{mdSession: {id}, mdSeq: {seq}, mdMAC: {mac}}}
		ctx, err := s.TapHandle(context.Background(), info)
		if exempt(method) {
			if _, has := SessionFromContext(ctx); err != nil || has {
				t.Fatalf("exempt %q: session %v, error %v", method, has, err)
			}
			return
		}
		if err != nil {
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("tap refused with %v, want UNAUTHENTICATED", err)
			}
			return
		}
		if got, _ := SessionFromContext(ctx); got != liveID || id != liveID || !ok || mac != hex.EncodeToString(callMAC(skey, method, seq)) {
			t.Fatalf("tap accepted session %q seq %q mac %q method %q", id, seq, mac, method)
		}
		if _, err := s.TapHandle(context.Background(), info); !IsReplayError(err) {
			t.Fatalf("tap accepted seq %q twice: %v", seq, err)
		}
	})
}

// FuzzChallenge feeds arbitrary bytes to Challenge, both as the client nonce
// and as an encoded ChallengeRequest. It must never panic, must answer
// INVALID_ARGUMENT unless the nonce has 32 bytes, and a correct proof if so.
func FuzzChallenge(f *testing.F) {
	s, _, _ := fuzzServer(f, ServerConfig{MaxPending: 16})
	f.Add(make([]byte, 32))
	f.Add([]byte{})
	f.Add(make([]byte, 33))
	enc, _ := proto.Marshal(&distqv1.ChallengeRequest{ClientNonce: bytes.Repeat([]byte{1}, 32)})
	f.Add(enc)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, data []byte) {
		reqs := []*distqv1.ChallengeRequest{{ClientNonce: data}}
		var decoded distqv1.ChallengeRequest
		if proto.Unmarshal(data, &decoded) == nil {
			reqs = append(reqs, &decoded)
		}
		for _, req := range reqs {
			resp, err := s.Challenge(context.Background(), req)
			if len(req.ClientNonce) != nonceSize {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("Challenge(%d-byte nonce): %v, want INVALID_ARGUMENT", len(req.ClientNonce), err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Challenge: %v", err)
			}
			if len(resp.ServerNonce) != nonceSize || !bytes.Equal(resp.ServerProof, serverProof(testKey, req.ClientNonce, resp.ServerNonce)) {
				t.Fatal("Challenge answered a bad nonce or proof")
			}
		}
		if s.pending.len() > 16 {
			t.Fatalf("%d pending challenges, limit 16", s.pending.len())
		}
	})
}

// FuzzLogin feeds arbitrary server nonces and proofs to Login, either on
// their own or naming a challenge just issued. It must never panic, must
// accept only the correct proof for an issued nonce, and never the same
// nonce twice.
func FuzzLogin(f *testing.F) {
	s, _, _ := fuzzServer(f, ServerConfig{MaxPending: 16, MaxSessions: 16})
	cn := bytes.Repeat([]byte{9}, nonceSize)
	f.Add(true, false, []byte(nil), make([]byte, 32))
	f.Add(true, true, []byte(nil), []byte(nil))
	f.Add(false, false, make([]byte, 32), make([]byte, 32))
	f.Add(false, false, []byte{1, 2, 3}, []byte{})
	f.Add(false, false, make([]byte, 64), make([]byte, 31))

	f.Fuzz(func(t *testing.T, useIssued, rightProof bool, serverNonce, proof []byte) {
		ch, err := s.Challenge(context.Background(), &distqv1.ChallengeRequest{ClientNonce: cn})
		if err != nil {
			t.Fatal(err)
		}
		if useIssued {
			serverNonce = ch.ServerNonce
		}
		if rightProof && len(serverNonce) == nonceSize {
			proof = clientProof(testKey, serverNonce, cn)
		}
		req := &distqv1.LoginRequest{ServerNonce: serverNonce, ClientProof: proof}
		resp, err := s.Login(context.Background(), req)
		valid := bytes.Equal(serverNonce, ch.ServerNonce) && bytes.Equal(proof, clientProof(testKey, serverNonce, cn))
		switch {
		case len(serverNonce) != nonceSize:
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Login(%d-byte nonce): %v, want INVALID_ARGUMENT", len(serverNonce), err)
			}
		case valid:
			if err != nil || !validSessionID(resp.SessionId) || len(resp.SessionId) != 32 {
				t.Fatalf("correct Login: %v, %v", resp, err)
			}
		default:
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("wrong Login: %v, want UNAUTHENTICATED", err)
			}
		}
		if _, err := s.Login(context.Background(), req); err == nil {
			t.Fatal("Login accepted the same server nonce twice")
		}
		if s.sessions.len() > 16 {
			t.Fatalf("%d sessions, limit 16", s.sessions.len())
		}
	})
}

// FuzzReplayGuard checks the ring of bits against a plain set of the seqs
// seen, under the same floor rules, on arbitrary sequences of small steps,
// large jumps and passing time.
func FuzzReplayGuard(f *testing.F) {
	f.Add([]byte{1, 2, 3, 2, 1, 0})
	f.Add([]byte{0xff, 0x10, 0x00, 0x80, 0x7f, 0x01})
	f.Add([]byte{0xf0, 0xff, 0xff, 0x00, 0x00, 0x80, 0x10, 0x01, 0x83})
	f.Add([]byte{0x00, 0x05, 0x41, 0x00, 0x04, 0x41, 0x00, 0x03, 0x41, 0x00, 0x02, 0x00})
	// Forward in one word, then back onto a seq seen: a replay.
	f.Add([]byte{0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0x00})
	f.Add([]byte{0x00, 0x01, 0x00, 0x00, 0x02, 0x00, 0xff, 0xff, 0x00, 0xff, 0xff, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var g replayGuard
		m := replayModel{seen: map[uint64]bool{}}
		var cur uint64
		now := int64(time.Second)
		for i := 0; i+2 < len(ops); i += 3 {
			// Two bytes move cur by a signed step; the third, with its
			// bit 7, makes the step a jump (times 2^14) and, with its
			// bit 6, moves the clock on by up to 63 quarters of the
			// horizon.
			step := int64(int16(uint16(ops[i])<<8 | uint16(ops[i+1])))
			if ops[i+2]&0x80 != 0 {
				step *= 1 << 14
			}
			cur = uint64(int64(cur) + step)
			if ops[i+2]&0x40 != 0 {
				now += int64(ops[i+2]&0x3f) * int64(ReplayHorizon) / 4
			}
			want := m.accept(cur, now)
			if got := g.accept(cur, now); got != want {
				t.Fatalf("op %d: accept(%d) = %v, model says %v (floor %d, highest %d)", i/3, cur, got, want, m.floor, m.highest)
			}
			if len(g.words) > maxReplaySpan/64 {
				t.Fatalf("ring of %d words, limit %d", len(g.words), maxReplaySpan/64)
			}
		}
	})
}

// replayModel is replayGuard's rule with a map for the bits.
type replayModel struct {
	floor, highest, mark uint64
	markAt               int64
	seen                 map[uint64]bool
}

func (m *replayModel) accept(seq uint64, now int64) replayVerdict {
	if seq == 0 {
		return replayZero
	}
	if m.markAt == 0 {
		m.markAt = now
	} else if now-m.markAt >= int64(ReplayHorizon) {
		m.floor = max(m.floor, m.mark)
		m.mark, m.markAt = m.highest, now
	}
	if seq <= m.floor {
		return replayStale
	}
	if m.seen[seq] {
		return replaySeen
	}
	if seq > m.highest {
		m.highest = seq
		m.floor = max(m.floor, spanFloor(seq))
	}
	m.seen[seq] = true
	return replayOK
}
