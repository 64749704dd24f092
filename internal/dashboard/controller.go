package dashboard

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/distq/distq/internal/queue"
)

// ErrUnsupported is returned by a Controller for what it cannot do (yet);
// the dashboard answers 501 and the page hides the control.
var ErrUnsupported = errors.New("not supported by this master")

// Controller is what the dashboard's handlers need of the master: the
// broker, called in process. A change is answered once it is durable (on
// a master with -data-dir), as the gRPC API answers it. BrokerController implements it over
// *queue.Broker; tests give their own.
type Controller interface {
	// Features says which optional parts the controller has.
	Features() Features
	// Queues lists the queues that take puts (not the dead-letter ones),
	// with their depths and counters.
	Queues() []QueueView
	// Dead pages through the ready items of queue's dead-letter queue,
	// oldest first; queue names the origin, not "<queue>.dead".
	Dead(ctx context.Context, queue string, offset, limit int) (DeadPage, error)
	// Requeue moves dead items of queue back into it: those named, or
	// all when ids is empty.
	Requeue(ctx context.Context, queue string, ids []uint64) (int, error)
	// Purge throws away the dead items of queue (those of "<queue>.dead"
	// not leased by someone reading it) and reports how many; queue
	// names the origin, as for Dead. The origin's own items stay.
	Purge(ctx context.Context, queue string) (int, error)
	// Close closes queue to puts.
	Close(ctx context.Context, queue string) error
	// SetPaused pauses or resumes delivery from queue (ErrUnsupported
	// without Features.Pause).
	SetPaused(ctx context.Context, queue string, paused bool) error
	// Workers lists the connected consumers (ErrUnsupported without
	// Features.Workers).
	Workers() ([]Worker, error)
}

// Features are the optional parts of a Controller.
type Features struct {
	Pause   bool `json:"pause"`
	Workers bool `json:"workers"`
}

// QueueView is one queue as the page shows it: gauges, then counters from
// which the page computes rates.
type QueueView struct {
	Name      string `json:"name"`
	Ready     int    `json:"ready"`
	Leased    int    `json:"leased"`
	Delayed   int    `json:"delayed"`
	Dead      int    `json:"dead"`
	Consumers int    `json:"consumers"`
	MaxSize   int    `json:"maxSize"`
	Closed    bool   `json:"closed"`
	Paused    bool   `json:"paused"`

	Puts         uint64 `json:"puts"`
	Deliveries   uint64 `json:"deliveries"`
	Redeliveries uint64 `json:"redeliveries"`
	Acks         uint64 `json:"acks"`
	Nacks        uint64 `json:"nacks"`
	Expired      uint64 `json:"expired"`
	Refused      uint64 `json:"refused"`
	DeadLettered uint64 `json:"deadLettered"`
}

// DeadPage is one page of dead items.
type DeadPage struct {
	Queue string     `json:"queue"`
	Total int        `json:"total"` // every dead item, leased or delayed ones too
	Items []DeadItem `json:"items"`
}

// DeadItem is a dead item: its id (a string: ids pass 2^53, past what a
// JavaScript number holds exactly), its attempts, its last error, and the
// start of its payload.
type DeadItem struct {
	ID             string `json:"id"`
	Attempt        uint32 `json:"attempt"`
	Error          string `json:"error"`
	Payload        string `json:"payload"`
	PayloadBytes   int    `json:"payloadBytes"`
	PayloadIsText  bool   `json:"payloadIsText"`
	PayloadClipped bool   `json:"payloadClipped"`
}

// Worker is one connected consumer.
type Worker struct {
	Queue     string    `json:"queue"`
	Peer      string    `json:"peer"`
	Credit    int       `json:"credit"`
	Held      int       `json:"held"`
	Delivered uint64    `json:"delivered"`
	Acked     uint64    `json:"acked"`
	Failed    uint64    `json:"failed"`
	Since     time.Time `json:"since"`
	LastSeen  time.Time `json:"lastSeen"`
}

// PayloadPreview bounds the part of a payload the page shows.
const PayloadPreview = 256

// BrokerController is the Controller of the master's broker.
type BrokerController struct {
	B *queue.Broker
}

var _ Controller = (*BrokerController)(nil)

// Features: pause and the workers list come with the admin API.
func (c *BrokerController) Features() Features { return brokerFeatures }

func (c *BrokerController) Queues() []QueueView {
	var out []QueueView
	for _, q := range c.B.Queues() {
		if q.IsDead() {
			continue
		}
		st := q.Stats()
		out = append(out, QueueView{
			Name: st.Name, Ready: st.Ready, Leased: st.Leased, Delayed: st.Delayed, Dead: st.Dead,
			Consumers: st.Consumers, MaxSize: st.MaxSize, Closed: st.Closed, Paused: paused(q),
			Puts: st.PutTotal, Deliveries: st.DeliveredTotal, Redeliveries: st.RedeliveredTotal,
			Acks: st.AckedTotal, Nacks: st.NackedTotal, Expired: st.ExpiredTotal,
			Refused: st.RefusedTotal, DeadLettered: st.DeadTotal,
		})
	}
	return out
}

// origin returns the queue named name, refusing a dead-letter queue.
func (c *BrokerController) origin(name string) (*queue.Queue, error) {
	q, err := c.B.Queue(name)
	if err != nil {
		return nil, err
	}
	if q.IsDead() {
		return nil, fmt.Errorf("%w: %q is a dead-letter queue", queue.ErrInvalid, name)
	}
	return q, nil
}

func (c *BrokerController) Dead(ctx context.Context, name string, offset, limit int) (DeadPage, error) {
	q, err := c.origin(name)
	if err != nil {
		return DeadPage{}, err
	}
	d, err := c.B.Queue(name + queue.DeadSuffix)
	if err != nil {
		return DeadPage{}, err
	}
	page := DeadPage{Queue: name, Total: q.Stats().Dead, Items: []DeadItem{}}
	items := d.Peek(offset, limit)
	// An id is shown once its item's record is on disk (as Peek over
	// gRPC does): it is never given to another item.
	if err := c.B.Sync(ctx); err != nil {
		return DeadPage{}, err
	}
	for _, it := range items {
		page.Items = append(page.Items, deadItem(it))
	}
	return page, nil
}

func deadItem(d queue.Delivery) DeadItem {
	it := DeadItem{ID: fmt.Sprint(d.ID), Attempt: d.Attempt, Error: d.Error, PayloadBytes: len(d.Payload)}
	p := d.Payload
	if len(p) > PayloadPreview {
		p, it.PayloadClipped = p[:PayloadPreview], true
	}
	// A clip may cut a rune: text is what decodes once that tail is off.
	text := p
	if it.PayloadClipped {
		for i := 0; i < utf8.UTFMax && len(text) > 0 && !utf8.Valid(text); i++ {
			text = text[:len(text)-1]
		}
	}
	if utf8.Valid(text) {
		it.Payload, it.PayloadIsText = string(text), true
	} else {
		it.Payload = fmt.Sprintf("%x", p)
	}
	return it
}

func (c *BrokerController) Requeue(ctx context.Context, name string, ids []uint64) (int, error) {
	q, err := c.origin(name)
	if err != nil {
		return 0, err
	}
	n, err := q.Requeue(ids)
	if err != nil {
		return 0, err
	}
	return n, c.B.Sync(ctx)
}

func (c *BrokerController) Close(ctx context.Context, name string) error {
	q, err := c.origin(name)
	if err != nil {
		return err
	}
	if err := q.Close(); err != nil {
		return err
	}
	return c.B.Sync(ctx)
}
