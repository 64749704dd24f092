package dashboard

import (
	"context"

	"github.com/distq/distq/internal/queue"
)

// The broker pauses and resumes queues, purges dead-letter queues and
// lists their consumers (the admin API's queue methods).
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

// Purge purges the origin's dead-letter queue, never the origin: the
// page's button is for throwing dead items away, not work still to do
// (the admin API and `distq purge` purge a queue's ready items). It is
// answered once the purge is on disk.
func (c *BrokerController) Purge(ctx context.Context, name string) (int, error) {
	if _, err := c.origin(name); err != nil {
		return 0, err
	}
	d, err := c.B.Queue(name + queue.DeadSuffix)
	if err != nil {
		return 0, err
	}
	n, err := d.Purge()
	if err != nil {
		return 0, err
	}
	return n, c.B.Sync(ctx)
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
