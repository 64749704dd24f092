"""The package against the real Go binaries of make build (bin/master,
bin/slave), on 127.0.0.1 port 0. Synchronised on events (the address file,
the master's queue stats, processes ending); the timeouts only guard
against hangs."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import distq

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("DISTQ_BIN") or os.path.join(ROOT, "bin")
EXAMPLES = os.path.join(ROOT, "examples", "python")
HANG = 60.0  # hang guard, seconds


def wait_until(pred, what, timeout=HANG):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "clients", "python")
    env.pop("DISTQ_AUTHKEY", None)
    env.pop("DISTQ_AUTHKEY_FILE", None)
    return env


class Fixture(unittest.TestCase):
    """A temporary directory with a key file, and the processes a test starts."""

    def setUp(self):
        for b in ("master", "slave"):
            if not os.access(os.path.join(BIN, b), os.X_OK):
                self.fail(f"{BIN}/{b} missing: run make build (make test-python does)")
        self.tmp = tempfile.TemporaryDirectory(prefix="distq-py-")
        self.dir = self.tmp.name
        self.key = os.urandom(24).hex().encode()
        self.key_file = os.path.join(self.dir, "authkey")
        with open(self.key_file, "wb") as f:
            f.write(self.key + b"\n")  # one trailing newline, as editors write it
        self.procs = []
        self.n_logs = 0

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.out.close()
        self.tmp.cleanup()

    def log(self, name):
        self.n_logs += 1
        return open(os.path.join(self.dir, f"{self.n_logs:02d}-{name}.log"), "w+b")

    def start(self, args, name, env=None):
        out = self.log(name)
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env or python_env())
        p.out = out
        p.name = name
        self.procs.append(p)
        return p

    def output(self, p):
        p.out.flush()
        p.out.seek(0)
        return p.out.read().decode("utf-8", "replace")

    def finish(self, p, timeout=HANG):
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            self.fail(f"{p.name} did not end within {timeout}s:\n{self.output(p)}")

    def master(self, *args, listen="127.0.0.1:0"):
        addr_file = os.path.join(self.dir, f"addr-{len(self.procs)}")
        p = self.start([os.path.join(BIN, "master"), "-listen", listen, "-authkey-file", self.key_file,
                        "-addr-file", addr_file, "-demo-progress", "log", *args], "master")

        def ready():
            if p.poll() is not None:
                self.fail(f"master exited {p.returncode}:\n{self.output(p)}")
            try:
                with open(addr_file) as f:
                    a = f.read().strip()
            except FileNotFoundError:
                return None
            return a or None
        p.addr = wait_until(ready, "the master's address file")
        host, _, port = p.addr.rpartition(":")
        p.hostport = (host, int(port))
        return p

    def py(self, script, *args, env=None):
        return self.start([sys.executable, os.path.join(EXAMPLES, script), *args], script, env)

    def run_worker(self, w):
        """Run w in a thread; returns it and the list of what w.run raised."""
        errs = []

        def run():
            try:
                w.run()
            except BaseException as e:  # reported by the test
                errs.append(e)
        t = threading.Thread(target=run)
        t.start()
        return t, errs

    def connect(self, m):
        c = distq.connect(m.hostport, key_file=self.key_file)
        self.addCleanup(c.close)
        return c


class QueueTest(Fixture):
    def test_recipe_queue_methods(self):
        m = self.master("-queue", "tasks:3", "-queue", "results")
        c = self.connect(m)
        tasks = c.queue("tasks")
        self.assertTrue(tasks.empty())
        self.assertFalse(tasks.full())
        i1 = tasks.put(distq.encode_int(7))
        i2 = tasks.put_nowait(b"8")
        self.assertEqual(tasks.put_many([b"9"]), [i2 + 1])
        self.assertEqual(tasks.qsize(), 3)
        self.assertTrue(tasks.full())
        with self.assertRaises(distq.Full):
            tasks.put_nowait(b"10")
        with self.assertRaises(distq.Full):
            tasks.put(b"10", timeout=0.2)
        m1 = tasks.get()
        self.assertEqual((m1.id, distq.decode_int(m1.payload), m1.attempt), (i1, 7, 1))
        self.assertEqual(tasks.get_nowait().payload, b"8")
        self.assertEqual(tasks.get(timeout=5).payload, b"9")
        tasks.task_done()
        with self.assertRaises(distq.Empty):
            tasks.get_nowait()
        with self.assertRaises(distq.Empty):
            tasks.get(timeout=0.2)
        self.assertTrue(tasks.join(timeout=5))

        # A get that waits is answered by a put from another client.
        got = []
        t = threading.Thread(target=lambda: got.append(tasks.get(timeout=HANG)))
        t.start()
        wait_until(lambda: tasks.stats().put_total == 3 and True, "the stats")
        self.connect(m).queue("tasks").put(b"late")
        t.join(HANG)
        self.assertEqual(got[0].payload, b"late")

        tasks.put(b"last")
        tasks.close()
        with self.assertRaises(distq.Closed):
            tasks.put(b"refused")
        self.assertEqual(tasks.get().payload, b"last")
        with self.assertRaises(distq.Closed):
            tasks.get()
        with self.assertRaises(distq.UnknownQueue):
            c.queue("nosuch").put(b"x")

    def test_leases(self):
        m = self.master("-lease", "1m", "-max-attempts", "3", "-retry-min", "10ms", "-retry-max", "20ms")
        c = self.connect(m)
        tasks, results = c.queue("tasks"), c.queue("results")
        tasks.put_many([b"2", b"3", b"4", b"5", b"6", b"7"])

        # JoinableQueue's shape: lease, then task_done settles the oldest.
        t = tasks.lease(timeout=HANG)
        self.assertEqual((t.payload, t.attempt), (b"2", 1))
        self.assertGreater(t.lease, 0)
        self.assertEqual(tasks.stats().leased, 1)
        tasks.task_done()
        self.assertEqual((tasks.stats().leased, tasks.stats().acked_total), (0, 1))
        tasks.task_done()  # nothing held: nothing to do, as after get()

        # reply: the task settled and its result kept in one step.
        with tasks.lease(timeout=HANG) as t:
            t.reply(distq.encode_int(distq.decode_int(t.payload) ** 2))
        r = results.get(timeout=HANG)
        self.assertEqual((r.payload, r.reply_to), (b"9", t.id))

        # The context manager: done on a clean exit, fail on an exception.
        with tasks.lease(timeout=HANG) as t:
            pass
        self.assertEqual(tasks.stats().acked_total, 3)
        with self.assertRaises(ValueError):
            with tasks.lease(timeout=HANG) as t:
                raise ValueError("no good")
        s = tasks.stats()
        self.assertEqual((s.leased, s.ready + s.delayed), (0, 3))
        held = []
        again = tasks.lease(timeout=HANG)  # the failed one comes back after its backoff
        while again.payload != b"5":
            held.append(again)
            again = tasks.lease(timeout=HANG)
        for h in held:
            h.release()  # back untouched: the attempt does not count
        self.assertEqual(again.attempt, 2)
        again.fail(distq.PermanentFailure("dead now"))
        dead = tasks.dead()
        self.assertEqual([(d.payload, d.error) for d in dead], [(b"5", "dead now")])

        # A lease that ran out (extend sets its length from now, shorter
        # here): the item went back, and a late settle is refused.
        lost = tasks.lease(timeout=HANG)
        self.assertEqual(lost.attempt, 1)  # released before, not counted
        lost.extend(0.05)
        wait_until(lambda: tasks.stats().expired_total >= 1, "the lease to run out")
        with self.assertRaises(distq.LeaseLost):
            lost.done()
        with self.assertRaises(distq.LeaseLost):
            lost.done()  # settled already, by this handle's count too
        back = tasks.lease(timeout=HANG)
        while back.id != lost.id:  # the other item left, ahead of the expired one's retry
            back.done()
            back = tasks.lease(timeout=HANG)
        self.assertEqual(back.attempt, lost.attempt + 1)
        back.done()
        if tasks.stats().ready:
            tasks.lease(timeout=HANG).done()
        s = tasks.stats()
        self.assertEqual((s.ready, s.leased, s.delayed), (0, 0, 0))
        self.assertTrue(tasks.join(timeout=5))

    def test_settle_is_not_sent_again_to_an_unreachable_master(self):
        # As in Go: an ack that failed as UNAVAILABLE may have landed, and
        # one sent again would be refused and reported as a LeaseLost that
        # never happened. So a settle says Unavailable at once, and keeps
        # the lease, where a put keeps trying for retry_for.
        m = self.master()
        c = distq.connect(m.hostport, key_file=self.key_file, retry_for=10 * HANG)
        self.addCleanup(c.close)
        tasks = c.queue("tasks")
        tasks.put(b"7")
        t = tasks.lease(timeout=HANG)
        m.kill()
        m.wait()
        result = []

        def settle():
            try:
                t.done()
                result.append(None)
            except BaseException as e:  # reported below
                result.append(e)
        th = threading.Thread(target=settle, daemon=True)
        th.start()
        th.join(HANG)
        self.assertFalse(th.is_alive(), "the ack kept retrying an unreachable master")
        self.assertIsInstance(result[0], distq.Unavailable)
        self.assertFalse(t.settled)

    def test_wrong_key_refused(self):
        m = self.master()
        # The master's proof is checked first, so a wrong key is found
        # before the client proves anything: MasterUnverified, an AuthFailed.
        with self.assertRaises(distq.MasterUnverified) as cm:
            distq.connect(m.hostport, authkey=b"not the key")
        self.assertIsInstance(cm.exception, distq.AuthFailed)
        self.assertIn("authkey", str(cm.exception))
        # A key read from a file drops one trailing newline, as the Go side does.
        c = distq.connect(m.addr, authkey=self.key)
        c.queue("tasks").put(b"1")
        c.close()


class RecipeTest(Fixture):
    def test_python_workers_complete_the_demo(self):
        m = self.master("-demo", "3000", "-demo-slaves", "2")
        slaves = [self.py("slave.py", m.addr, "--authkey-file", self.key_file, "--concurrency", "2")
                  for _ in range(2)]
        self.assertEqual(self.finish(m), 0, self.output(m))
        self.assertIn("demo OK: 3000 tasks, 3000 results, 0 wrong, 0 duplicate, 0 missing", self.output(m))
        for s in slaves:
            self.assertEqual(self.finish(s), 0, self.output(s))

    def test_python_producer_with_go_slaves(self):
        m = self.master()
        gos = [self.start([os.path.join(BIN, "slave"), "-master", m.addr, "-authkey-file", self.key_file,
                           "-concurrency", "2"], "go-slave") for _ in range(2)]
        env = python_env()
        env["DISTQ_AUTHKEY_FILE"] = self.key_file  # the key as the Go programs find it
        p = self.py("producer.py", m.addr, "3000", "--close", env=env)
        self.assertEqual(self.finish(p), 0, self.output(p))
        self.assertIn("3000 tasks, 3000 results, 0 wrong, 0 duplicate, 0 missing", self.output(p))
        for s in gos:
            self.assertEqual(self.finish(s), 0, self.output(s))
        st = {q.name: q for q in self.connect(m).stats()}
        self.assertEqual((st["tasks"].acked_total, st["results"].put_total, st["results"].ready),
                         (3000, 3000, 0))

    def test_slave_waits_for_a_master_started_after_it(self):
        with socket.socket() as sk:  # a free port, for the master started later
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        s = self.py("slave.py", f"127.0.0.1:{port}", "--authkey-file", self.key_file)
        wait_until(lambda: "connecting to" in self.output(s), "the slave to try its master")
        self.assertIsNone(s.poll(), self.output(s))
        m = self.master("-demo", "200", "-demo-slaves", "1", listen=f"127.0.0.1:{port}")
        self.assertEqual(self.finish(m), 0, self.output(m))
        self.assertIn("demo OK: 200 tasks", self.output(m))
        self.assertEqual(self.finish(s), 0, self.output(s))

    def test_wrong_key_worker_exits_nonzero(self):
        m = self.master()
        bad = os.path.join(self.dir, "wrong")
        with open(bad, "wb") as f:
            f.write(b"wrong key\n")
        s = self.py("slave.py", m.addr, "--authkey-file", bad)
        self.assertNotEqual(self.finish(s), 0)
        self.assertIn("authkey", self.output(s))

    def test_sigkill_mid_run_loses_nothing(self):
        m = self.master("-lease", "2s")
        c = self.connect(m)
        tasks = c.queue("tasks")
        ids = tasks.put_many([distq.encode_int(n) for n in range(1, 201)])
        doomed = self.py("slave.py", m.addr, "--authkey-file", self.key_file, "--concurrency", "2",
                         "--delay", "0.02")
        wait_until(lambda: tasks.stats().acked_total >= 10, "the first slave's acks")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(HANG)
        tasks.close()
        s = self.py("slave.py", m.addr, "--authkey-file", self.key_file, "--concurrency", "4")
        self.assertEqual(self.finish(s), 0, self.output(s))
        results = c.queue("results")
        seen = {}
        while True:
            try:
                r = results.get_nowait()
            except distq.Empty:
                break
            self.assertNotIn(r.reply_to, seen)
            seen[r.reply_to] = distq.decode_int(r.payload)
        self.assertEqual(seen, {i: (k + 1) ** 2 for k, i in enumerate(ids)})


class WorkerTest(Fixture):
    def test_failures_end_in_dead_letters(self):
        m = self.master("-max-attempts", "2", "-retry-min", "10ms", "-retry-max", "20ms")
        c = self.connect(m)
        tasks = c.queue("tasks")
        tasks.put_many([b"3", b"boom", b"perm", b"4"])
        tasks.close()

        def handler(t):
            if t.payload == b"boom":
                raise ValueError("cannot square boom")
            if t.payload == b"perm":
                raise distq.PermanentFailure("never")
            return distq.encode_int(distq.decode_int(t.payload) ** 2)
        w = c.worker(handler, concurrency=2)
        t, errs = self.run_worker(w)
        t.join(HANG)
        self.assertFalse(t.is_alive())
        self.assertEqual(errs, [])
        dead = {d.payload: d for d in tasks.dead()}
        self.assertEqual(sorted(dead), [b"boom", b"perm"])
        self.assertIn("cannot square boom", dead[b"boom"].error)
        self.assertEqual(dead[b"boom"].attempt, 2)  # retried once, then dead
        self.assertIn("never", dead[b"perm"].error)
        self.assertEqual(dead[b"perm"].attempt, 1)  # dead at once
        results = c.queue("results")
        self.assertEqual(sorted(results.get_nowait().payload for _ in range(2)), [b"16", b"9"])

    def test_long_tasks_keep_their_leases(self):
        m = self.master("-lease", "400ms")
        c = self.connect(m)
        tasks = c.queue("tasks")
        tasks.put_many([b"1", b"2", b"3"])
        tasks.close()
        w = c.worker(lambda t: (time.sleep(0.5), t.payload)[1], concurrency=1, prefetch=3)
        t, errs = self.run_worker(w)
        t.join(HANG)
        self.assertEqual(errs, [])
        s = tasks.stats()
        self.assertEqual((s.acked_total, s.expired_total, s.redelivered_total, s.refused_total), (3, 0, 0, 0))

    def test_stop_hands_back_unstarted_tasks(self):
        m = self.master()
        c = self.connect(m)
        tasks = c.queue("tasks")
        tasks.put_many([distq.encode_int(n) for n in range(8)])
        started, release = threading.Event(), threading.Event()

        def handler(t):
            started.set()
            release.wait(HANG)
            return t.payload
        w = c.worker(handler, concurrency=1, prefetch=4)
        t, errs = self.run_worker(w)
        started.wait(HANG)
        wait_until(lambda: tasks.stats().leased == 4, "4 tasks leased")
        w.stop()
        release.set()
        t.join(HANG)
        self.assertFalse(t.is_alive())
        self.assertEqual(errs, [])
        s = tasks.stats()
        # One ran and was acked; three held were handed back, four never left.
        self.assertEqual((s.acked_total, s.ready, s.leased, s.delayed, s.dead), (1, 7, 0, 0, 0))
        again = tasks.get_nowait()
        self.assertEqual(again.attempt, 1)  # handed back without counting the attempt

    def test_master_restart_survived(self):
        data = os.path.join(self.dir, "data")
        m = self.master("-data-dir", data)
        c = self.connect(m)
        w = c.worker(lambda t: t.payload + b"!", concurrency=2)
        t, errs = self.run_worker(w)
        tasks, results = c.queue("tasks"), c.queue("results")
        tasks.put(b"a")
        self.assertEqual(results.get(timeout=HANG).payload, b"a!")
        m.send_signal(signal.SIGTERM)
        self.assertEqual(self.finish(m), 0, self.output(m))
        m2 = self.master("-data-dir", data, listen=m.addr)
        # The client and the worker log in again by themselves.
        tasks.put(b"b")
        self.assertEqual(results.get(timeout=HANG).payload, b"b!")
        tasks.close()
        t.join(HANG)
        self.assertFalse(t.is_alive())
        self.assertEqual(errs, [])
        self.assertEqual(m2.poll(), None)


def make_certs(d):
    """A CA, a master certificate for 127.0.0.1 and "master", and a client
    certificate, made with the openssl command."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=distq test CA")
    for name, ext in (("master", "subjectAltName=IP:127.0.0.1,DNS:master\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        run("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")
    return {n: os.path.join(d, n) for n in ("ca.pem", "master.pem", "master.key", "client.pem", "client.key")}


class TLSTest(Fixture):
    def test_mutual_tls(self):
        certs = make_certs(self.dir)
        tls = ["-tls-cert", certs["master.pem"], "-tls-key", certs["master.key"], "-tls-client-ca", certs["ca.pem"]]
        m = self.master("-demo", "300", "-demo-slaves", "1", *tls)
        s = self.py("slave.py", m.addr, "--authkey-file", self.key_file, "--tls-ca", certs["ca.pem"],
                    "--tls-cert", certs["client.pem"], "--tls-key", certs["client.key"])
        self.assertEqual(self.finish(m), 0, self.output(m))
        self.assertIn("demo OK: 300 tasks", self.output(m))
        self.assertEqual(self.finish(s), 0, self.output(s))

        m = self.master(*tls)
        c = distq.connect(m.hostport, key_file=self.key_file, tls_ca=certs["ca.pem"], tls_cert=certs["client.pem"],
                          tls_key=certs["client.key"], tls_server_name="master")
        self.addCleanup(c.close)
        c.queue("tasks").put(b"over tls")
        self.assertEqual(c.queue("tasks").get(timeout=HANG).payload, b"over tls")
        # Without a client certificate the master ends the handshake, and
        # plain text is not TLS: neither logs in.
        with self.assertRaises(distq.DistqError):
            distq.connect(m.hostport, key_file=self.key_file, tls_ca=certs["ca.pem"], connect_timeout=3)
        with self.assertRaises(distq.DistqError):
            distq.connect(m.hostport, key_file=self.key_file, connect_timeout=3)
        with self.assertRaises(ValueError):
            distq.connect(m.hostport, key_file=self.key_file, tls_cert=certs["client.pem"])


if __name__ == "__main__":
    unittest.main()
