"""distq.Inspector against the real master of make build: every call, with
a worker (or a Go slave) at work. Synchronised on the master's queue stats
and on processes and threads ending; the timeouts only guard against hangs
(and bound the gets that must find nothing)."""
import os
import signal
from datetime import datetime, timedelta, timezone

import distq
from tests.test_master import BIN, HANG, Fixture, wait_until


class InspectorTest(Fixture):
    def setUp(self):
        super().setUp()
        self.ins = None

    def start_master(self, *args):
        m = self.master("-max-attempts", "1", *args)
        c = self.connect(m)
        self.ins = distq.Inspector(c)
        return m, c

    def stats(self, name="tasks"):
        for s in self.ins.queues():
            if s.name == name:
                return s
        self.fail(f"no queue {name!r}")

    def test_consumers_dead_and_requeue(self):
        m, c = self.start_master()
        tasks = c.queue("tasks")

        def handler(t):
            if t.payload.startswith(b"bad"):
                raise distq.PermanentFailure("cannot do " + t.payload.decode())
            return t.payload
        w = c.worker(handler, concurrency=1)
        t, errs = self.run_worker(w)
        self.addCleanup(t.join, HANG)
        self.addCleanup(w.stop)
        ids = tasks.put_many([b"a", b"bad1", b"b", b"bad2"])
        wait_until(lambda: (self.stats().acked_total, self.stats().dead) == (2, 2), "the worker to do the four")
        self.assertIn("tasks.dead", [s.name for s in self.ins.queues()])

        # The worker as a consumer, seen by the master.
        cs = self.ins.consumers()
        self.assertEqual(len(cs), 1, cs)
        k = cs[0]
        self.assertEqual((k.queue, k.delivered, k.acked, k.failed, k.held), ("tasks", 4, 2, 2, 0))
        self.assertTrue(k.peer.startswith("127.0.0.1:"), k.peer)
        self.assertLessEqual(k.connected_at, k.last_seen)
        self.assertLess(abs(datetime.now(timezone.utc) - k.connected_at), timedelta(minutes=5))
        self.assertEqual([(k.queue, k.peer, k.connected_at) for k in self.ins.consumers("tasks")],
                         [(k.queue, k.peer, k.connected_at)])
        self.assertEqual(self.ins.consumers("results"), [])

        # The dead items: oldest first, with their error and attempts, a page at a time.
        dead = self.ins.dead("tasks")
        self.assertEqual(dead.total, 2)
        self.assertEqual([(d.id, d.payload, d.error, d.attempts) for d in dead],
                         [(ids[1], b"bad1", "cannot do bad1", 1), (ids[3], b"bad2", "cannot do bad2", 1)])
        page = self.ins.dead("tasks.dead", limit=1, offset=1)
        self.assertEqual(([d.id for d in page], page.total), ([ids[3]], 2))

        # The worker stops, so that what is requeued stays ready to be seen.
        w.stop()
        t.join(HANG)
        self.assertFalse(t.is_alive())
        self.assertEqual(errs, [])
        wait_until(lambda: self.ins.consumers() == [], "the worker's stream to end")

        # Requeue: nothing without ids, the one named, then all.
        self.assertEqual(self.ins.requeue("tasks", []), 0)
        self.assertEqual(self.ins.requeue("tasks", [ids[1], ids[0]]), 1)  # ids[0] is not dead: skipped
        s = self.stats()
        self.assertEqual((s.ready, s.dead), (1, 1))
        self.assertEqual([d.id for d in self.ins.dead("tasks")], [ids[3]])
        self.assertEqual(self.ins.requeue_all("tasks"), 1)
        s = self.stats()
        self.assertEqual((s.ready, s.dead), (2, 0))
        self.assertEqual(self.ins.dead("tasks").total, 0)
        again = sorted((tasks.get(timeout=HANG) for _ in range(2)), key=lambda msg: msg.id)
        self.assertEqual([(msg.id, msg.payload, msg.attempt) for msg in again],
                         [(ids[1], b"bad1", 1), (ids[3], b"bad2", 1)])  # attempts reset
        with self.assertRaises(distq.DistqError) as cm:
            self.ins.requeue_all("tasks.dead")  # the origin is requeued, not its dead-letter queue
        self.assertEqual(cm.exception.reason, "INVALID_ARGUMENT")

    def test_pause_resume_and_purge(self):
        m, c = self.start_master()
        tasks = c.queue("tasks")
        self.ins.pause("tasks")
        self.ins.pause("tasks")  # pausing a paused queue does nothing
        self.assertTrue(self.stats().paused)
        self.assertFalse(self.stats("results").paused)
        tasks.put_many([b"1", b"2", b"3"])  # puts go on while paused
        self.assertEqual(self.stats().ready, 3)
        with self.assertRaises(distq.Empty):
            tasks.get(timeout=0.3)
        with self.assertRaises(distq.Empty):
            tasks.get_nowait()
        s = self.stats()
        self.assertEqual((s.ready, s.delivered_total), (3, 0))

        self.ins.resume("tasks")
        self.assertFalse(self.stats().paused)
        self.assertEqual([tasks.get(timeout=HANG).payload for _ in range(2)], [b"1", b"2"])

        # Purge takes the ready items, not the leased one, and counts them.
        tasks.put_many([b"4", b"5"])
        held = tasks.lease(timeout=HANG)
        self.assertEqual(held.payload, b"3")
        self.assertEqual(self.ins.purge("tasks"), 2)
        s = self.stats()
        self.assertEqual((s.ready, s.leased, s.purged_total), (0, 1, 2))
        self.assertEqual(self.ins.purge("tasks"), 0)
        # On "<name>.dead", its dead items.
        held.fail(distq.PermanentFailure("no"))
        self.assertEqual(self.stats().dead, 1)
        self.assertEqual(self.ins.purge("tasks.dead"), 1)
        self.assertEqual((self.stats().dead, self.ins.dead("tasks").total), (0, 0))
        with self.assertRaises(distq.Empty):
            tasks.get_nowait()

    def test_close_queue_and_unknown_queue(self):
        m, c = self.start_master()
        tasks = c.queue("tasks")
        tasks.put(b"last")
        self.ins.close_queue("tasks")
        self.assertTrue(self.stats().closed)
        with self.assertRaises(distq.Closed) as cm:
            tasks.put(b"late")
        self.assertEqual(cm.exception.reason, "QUEUE_CLOSED")
        self.assertEqual(tasks.get(timeout=HANG).payload, b"last")  # drained as usual
        with self.assertRaises(distq.Closed):
            tasks.get(timeout=HANG)

        calls = {
            "consumers": lambda: self.ins.consumers("nope"),
            "dead": lambda: self.ins.dead("nope"),
            "requeue": lambda: self.ins.requeue("nope", [1]),
            "requeue_all": lambda: self.ins.requeue_all("nope"),
            "purge": lambda: self.ins.purge("nope"),
            "pause": lambda: self.ins.pause("nope"),
            "resume": lambda: self.ins.resume("nope"),
            "close_queue": lambda: self.ins.close_queue("nope"),
        }
        for name, call in calls.items():
            with self.subTest(call=name):
                with self.assertRaises(distq.UnknownQueue) as cm:
                    call()
                self.assertEqual(cm.exception.reason, "UNKNOWN_QUEUE")
                self.assertTrue(distq.is_permanent(cm.exception))

    def test_go_slave_is_a_consumer(self):
        m, c = self.start_master()
        s = self.start([os.path.join(BIN, "slave"), "-master", m.addr, "-authkey-file", self.key_file,
                        "-concurrency", "2"], "go-slave")
        cs = wait_until(lambda: self.ins.consumers("tasks"), "the Go slave's stream")
        self.assertEqual([k.queue for k in cs], ["tasks"])
        self.assertTrue(cs[0].peer, cs[0])
        self.assertGreater(cs[0].credit, 0)
        self.assertEqual(self.ins.consumers("results"), [])
        c.queue("tasks").put(distq.encode_int(3))
        self.assertEqual(c.queue("results").get(timeout=HANG).payload, b"9")
        wait_until(lambda: self.ins.consumers("tasks")[0].acked == 1, "the slave's ack")
        self.ins.close_queue("tasks")  # drained: the slave ends cleanly
        self.assertEqual(self.finish(s), 0, self.output(s))
        wait_until(lambda: self.ins.consumers() == [], "the slave's stream to end")

    def test_master_restart_survived(self):
        data = os.path.join(self.dir, "data")
        m, c = self.start_master("-data-dir", data)
        self.ins.pause("tasks")
        m.send_signal(signal.SIGTERM)
        self.assertEqual(self.finish(m), 0, self.output(m))
        self.master("-max-attempts", "1", "-data-dir", data, listen=m.addr)
        # The first call after the restart is an admin one: the new master
        # knows nothing of the session, so the call logs in again by itself.
        logins = c._session.generation
        self.assertEqual(self.ins.consumers(), [])
        self.assertEqual(c._session.generation, logins + 1)
        # A durable master keeps the queue paused.
        self.assertTrue(self.stats().paused)
        self.ins.resume("tasks")
        self.assertFalse(self.stats().paused)
