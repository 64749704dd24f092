// Package distq is the Go client of a distq master: put and get items on its
// named queues, and run workers that take tasks under a lease and answer
// them. It is the counterpart of Python's multiprocessing BaseManager proxies
// in the "distributed processes" recipe, over gRPC with a shared authkey.
//
// A producer:
//
//	key, _ := distq.LoadKey("authkey")
//	c, err := distq.Dial(ctx, "master:4000", distq.Options{AuthKey: key})
//	tasks := c.Queue("tasks")
//	tasks.Put(ctx, []byte("7"))              // task_queue.put(7)
//	res, err := c.Queue("results").Get(ctx)  // result_queue.get()
//
// A worker (a slave) is one handler function:
//
//	w, _ := c.NewWorker(distq.WorkerConfig{Concurrency: 4}, func(ctx context.Context, t *distq.Task) ([]byte, error) {
//		n, err := strconv.Atoi(string(t.Payload))
//		if err != nil {
//			return nil, distq.Permanent(err) // straight to tasks.dead
//		}
//		return []byte(strconv.Itoa(n * n)), nil // acked, reply put into "results"
//	})
//	err = w.Run(ctx)
//
// Delivery is at least once: a task a worker took is leased to it until it
// is acknowledged; if the worker dies, hangs past the lease, or loses the
// network, the master hands the task to another worker and refuses the late
// acknowledgement of the first, so the result queue gets exactly one reply
// per task. A worker extends the leases of the tasks it holds while their
// handlers run, so a slow but live worker keeps them.
//
// An operator's tool (a CLI, a dashboard, a script run by cron) takes an
// Inspector instead: administration is kept apart from producing and
// consuming, as asynq keeps its Inspector apart from its Client and Server.
//
//	in, err := distq.NewInspector("master:4000", distq.Options{AuthKey: key})
//	defer in.Close()
//	qs, _ := in.Queues(ctx)                      // ready, leased, delayed, dead, paused, ...
//	ws, _ := in.Consumers(ctx, "tasks")          // peer, credit, held, acked, failed, last seen
//	dead, total, _ := in.Dead(ctx, "tasks", 0, 50) // last error and attempts, a page at a time
//	in.Requeue(ctx, "tasks", dead[0].ID)        // or in.RequeueAll(ctx, "tasks")
//	in.Pause(ctx, "tasks")                       // workers wait; puts go on; kept across restarts
//	in.Purge(ctx, "tasks")                       // ready and delayed items gone; leased ones stay
//	in.Resume(ctx, "tasks")
//
// Errors match with errors.Is (ErrFull, ErrClosed, ErrUnknownQueue, ...);
// the master says which by a machine-readable reason on its refusals
// (Error.Reason), never only in its message.
package distq
