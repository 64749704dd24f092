package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/distq/distq"
)

// statsJSON is one queue in `distq stats -json`. Its field names are part
// of the tool's interface: add to them, do not rename them.
type statsJSON struct {
	Name      string `json:"name"`
	Ready     int    `json:"ready"`
	Leased    int    `json:"leased"`
	Delayed   int    `json:"delayed"`
	Dead      int    `json:"dead"`
	Consumers int    `json:"consumers"`
	MaxSize   int    `json:"max_size"` // 0: unbounded
	Closed    bool   `json:"closed"`
	Paused    bool   `json:"paused"`

	PutTotal         uint64 `json:"put_total"`
	DeliveredTotal   uint64 `json:"delivered_total"`
	AckedTotal       uint64 `json:"acked_total"`
	NackedTotal      uint64 `json:"nacked_total"`
	RedeliveredTotal uint64 `json:"redelivered_total"`
	ExpiredTotal     uint64 `json:"expired_total"`
	RefusedTotal     uint64 `json:"refused_total"`
	DeadTotal        uint64 `json:"dead_lettered_total"`
	PurgedTotal      uint64 `json:"purged_total"`
}

func toStatsJSON(s distq.Stats) statsJSON {
	return statsJSON{
		Name: s.Name, Ready: s.Ready, Leased: s.Leased, Delayed: s.Delayed, Dead: s.Dead,
		Consumers: s.Consumers, MaxSize: s.MaxSize, Closed: s.Closed, Paused: s.Paused,
		PutTotal: s.PutTotal, DeliveredTotal: s.DeliveredTotal, AckedTotal: s.AckedTotal,
		NackedTotal: s.NackedTotal, RedeliveredTotal: s.RedeliveredTotal,
		ExpiredTotal: s.ExpiredTotal, RefusedTotal: s.RefusedTotal, DeadTotal: s.DeadTotal,
		PurgedTotal: s.PurgedTotal,
	}
}

func writeStatsJSON(w io.Writer, st []distq.Stats) error {
	out := make([]statsJSON, len(st))
	for i, s := range st {
		out[i] = toStatsJSON(s)
	}
	return writeJSON(w, out)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeStatsTable prints one row per queue: its state and depths, then its
// counters.
func writeStatsTable(w io.Writer, st []distq.Stats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSTATE\tREADY\tLEASED\tDELAYED\tDEAD\tCONSUMERS\tMAXSIZE\tPUT\tDELIVERED\tACKED\tNACKED\tREDELIVERED\tEXPIRED\tREFUSED\tDEAD-LETTERED\tPURGED")
	for _, s := range st {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n",
			s.Name, state(s), s.Ready, s.Leased, s.Delayed, s.Dead, s.Consumers, maxSize(s.MaxSize),
			s.PutTotal, s.DeliveredTotal, s.AckedTotal, s.NackedTotal, s.RedeliveredTotal,
			s.ExpiredTotal, s.RefusedTotal, s.DeadTotal, s.PurgedTotal)
	}
	return tw.Flush()
}

// state is "open", "closed" or "paused", or "closed,paused".
func state(s distq.Stats) string {
	switch {
	case s.Closed && s.Paused:
		return "closed,paused"
	case s.Closed:
		return "closed"
	case s.Paused:
		return "paused"
	}
	return "open"
}

func maxSize(n int) string {
	if n <= 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// itemJSON is one item in `distq peek -json` and `distq dead -json`. The
// payload is a string when it is valid UTF-8, else payload_base64 holds it.
type itemJSON struct {
	ID            uint64            `json:"id"`
	Attempts      int               `json:"attempts"`
	Payload       *string           `json:"payload,omitempty"`
	PayloadBase64 []byte            `json:"payload_base64,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Error         string            `json:"error,omitempty"`
	ReplyTo       uint64            `json:"reply_to,omitempty"`
}

func writeItemsJSON(w io.Writer, items []distq.DeadItem) error {
	out := make([]itemJSON, len(items))
	for i, it := range items {
		out[i] = itemJSON{ID: it.ID, Attempts: it.Attempts, Headers: it.Headers, Error: it.Error, ReplyTo: it.ReplyTo}
		if utf8.Valid(it.Payload) {
			p := string(it.Payload)
			out[i].Payload = &p
		} else {
			out[i].PayloadBase64 = it.Payload
		}
	}
	return writeJSON(w, out)
}

// payloadWidth is where the table cuts payloads.
const payloadWidth = 60

// writeItemsTable prints items listed from offset, with an ERROR column
// when any has one, and a line saying which of the total (-1: unknown)
// they are and where the next page starts.
func writeItemsTable(w io.Writer, items []distq.DeadItem, offset, total int, what string) error {
	if len(items) == 0 {
		switch {
		case total == 0:
			fmt.Fprintf(w, "no %s items\n", what)
		case total > 0:
			fmt.Fprintf(w, "no %s items from offset %d (there are %d)\n", what, offset, total)
		default:
			fmt.Fprintf(w, "no %s items from offset %d\n", what, offset)
		}
		return nil
	}
	withErr := false
	for _, it := range items {
		withErr = withErr || it.Error != ""
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if withErr {
		fmt.Fprintln(tw, "ID\tATTEMPTS\tPAYLOAD\tERROR")
	} else {
		fmt.Fprintln(tw, "ID\tATTEMPTS\tPAYLOAD")
	}
	for _, it := range items {
		if withErr {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", it.ID, it.Attempts, showPayload(it.Payload, payloadWidth), oneLine(it.Error))
		} else {
			fmt.Fprintf(tw, "%d\t%d\t%s\n", it.ID, it.Attempts, showPayload(it.Payload, payloadWidth))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	first, last := offset+1, offset+len(items)
	switch {
	case total >= 0 && last < total:
		fmt.Fprintf(w, "%s items %d-%d of %d; next page: -offset %d\n", what, first, last, total, last)
	case total >= 0:
		fmt.Fprintf(w, "%s items %d-%d of %d\n", what, first, last, max(total, last))
	default:
		fmt.Fprintf(w, "%s items %d-%d\n", what, first, last)
	}
	return nil
}

// showPayload renders a payload for a table cell: as text when it is
// printable UTF-8, else Go-quoted; cut at width characters with "...".
func showPayload(p []byte, width int) string {
	s := string(p)
	if !utf8.Valid(p) || !printable(s) {
		s = strconv.Quote(s)
	}
	if utf8.RuneCountInString(s) > width {
		r := []rune(s)
		s = string(r[:width-3]) + "..."
	}
	if s == "" {
		s = `""`
	}
	return s
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// oneLine keeps a message on its table row.
func oneLine(s string) string {
	if printable(s) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// consumerJSON is one consumer in `distq workers -json`; times are the
// master's, in RFC 3339.
type consumerJSON struct {
	Queue       string    `json:"queue"`
	Peer        string    `json:"peer"`
	Held        int       `json:"held"`
	Credit      int       `json:"credit"`
	Delivered   uint64    `json:"delivered"`
	Acked       uint64    `json:"acked"`
	Failed      uint64    `json:"failed"`
	ConnectedAt time.Time `json:"connected_at"`
	LastSeen    time.Time `json:"last_seen"`
}

func writeConsumersJSON(w io.Writer, cs []distq.Consumer) error {
	out := make([]consumerJSON, len(cs))
	for i, c := range cs {
		out[i] = consumerJSON{Queue: c.Queue, Peer: c.Peer, Held: c.Held, Credit: c.Credit,
			Delivered: c.Delivered, Acked: c.Acked, Failed: c.Failed,
			ConnectedAt: c.ConnectedAt.UTC(), LastSeen: c.LastSeen.UTC()}
	}
	return writeJSON(w, out)
}

// writeConsumersTable prints one row per consumer, its times as ages at
// now.
func writeConsumersTable(w io.Writer, cs []distq.Consumer, now time.Time) error {
	if len(cs) == 0 {
		fmt.Fprintln(w, "no consumers connected")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPEER\tHELD\tCREDIT\tDELIVERED\tACKED\tFAILED\tCONNECTED\tLAST-SEEN")
	for _, c := range cs {
		peer := c.Peer
		if peer == "" {
			peer = "(in the master)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s ago\t%s ago\n", c.Queue, peer, c.Held, c.Credit,
			c.Delivered, c.Acked, c.Failed, age(now, c.ConnectedAt), age(now, c.LastSeen))
	}
	return tw.Flush()
}

// age is how long before now t was, to a tenth of a second under ten
// seconds and to the second above; a t after now (the master's clock is
// ahead) is 0s.
func age(now, t time.Time) string {
	d := max(now.Sub(t), 0)
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
