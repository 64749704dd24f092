package distq

import pb "github.com/distq/distq/proto/distq/v1"

// Stats are one queue's gauges and counters as the master reports them.
type Stats struct {
	Name      string
	Ready     int // qsize
	Leased    int // delivered, not yet settled
	Delayed   int // failed, waiting out the delay before their retry
	Dead      int // in "<name>.dead"
	Consumers int
	MaxSize   int // 0: unbounded
	Closed    bool
	Paused    bool // an operator paused it (Inspector.Pause)

	PutTotal, AckedTotal, NackedTotal, DeliveredTotal uint64
	RedeliveredTotal, ExpiredTotal, RefusedTotal      uint64
	DeadTotal                                         uint64
	PurgedTotal                                       uint64 // thrown away by Inspector.Purge
}

func statsFromPB(s *pb.QueueStats) Stats {
	return Stats{
		Name:             s.GetName(),
		Ready:            int(s.GetReady()),
		Leased:           int(s.GetLeased()),
		Delayed:          int(s.GetDelayed()),
		Dead:             int(s.GetDead()),
		Consumers:        int(s.GetConsumers()),
		MaxSize:          int(s.GetMaxsize()),
		Closed:           s.GetClosed(),
		Paused:           s.GetPaused(),
		PutTotal:         s.GetPutTotal(),
		AckedTotal:       s.GetAckedTotal(),
		NackedTotal:      s.GetNackedTotal(),
		DeliveredTotal:   s.GetDeliveredTotal(),
		RedeliveredTotal: s.GetRedeliveredTotal(),
		ExpiredTotal:     s.GetExpiredTotal(),
		RefusedTotal:     s.GetRefusedTotal(),
		DeadTotal:        s.GetDeadTotal(),
		PurgedTotal:      s.GetPurgedTotal(),
	}
}
