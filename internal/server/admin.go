package server

import (
	"context"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/queue"
	pb "github.com/distq/distq/proto/distq/v1"
)

// adminService implements pb.AdminServiceServer: an operator's calls that
// QueueService does not already have (admin.proto). It is registered on
// the same gRPC server, so the auth tap and interceptors, which check
// every method but the exempt ones (internal/auth), cover it as they cover
// QueueService: every call needs a session.
type adminService struct {
	pb.UnimplementedAdminServiceServer
	broker *queue.Broker
	log    hclog.Logger
}

var _ pb.AdminServiceServer = (*adminService)(nil)

func (s *adminService) lookup(name string) (*queue.Queue, error) {
	q, err := s.broker.Queue(name)
	return q, toStatus(err)
}

func (s *adminService) ListConsumers(ctx context.Context, req *pb.ListConsumersRequest) (*pb.ListConsumersResponse, error) {
	qs := s.broker.Queues()
	if req.GetQueue() != "" {
		q, err := s.lookup(req.GetQueue())
		if err != nil {
			return nil, err
		}
		qs = []*queue.Queue{q}
	}
	resp := &pb.ListConsumersResponse{}
	for _, q := range qs {
		for _, c := range q.Consumers() {
			resp.Consumers = append(resp.Consumers, &pb.ConsumerInfo{
				Queue:       c.Queue,
				Peer:        c.Peer,
				Credit:      uint32(min(max(c.Credit, 0), 1<<32-1)),
				Held:        uint32(c.Held),
				Delivered:   c.Delivered,
				Acked:       c.Acked,
				Failed:      c.Failed,
				ConnectedMs: c.Since.UnixMilli(),
				LastSeenMs:  c.LastSeen.UnixMilli(),
			})
		}
	}
	return resp, nil
}

// deadQueue returns the dead-letter queue named, or that of the queue
// named.
func (s *adminService) deadQueue(name string) (*queue.Queue, error) {
	if !strings.HasSuffix(name, queue.DeadSuffix) {
		name += queue.DeadSuffix
	}
	return s.lookup(name)
}

func (s *adminService) ListDead(ctx context.Context, req *pb.ListDeadRequest) (*pb.ListDeadResponse, error) {
	d, err := s.deadQueue(req.GetQueue())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListDeadResponse{Total: uint64(d.Stats().Ready)}
	items, err := peekPage(ctx, s.broker, d, req.GetOffset(), req.GetLimit())
	if err != nil {
		return nil, err
	}
	resp.Items = make([]*pb.DeadItem, len(items))
	for i, it := range items {
		resp.Items[i] = &pb.DeadItem{
			Id:       it.ID,
			Attempts: it.Attempt, // Peek gives an item's logged attempts
			Error:    it.Error,
			Payload:  it.Payload,
			Headers:  it.Headers,
			ReplyTo:  it.ReplyTo,
		}
	}
	return resp, nil
}

func (s *adminService) Purge(ctx context.Context, req *pb.PurgeRequest) (*pb.PurgeResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	n, err := q.Purge()
	if err == nil {
		err = s.broker.Sync(ctx) // answered once the purge is on disk
	}
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("queue purged by a client", "queue", q.Name(), "purged", n, "peer", peerAddr(ctx))
	return &pb.PurgeResponse{Purged: uint64(n)}, nil
}

func (s *adminService) Pause(ctx context.Context, req *pb.PauseRequest) (*pb.PauseResponse, error) {
	if err := s.setPaused(ctx, req.GetQueue(), true); err != nil {
		return nil, err
	}
	return &pb.PauseResponse{}, nil
}

func (s *adminService) Resume(ctx context.Context, req *pb.ResumeRequest) (*pb.ResumeResponse, error) {
	if err := s.setPaused(ctx, req.GetQueue(), false); err != nil {
		return nil, err
	}
	return &pb.ResumeResponse{}, nil
}

func (s *adminService) setPaused(ctx context.Context, name string, paused bool) error {
	q, err := s.lookup(name)
	if err != nil {
		return err
	}
	was := q.Paused()
	if paused {
		err = q.Pause()
	} else {
		err = q.Resume()
	}
	if err == nil {
		err = s.broker.Sync(ctx)
	}
	if err != nil {
		return toStatus(err)
	}
	if was != paused {
		what := "queue resumed by a client"
		if paused {
			what = "queue paused by a client"
		}
		s.log.Info(what, "queue", q.Name(), "peer", peerAddr(ctx))
	}
	return nil
}
