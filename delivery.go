package distq

import (
	"fmt"
	"time"

	"github.com/distq/distq/internal/packed"
	pb "github.com/distq/distq/proto/distq/v1"
)

func taskFromPB(d *pb.Delivery, s settler) *Task {
	t := &Task{
		ID:      d.GetId(),
		Attempt: int(d.GetAttempt()),
		Payload: d.GetPayload(),
		Headers: d.GetHeaders(),
		ReplyTo: d.GetReplyTo(),
		lease:   d.GetLease(),
		settler: s,
	}
	if ms := d.GetLeaseDeadlineMs(); ms != 0 {
		t.Deadline = time.UnixMilli(ms)
	}
	t.LeaseTime = time.Duration(d.GetLeaseMs()) * time.Millisecond
	return t
}

// tasksFromBatch decodes a packed batch into tasks that share one
// allocation; their payloads are slices of the batch's buffer.
func tasksFromBatch(b *pb.DeliveryBatch, s settler) ([]*Task, error) {
	n := len(b.GetIds())
	if n == 0 {
		return nil, nil
	}
	if len(b.GetLeases()) != n || len(b.GetAttempts()) != n || packed.Len(b.GetPayloads()) != n ||
		(len(b.GetReplyTo()) != 0 && len(b.GetReplyTo()) != n) {
		return nil, fmt.Errorf("distq: malformed delivery batch from the master: %d ids, %d leases, %d attempts, %d payloads, %d reply_to",
			n, len(b.GetLeases()), len(b.GetAttempts()), packed.Len(b.GetPayloads()), len(b.GetReplyTo()))
	}
	var deadline time.Time
	if ms := b.GetLeaseDeadlineMs(); ms != 0 {
		deadline = time.UnixMilli(ms)
	}
	leaseTime := time.Duration(b.GetLeaseMs()) * time.Millisecond
	all := make([]Task, n)
	out := make([]*Task, n)
	err := packed.Each(b.GetPayloads(), func(i int, payload []byte) {
		t := &all[i]
		t.ID, t.lease, t.Attempt = b.Ids[i], b.Leases[i], int(b.Attempts[i])
		t.Payload, t.Deadline, t.LeaseTime, t.settler = payload, deadline, leaseTime, s
		if len(b.ReplyTo) == n {
			t.ReplyTo = b.ReplyTo[i]
		}
		out[i] = t
	})
	if err != nil {
		return nil, fmt.Errorf("distq: malformed delivery batch from the master: %w", err)
	}
	return out, nil
}
