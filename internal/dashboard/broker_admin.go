package dashboard

import (
	"context"

	"github.com/distq/distq/internal/queue"
)

// What the broker cannot do yet: pausing a queue and listing its
// consumers come with the admin API (issue 10 §1).
var brokerFeatures = Features{}

func paused(*queue.Queue) bool { return false }

func (c *BrokerController) SetPaused(context.Context, string, bool) error { return ErrUnsupported }

func (c *BrokerController) Workers() ([]Worker, error) { return nil, ErrUnsupported }
