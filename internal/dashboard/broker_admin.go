package dashboard

import (
	"context"

	"github.com/distq/distq/internal/queue"
)

// The broker pauses and resumes queues and lists their consumers (the
// admin API's queue methods).
var brokerFeatures = Features{Pause: true, Workers: true}

func paused(q *queue.Queue) bool { return q.Paused() }

// SetPaused pauses or resumes deliveries from the queue; a durable master
// keeps the pause across restarts, and answers once it is logged.
func (c *BrokerController) SetPaused(ctx context.Context, name string, pause bool) error {
	q, err := c.origin(name)
	if err != nil {
		return err
	}
	if pause {
		err = q.Pause()
	} else {
		err = q.Resume()
	}
	if err != nil {
		return err
	}
	return c.B.Sync(ctx)
}

// Workers lists the consumers of every queue, dead-letter queues
// included (someone may be reading one), queue by queue, oldest first.
func (c *BrokerController) Workers() ([]Worker, error) {
	out := []Worker{}
	for _, q := range c.B.Queues() {
		for _, ci := range q.Consumers() {
			out = append(out, Worker{
				Queue: ci.Queue, Peer: ci.Peer, Credit: ci.Credit, Held: ci.Held,
				Delivered: ci.Delivered, Acked: ci.Acked, Failed: ci.Failed,
				Since: ci.Since, LastSeen: ci.LastSeen,
			})
		}
	}
	return out, nil
}
