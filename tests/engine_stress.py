"""Random start/stop/close/release/forward interleavings on one engine with several reader
threads, checking after every stop that the engine took every chunk back, and at the end of
each round exact conservation: sent = delivered + discarded + counted drops.

Run by tests/test_engine_stress.py in a subprocess (a hang fails by timeout, not forever):
    python tests/engine_stress.py --seconds 3 --threads 1 --seed 7
Prints one JSON line of totals; exits non-zero (an AssertionError) on the first violation.
"""
import argparse
import json
import random
import sys
import threading
import time

from wirecap import sim
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile


def check_stopped(eng, where):
    """What stop() promises, for every pool of the engine."""
    for w in eng.workers:
        free, armed, captured = w.accounting()
        s = w.rxq.stats()
        assert captured == 0 and s["waiting_tx"] == 0, (where, w.index, free, armed, captured)
        assert free + armed == w.rxq.chunks, (where, w.index, free, armed)
        assert len(w.capture_q) == 0, (where, w.index, len(w.capture_q))
        assert s["refused"] == 0 and w.stats()["refused"] == 0, (where, w.index, s)


class Readers:
    """Reader threads: take chunks (timeouts 0, short or None), then release, hold (for the
    controller to release from another thread) or forward them."""

    def __init__(self, eng, tx, rng, n):
        self.eng, self.tx, self.lock = eng, tx, threading.Lock()
        self.delivered, self.held, self.errors = 0, [], []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(rng.randrange(1 << 30),),
                                         daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, seed):
        rng = random.Random(seed)
        q = rng.randrange(len(self.eng.workers))
        while not self.done.is_set():
            try:
                c = self.eng.next_chunk(q, timeout=rng.choice([0, 0.002, 0.02, None]))
            except WirecapError:                # not running (between stop and start)
                time.sleep(0.001)
                continue
            except BaseException as e:          # anything else is a failure
                self.errors.append(repr(e))
                return
            if c is None:
                continue
            with self.lock:
                self.delivered += len(c)
            try:
                act = rng.random()
                if act < 0.2:
                    with self.lock:
                        self.held.append(c)     # the controller releases it later
                    continue
                if act < 0.4 and self.tx is not None:
                    for i in range(rng.randrange(len(c) + 1)):
                        self.tx.forward(c, i, push=rng.random() < 0.5)
                c.release()
            except WirecapError:                # stopped meanwhile (or the ring is full)
                pass
            except BaseException as e:
                self.errors.append(repr(e))
                return

    def release_some(self, rng):
        with self.lock:
            rng.shuffle(self.held)
            take, self.held = self.held[:len(self.held) // 2], self.held[len(self.held) // 2:]
        for c in take:
            try:
                c.release()
            except WirecapError:                # taken back by a stop since
                pass

    def finish(self, timeout=20):
        self.done.set()
        for t in self.threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "a reader did not return"
        assert not self.errors, self.errors


def one_round(rng, threads, totals):
    sim.reset()
    queues = rng.choice([1, 2, 4])
    eng = Engine("sim:0", queues=queues, mode=rng.choice(["basic", "advanced"]),
                 threshold=rng.choice([0.2, 0.6]), threads=threads, ndesc=128, segment=16,
                 chunks=rng.randint(9, 24), flush_us=rng.choice([0, 200, None]),
                 capture_cpus=(rng.randint(1, queues) if threads else None))
    tx = eng.tx_queue(0) if rng.random() < 0.7 else None
    wire = eng.nics[0].port.wire
    count = rng.randint(5_000, 40_000)
    eng.start()
    wire.play(TrafficProfile(count=count, flows=16, rate=rng.choice([2e5, 5e5, 1e6]),
                             sizes=rng.choice([(64,), (64, 1519)]),   # 1519: the MAC drops it
                             seed=rng.randrange(1000)))
    readers = Readers(eng, tx, rng, rng.randint(1, queues + 2))
    running = True
    while wire.running:
        time.sleep(rng.choice([0, 0.001, 0.005, 0.02]))
        op = rng.random()
        if op < 0.35:
            if running:
                eng.stop()
                totals["stops"] += 1
                check_stopped(eng, "stop")
            else:
                eng.start()
            running = not running
        elif op < 0.5:
            eng.stop()                          # a second stop is harmless
            if running:
                totals["stops"] += 1
            check_stopped(eng, "stop")
            running = False
        elif op < 0.8:
            readers.release_some(rng)
        elif op < 0.9 and tx is not None:
            tx.collect()
    wire.stop()
    if rng.random() < 0.3:                      # close under the readers' feet
        eng.close()
        readers.finish()
        totals["closes"] += 1
        totals["rounds"] += 1
        return
    eng.stop()
    totals["stops"] += 1
    check_stopped(eng, "final stop")
    a = eng.accounting()
    dropped = a["dropped"]
    sent = wire.stats()["sent"]
    with readers.lock:
        delivered = readers.delivered
    assert delivered == a["delivered"] and delivered + a["discarded"] + dropped == sent, (
        delivered, a, sent,
        {k: v for k, v in eng.nics[0].counters().items() if v and not k.startswith("Q")},
        eng.nics[0].port.diagnostics(),
        [w.rxq.ring_state() for w in eng.workers][:1])
    eng.close()
    readers.finish()
    totals["rounds"] += 1
    totals["frames"] += sent
    totals["delivered"] += delivered
    totals["discarded"] += eng.discarded
    totals["dropped"] += dropped


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args(argv)
    seed = random.randrange(1 << 30) if a.seed is None else a.seed
    print(f"seed {seed}", file=sys.stderr)
    rng = random.Random(seed)
    totals = dict(rounds=0, closes=0, stops=0, frames=0, delivered=0, discarded=0, dropped=0)
    end = time.monotonic() + a.seconds
    while totals["rounds"] == 0 or time.monotonic() < end:
        one_round(rng, bool(a.threads), totals)
    print(json.dumps(dict(totals, seed=seed)))


if __name__ == "__main__":
    main()
