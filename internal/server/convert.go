package server

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/distq/distq/internal/packed"
	"github.com/distq/distq/internal/queue"
	pb "github.com/distq/distq/proto/distq/v1"
)

func toMessages(items []*pb.Item) []queue.Message {
	msgs := make([]queue.Message, len(items))
	for i, it := range items {
		msgs[i] = queue.Message{Payload: it.GetPayload(), Headers: it.GetHeaders()}
	}
	return msgs
}

// toPutMessages is the items of req followed by its packed payloads.
func toPutMessages(req *pb.PutRequest) ([]queue.Message, error) {
	msgs := toMessages(req.GetItems())
	if n := packed.Len(req.GetPacked()); n > 0 {
		msgs = slices.Grow(msgs, n)
		if err := packed.Each(req.GetPacked(), func(_ int, payload []byte) {
			msgs = append(msgs, queue.Message{Payload: payload})
		}); err != nil {
			return nil, invalid("distq: put: %v", err)
		}
	}
	return msgs, nil
}

// producerIDLen is the length of PutRequest.producer_id.
const producerIDLen = 16

// putID reads a put's name (queue.proto, PutRequest.producer_id and
// sequence), refusing a malformed one; the zero PutID for a put without.
func putID(req *pb.PutRequest) (queue.PutID, error) {
	var id queue.PutID
	p := req.GetProducerId()
	switch {
	case len(p) == 0:
		return id, nil
	case len(p) != producerIDLen:
		return id, invalid("distq: put: producer_id must be empty or %d bytes, not %d", producerIDLen, len(p))
	case isZero(p):
		return id, invalid("distq: put: producer_id must not be all zero (16 random bytes name a producer)")
	case req.GetSequence() == 0:
		return id, invalid("distq: put: sequence must be at least 1 when producer_id is set")
	}
	copy(id.Producer[:], p)
	id.Seq = req.GetSequence()
	return id, nil
}

// castagnoli is CRC32C's table (hardware on most machines).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// payloadsCRC is the CRC32C of a put's payloads, each preceded by its
// length: a retry of the put must carry the same.
func payloadsCRC(msgs []queue.Message) uint32 {
	var crc uint32
	var n [binary.MaxVarintLen64]byte
	for _, m := range msgs {
		crc = crc32.Update(crc, castagnoli, n[:binary.PutUvarint(n[:], uint64(len(m.Payload)))])
		crc = crc32.Update(crc, castagnoli, m.Payload)
	}
	return crc
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// toBatch encodes deliveries as columns, except those with headers or an
// error, which keep their own Delivery message. leaseMs is the master's
// lease length, sent with leased deliveries so that a consumer knows when
// to extend them by its own clock.
func toBatch(ds []queue.Delivery, leaseMs uint32) (*pb.DeliveryBatch, []*pb.Delivery) {
	if len(ds) == 0 {
		return nil, nil
	}
	b := &pb.DeliveryBatch{
		Ids:      make([]uint64, 0, len(ds)),
		Leases:   make([]uint64, 0, len(ds)),
		Attempts: make([]uint32, 0, len(ds)),
	}
	var payloads packed.Builder
	var replyTo []uint64
	var plain []*pb.Delivery
	for i := range ds {
		d := &ds[i]
		if len(d.Headers) > 0 || d.Error != "" {
			plain = append(plain, toDelivery(d, leaseMs))
			continue
		}
		if d.ReplyTo != 0 && replyTo == nil {
			replyTo = make([]uint64, len(b.Ids), len(ds))
		}
		if replyTo != nil {
			replyTo = append(replyTo, d.ReplyTo)
		}
		b.Ids = append(b.Ids, d.ID)
		b.Leases = append(b.Leases, d.Lease)
		b.Attempts = append(b.Attempts, d.Attempt)
		payloads.Add(d.Payload)
		if b.LeaseDeadlineMs == 0 && !d.Deadline.IsZero() {
			b.LeaseDeadlineMs = d.Deadline.UnixMilli()
			b.LeaseMs = leaseMs
		}
	}
	if len(b.Ids) == 0 {
		return nil, plain
	}
	b.Payloads = payloads.Take()
	b.ReplyTo = replyTo
	return b, plain
}

// appendAckBatch checks an AckBatch's columns and appends its acks to out.
// On an error the request is refused whole and the slice returned is only
// good as a buffer.
func (s *queueService) appendAckBatch(out []queue.Ack, b *pb.AckBatch) ([]queue.Ack, error) {
	if b == nil {
		return out, nil
	}
	n := len(b.GetIds())
	if len(b.GetLeases()) != n {
		return out, invalid("distq: ack batch: %d ids but %d leases", n, len(b.GetLeases()))
	}
	withReplies := b.GetReplyQueue() != "" || b.GetReplies() != nil
	if withReplies && packed.Len(b.GetReplies()) != n {
		return out, invalid("distq: ack batch: %d ids but %d replies", n, packed.Len(b.GetReplies()))
	}
	var rq *queue.Queue
	if withReplies {
		var err error
		if rq, err = s.lookup(b.GetReplyQueue()); err != nil {
			return out, invalid("distq: ack batch: reply queue %q unknown", b.GetReplyQueue())
		}
	}
	base := len(out)
	out = slices.Grow(out, n)
	for i := range n {
		out = append(out, queue.Ack{ID: b.Ids[i], Lease: b.Leases[i]})
	}
	if !withReplies {
		return out, nil
	}
	acks := out[base:]
	if err := packed.Each(b.GetReplies(), func(i int, payload []byte) {
		acks[i].ReplyQueue = rq
		acks[i].Reply = queue.Message{Payload: payload}
	}); err != nil {
		return out[:base], invalid("distq: ack batch: %v", err)
	}
	return out, nil
}

// toDelivery encodes one delivery; leaseMs is as for toBatch.
func toDelivery(d *queue.Delivery, leaseMs uint32) *pb.Delivery {
	out := &pb.Delivery{
		Id:      d.ID,
		Lease:   d.Lease,
		Attempt: d.Attempt,
		Payload: d.Payload,
		Headers: d.Headers,
		ReplyTo: d.ReplyTo,
		Error:   d.Error,
	}
	if !d.Deadline.IsZero() {
		out.LeaseDeadlineMs = d.Deadline.UnixMilli()
		out.LeaseMs = leaseMs
	}
	return out
}

func toDeliveries(ds []queue.Delivery, leaseMs uint32) []*pb.Delivery {
	out := make([]*pb.Delivery, len(ds))
	for i := range ds {
		out[i] = toDelivery(&ds[i], leaseMs)
	}
	return out
}

func toRefused(rs []queue.Refusal) []*pb.Refused {
	if len(rs) == 0 {
		return nil
	}
	out := make([]*pb.Refused, len(rs))
	for i, r := range rs {
		out[i] = &pb.Refused{Id: r.ID, Lease: r.Lease, Reason: r.Reason}
	}
	return out
}

// appendAcks resolves reply queues and appends the acks to out. An ack whose
// reply cannot be placed is refused here rather than failing the whole batch.
func (s *queueService) appendAcks(out []queue.Ack, in []*pb.Ack) ([]queue.Ack, []*pb.Refused) {
	acks := slices.Grow(out, len(in))
	var refused []*pb.Refused
	for _, a := range in {
		qa := queue.Ack{ID: a.GetId(), Lease: a.GetLease()}
		if a.Reply != nil || a.GetReplyQueue() != "" {
			rq, err := s.broker.Queue(a.GetReplyQueue())
			if err != nil {
				refused = append(refused, &pb.Refused{Id: qa.ID, Lease: qa.Lease, Reason: fmt.Sprintf("reply queue %q unknown", a.GetReplyQueue())})
				continue
			}
			qa.ReplyQueue = rq
			qa.Reply = queue.Message{Payload: a.GetReply().GetPayload(), Headers: a.GetReply().GetHeaders()}
		}
		acks = append(acks, qa)
	}
	return acks, refused
}

// toNacks converts nacks, drawing each retry's jitter here: the core draws
// no random numbers, so that its tests know every due time.
func toNacks(in []*pb.Nack) []queue.Nack {
	out := make([]queue.Nack, len(in))
	for i, n := range in {
		out[i] = queue.Nack{ID: n.GetId(), Lease: n.GetLease(), Error: n.GetError()}
		switch n.GetAction() {
		case pb.NackAction_NACK_ACTION_DEAD:
			out[i].Action = queue.NackDead
		case pb.NackAction_NACK_ACTION_RELEASE:
			out[i].Action = queue.NackRelease
		default:
			out[i].Action = queue.NackRetry
			if ms := n.GetDelayMs(); ms > 0 {
				out[i].Delay = millis(ms)
			} else {
				out[i].Jitter = rand.Float64()
			}
		}
	}
	return out
}

func toExtends(in []*pb.Extend) []queue.Extend {
	out := make([]queue.Extend, len(in))
	for i, e := range in {
		out[i] = queue.Extend{ID: e.GetId(), Lease: e.GetLease(), Duration: time.Duration(e.GetLeaseMs()) * time.Millisecond}
	}
	return out
}

func toStats(st queue.Stats) *pb.QueueStats {
	return &pb.QueueStats{
		Name:             st.Name,
		Ready:            uint64(st.Ready),
		Leased:           uint64(st.Leased),
		Delayed:          uint64(st.Delayed),
		Dead:             uint64(st.Dead),
		Consumers:        uint32(st.Consumers),
		Maxsize:          uint64(st.MaxSize),
		Closed:           st.Closed,
		PutTotal:         st.PutTotal,
		AckedTotal:       st.AckedTotal,
		NackedTotal:      st.NackedTotal,
		DeliveredTotal:   st.DeliveredTotal,
		RedeliveredTotal: st.RedeliveredTotal,
		ExpiredTotal:     st.ExpiredTotal,
		RefusedTotal:     st.RefusedTotal,
		DeadTotal:        st.DeadTotal,
		Paused:           st.Paused,
		PurgedTotal:      st.PurgedTotal,
	}
}

func millis(ms uint32) time.Duration { return time.Duration(ms) * time.Millisecond }

// leaseMillis is a lease length for the wire: whole milliseconds, at least
// 1 (the broker's lease is 1 ms to 24 h, so it always fits).
func leaseMillis(d time.Duration) uint32 { return uint32(max(d.Milliseconds(), 1)) }
