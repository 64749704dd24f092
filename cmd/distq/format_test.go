package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq"
)

var testStats = []distq.Stats{
	{Name: "tasks", Ready: 12, Leased: 3, Delayed: 1, Dead: 2, Consumers: 2, MaxSize: 100,
		PutTotal: 500, DeliveredTotal: 490, AckedTotal: 480, NackedTotal: 7, RedeliveredTotal: 4, ExpiredTotal: 1, RefusedTotal: 1, DeadTotal: 2},
	{Name: "results", Ready: 480, Closed: true, PutTotal: 480},
	{Name: "held", Ready: 3, Paused: true, PutTotal: 5, PurgedTotal: 2},
}

func TestStatsTable(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatsTable(&b, testStats); err != nil {
		t.Fatal(err)
	}
	want := `QUEUE    STATE   READY  LEASED  DELAYED  DEAD  CONSUMERS  MAXSIZE  PUT  DELIVERED  ACKED  NACKED  REDELIVERED  EXPIRED  REFUSED  DEAD-LETTERED  PURGED
tasks    open    12     3       1        2     2          100      500  490        480    7       4            1        1        2              0
results  closed  480    0       0        0     0          -        480  0          0      0       0            0        0        0              0
held     paused  3      0       0        0     0          -        5    0          0      0       0            0        0        0              2
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestStatsJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatsJSON(&b, testStats); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, b.String())
	}
	if len(got) != 3 {
		t.Fatalf("%d queues", len(got))
	}
	want := map[string]any{
		"name": "tasks", "ready": 12.0, "leased": 3.0, "delayed": 1.0, "dead": 2.0, "consumers": 2.0, "max_size": 100.0,
		"closed": false, "put_total": 500.0, "delivered_total": 490.0, "acked_total": 480.0, "nacked_total": 7.0,
		"redelivered_total": 4.0, "expired_total": 1.0, "refused_total": 1.0, "dead_lettered_total": 2.0,
		"paused": false, "purged_total": 0.0,
	}
	if len(got[0]) != len(want) {
		t.Errorf("keys %v, want those of %v", got[0], want)
	}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%s = %v, want %v", k, got[0][k], v)
		}
	}
	if got[1]["closed"] != true || got[1]["name"] != "results" {
		t.Errorf("second queue %v", got[1])
	}
	if got[2]["paused"] != true || got[2]["purged_total"] != 2.0 {
		t.Errorf("third queue %v", got[2])
	}
	// No queues: an empty array, not null.
	b.Reset()
	writeStatsJSON(&b, nil)
	if strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("no queues: %q", b.String())
	}
}

var testItems = []distq.DeadItem{
	{ID: 7, Attempts: 5, Payload: []byte("bad"), Error: "payload \"bad\" is not a decimal integer"},
	{ID: 9, Attempts: 1, Payload: []byte{0xff, 'a', '\t'}, Error: "line one\nline two"},
	{ID: 11, Attempts: 2, Payload: []byte(strings.Repeat("x", 100))},
}

func TestItemsTable(t *testing.T) {
	var b bytes.Buffer
	writeItemsTable(&b, testItems, 20, 57, "dead")
	want := `ID  ATTEMPTS  PAYLOAD                                                       ERROR
7   5         bad                                                           payload "bad" is not a decimal integer
9   1         "\xffa\t"                                                     line one\nline two
11  2         xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...  
dead items 21-23 of 57; next page: -offset 23
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	for _, tc := range []struct {
		items         []distq.DeadItem
		offset, total int
		want          string
	}{
		{testItems[2:], 0, 1, "ID  ATTEMPTS  PAYLOAD\n11  2         " + strings.Repeat("x", 57) + "...\nready items 1-1 of 1\n"},
		{nil, 0, 0, "no ready items\n"},
		{nil, 40, 12, "no ready items from offset 40 (there are 12)\n"},
		{testItems[:1], 0, -1, "ID  ATTEMPTS  PAYLOAD  ERROR\n7   5         bad      payload \"bad\" is not a decimal integer\nready items 1-1\n"},
	} {
		b.Reset()
		writeItemsTable(&b, tc.items, tc.offset, tc.total, "ready")
		if b.String() != tc.want {
			t.Errorf("got:\n%q\nwant:\n%q", b.String(), tc.want)
		}
	}
}

func TestItemsJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeItemsJSON(&b, testItems[:2]); err != nil {
		t.Fatal(err)
	}
	var got []itemJSON
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got[0].ID != 7 || got[0].Attempts != 5 || *got[0].Payload != "bad" || got[0].Error != testItems[0].Error || got[0].PayloadBase64 != nil {
		t.Errorf("first item %+v", got[0])
	}
	if got[1].Payload != nil || !bytes.Equal(got[1].PayloadBase64, testItems[1].Payload) {
		t.Errorf("binary payload %+v", got[1])
	}
	if !strings.Contains(b.String(), `"payload_base64": "/2EJ"`) {
		t.Errorf("JSON %s", b.String())
	}
}

func TestRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := sample{t0, []distq.Stats{
		{Name: "tasks", Ready: 1000, PutTotal: 1000, DeliveredTotal: 0},
		{Name: "results", PutTotal: 50},
	}}
	cur := sample{t0.Add(2 * time.Second), []distq.Stats{
		{Name: "tasks", Ready: 600, Leased: 10, PutTotal: 1100, DeliveredTotal: 510, AckedTotal: 490, NackedTotal: 10, DeadTotal: 10},
		{Name: "results", PutTotal: 40}, // the master restarted: its counter went down
		{Name: "new"},
	}}
	rows := rates(&prev, cur)
	r := rows[0]
	if r.Put != 50 || r.Delivered != 255 || r.Acked != 245 || r.Nacked != 5 {
		t.Fatalf("tasks rates %+v", r)
	}
	// 610 queued, leaving at (490+10)/2 = 250/s, coming at 50/s: 3.05 s.
	if r.ETA != 3050*time.Millisecond {
		t.Fatalf("ETA %v", r.ETA)
	}
	if rows[1].Put != -1 || rows[2].Put != -1 || rows[2].ETA != 0 {
		t.Fatalf("results %+v, new %+v", rows[1], rows[2])
	}
	first := rates(nil, cur)
	if first[0].Put != -1 || first[0].ETA != -1 {
		t.Fatalf("first sample %+v", first[0])
	}
	line := watchLine(cur.at.UTC(), rows, nil)
	want := "1970-01-01T00:16:42Z tasks ready=600 leased=10 delayed=0 dead=0 consumers=0 put/s=50 delivered/s=255 acked/s=245 nacked/s=5.0 eta=0:03" +
		" | results ready=0 leased=0 delayed=0 dead=0 consumers=0 put/s=- delivered/s=- acked/s=- nacked/s=- eta=0:00" +
		" | new ready=0 leased=0 delayed=0 dead=0 consumers=0 put/s=- delivered/s=- acked/s=- nacked/s=- eta=0:00\n"
	if line != want {
		t.Fatalf("line:\n%q\nwant:\n%q", line, want)
	}
	if got := watchLine(cur.at.UTC(), nil, &distq.Error{Kind: distq.ErrUnavailable, Msg: "distq: gone"}); got != "1970-01-01T00:16:42Z error=\"master unavailable: gone\"\n" {
		t.Fatalf("error line %q", got)
	}
}

func TestRedraw(t *testing.T) {
	rows := rates(nil, sample{time.Unix(0, 0), testStats})
	frame := watchFrame("127.0.0.1:4000", time.Second, time.Unix(0, 0), rows, nil)
	var b bytes.Buffer
	redraw(&b, frame, true)
	out := b.String()
	if !strings.HasPrefix(out, "\033[2J\033[H") || !strings.HasSuffix(out, "\033[K\n\033[J") {
		t.Fatalf("first frame %q", out)
	}
	if !strings.Contains(out, "master 127.0.0.1:4000, every 1s") || !strings.Contains(out, "QUEUE") || !strings.Contains(out, "results  closed") {
		t.Fatalf("frame %q", out)
	}
	b.Reset()
	redraw(&b, frame, false)
	if !strings.HasPrefix(b.String(), "\033[H") || strings.Contains(b.String(), "\033[2J") {
		t.Fatalf("later frame %q", b.String())
	}
	if n := strings.Count(b.String(), "\033[K\n"); n != 6 {
		t.Fatalf("%d lines cleared, want 6 (title, blank, header, three queues)", n)
	}
}

func TestState(t *testing.T) {
	for s, want := range map[distq.Stats]string{
		{}:                           "open",
		{Closed: true}:               "closed",
		{Paused: true}:               "paused",
		{Closed: true, Paused: true}: "closed,paused",
	} {
		if got := state(s); got != want {
			t.Errorf("state(closed %v, paused %v) = %q, want %q", s.Closed, s.Paused, got, want)
		}
	}
}

func TestConsumers(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cs := []distq.Consumer{
		{Queue: "tasks", Peer: "10.0.0.2:51234", Credit: 14, Held: 2, Delivered: 1000, Acked: 997, Failed: 1,
			ConnectedAt: now.Add(-192 * time.Second), LastSeen: now.Add(-1234 * time.Millisecond)},
		{Queue: "tasks", Credit: 1, ConnectedAt: now.Add(time.Second), LastSeen: now},
	}
	var b bytes.Buffer
	writeConsumersTable(&b, cs, now)
	want := `QUEUE  PEER             HELD  CREDIT  DELIVERED  ACKED  FAILED  CONNECTED  LAST-SEEN
tasks  10.0.0.2:51234   2     14      1000       997    1       3m12s ago  1.2s ago
tasks  (in the master)  0     1       0          0      0       0s ago     0s ago
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	writeConsumersTable(&b, nil, now)
	if b.String() != "no consumers connected\n" {
		t.Fatalf("none: %q", b.String())
	}
	b.Reset()
	writeConsumersJSON(&b, cs[:1])
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got[0]["peer"] != "10.0.0.2:51234" || got[0]["held"] != 2.0 || got[0]["acked"] != 997.0 || got[0]["connected_at"] != "2026-01-02T03:00:53Z" {
		t.Fatalf("JSON %v", got[0])
	}
}
