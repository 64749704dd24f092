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
package distq
