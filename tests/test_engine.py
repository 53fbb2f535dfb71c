"""The capture engine: capture threads, work-queue pairs, basic and advanced mode."""
import select
import struct
import threading
import time

import pytest

from wirecap import _engine, engine, sim
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile


pytestmark = pytest.mark.usefixtures("fresh_model")


@pytest.fixture(autouse=True)
def every_stop_takes_every_chunk_back(monkeypatch):
    """After every stop() of every test: free + armed = R, nothing captured, waiting for a
    send or queued for the application."""
    stop = Engine.stop

    def checked(eng):
        stop(eng)
        if eng.nics:
            for w in eng.workers:
                free, armed, captured = w.rxq.accounting()
                assert (free + armed, captured, w.rxq.stats()["waiting_tx"]) == \
                    (w.rxq.chunks, 0, 0)
                assert len(w.capture_q) == 0
    monkeypatch.setattr(Engine, "stop", checked)


def wire(eng):
    return eng.nics[0].port.wire


def consume(eng, per_queue_budget=None, until=lambda: False, settle=0.1, cost_s=0.0):
    """Read every queue round robin until the wire is done and nothing came for ``settle``
    seconds; returns packets per owner queue. ``per_queue_budget`` chunks per queue per
    round and ``cost_s`` of work per chunk make a consumer that falls behind."""
    got = [0] * len(eng.workers)
    quiet = time.monotonic() + settle
    while wire(eng).running or time.monotonic() < quiet or until():
        for q in range(len(eng.workers)):
            for _ in range(per_queue_budget or 1_000_000):
                c = eng.next_chunk(q, timeout=0)
                if c is None:
                    break
                got[c.owner.index] += len(c)
                end = time.perf_counter() + cost_s
                while time.perf_counter() < end:
                    pass
                c.release()
                quiet = time.monotonic() + settle
    return got


@pytest.mark.parametrize("mode", ["basic", "advanced"])
@pytest.mark.parametrize("threads", [True, False])
def test_conservation_is_exact_per_queue_and_in_total(mode, threads):
    with Engine("sim:0", queues=4, mode=mode, ndesc=256, segment=32, chunks=16,
                threads=threads, flush_us=100) as eng:
        p = TrafficProfile(count=40_000, flows=32, rate=800_000)
        wire(eng).play(p)
        got = consume(eng)
        st = eng.stats()
        for q, s in enumerate(st):
            # everything the NIC took for this queue reached the application or was counted
            assert got[q] == s["nic_delivered"] == s["packets"]
        drops = sum(s["nic_dropped"] for s in st)
        assert sum(got) + drops == 40_000


def test_advanced_mode_offloads_the_heavy_queue_and_chunks_go_home():
    with Engine("sim:0", queues=4, mode="advanced", threshold=0.3, ndesc=256, segment=32,
                chunks=24, flush_us=100) as eng:
        p = TrafficProfile(count=60_000, flows=8, weights=(30, 1, 1, 1, 1, 1, 1, 1),
                           rate=600_000)
        wire(eng).play(p)
        got = consume(eng, per_queue_budget=1, cost_s=50e-6)    # the heavy queue falls behind
        st = eng.stats()
        heavy = max(range(4), key=lambda q: st[q]["packets"])
        assert st[heavy]["offloaded_out"] > 0
        assert sum(s["offloaded_in"] for s in st) == sum(s["offloaded_out"] for s in st)
        assert sum(got) + sum(s["nic_dropped"] for s in st) == 60_000
        for q, s in enumerate(st):
            assert got[q] == s["packets"]           # counted on the owner, wherever it was read
        eng.stop()
        for w in eng.workers:
            free, armed, captured = w.rxq.accounting()
            assert captured == 0 and free + armed == w.rxq.chunks


def test_basic_mode_never_offloads():
    with Engine("sim:0", queues=2, mode="basic", ndesc=128, segment=16, chunks=9) as eng:
        wire(eng).play(TrafficProfile(count=5000, flows=4, weights=(9, 1, 1, 1), rate=500_000))
        consume(eng, per_queue_budget=1)
        assert all(s["offloaded_out"] == 0 and s["offloaded_in"] == 0 for s in eng.stats())


def test_stop_returns_every_chunk_and_restart_leaks_nothing():
    with Engine("sim:0", queues=2, ndesc=128, segment=16, chunks=12, flush_us=0) as eng:
        wire(eng).send(TrafficProfile(count=500, flows=8))
        time.sleep(0.05)
        held = eng.next_chunk(0, timeout=1)         # the application keeps one
        eng.stop()
        assert eng.discarded > 0                    # queued chunks nobody read
        for w in eng.workers:
            free, armed, captured = w.rxq.accounting()
            assert captured == 0 and armed == w.rxq.nseg
            assert len(w.capture_q) == 0
        with pytest.raises(WirecapError, match="engine was stopped"):
            held.release()                          # reclaimed by stop(): its handle is void
        with pytest.raises(WirecapError, match="engine was stopped"):
            held.lengths
        eng.start()
        consume(eng)                                # what the rings held while stopped
        before = eng.nics[0].counters()
        p = TrafficProfile(count=200, flows=8, sizes=(128,), seed=3, rate=100_000)
        wire(eng).play(p)           # paced: a synchronous burst could outrun a 128-entry ring
        got = []
        quiet = time.monotonic() + 0.2
        while wire(eng).running or time.monotonic() < quiet:
            for q in (0, 1):
                if (c := eng.next_chunk(q, timeout=0)) is not None:
                    got += [struct.unpack_from("<Q", bytes(x), p.stamp_offset)[0] for x in c]
                    c.release()
                    quiet = time.monotonic() + 0.2
        after = eng.nics[0].counters()
        # two cores, four busy threads: a descheduled capture thread may let a ring run dry,
        # and then the NIC drops and counts; what matters is that nothing goes missing
        dropped = sum(after[f"QPRDC{q}"] - before[f"QPRDC{q}"] for q in (0, 1))
        assert len(got) == len(set(got)) and set(got) <= set(range(200))
        assert len(got) + dropped == 200 and got


def test_chunk_views_and_use_after_release():
    with Engine("sim:0", queues=1, ndesc=128, segment=16, chunks=12, flush_us=0) as eng:
        p = TrafficProfile(count=16)
        wire(eng).send(p)
        c = eng.next_chunk(0, timeout=2)
        mac = bytes.fromhex(eng.nics[0].mac.replace(":", ""))
        assert [bytes(x) for x in c] == [p.frame(i, mac) for i in range(len(c))]
        assert list(c.lengths) == [60] * len(c)
        c.release()
        with pytest.raises(WirecapError, match="released"):
            c.packet(0)
        with pytest.raises(WirecapError, match="already released"):
            c.release()


@pytest.mark.parametrize("kw,match", [
    (dict(mode="turbo"), "basic' or 'advanced"),
    (dict(threshold=1.5), "0 < T <= 1"),
    (dict(queues=0), "1 to 16"),
    (dict(devices=[]), "no device"),
    (dict(devices="wcnope0"), "sim:0.*pci:0000:03:00.0.*afpacket:eth0"),
    (dict(segment=100), "must divide"),
    # before unsigned C arguments: one line, not an OverflowError or a ValueError
    (dict(segment=-1), r"segment=-1: give a whole number"),
    (dict(chunks=2**40), r"chunks=1099511627776: give a whole number"),
    (dict(ndesc=2.5), r"ndesc=2.5: give a whole number"),
    (dict(bufsize=-2048), r"bufsize=-2048: give a whole number"),
    (dict(queues=True), "queues=True"),
    (dict(threshold="high"), "0 < T <= 1"),
    (dict(flush_us=float("nan")), r"flush_us=nan: .* or None"),
    (dict(flush_us=1e30), r"flush_us=1e\+30"),
    (dict(counter_interval=0), "counter_interval=0: seconds"),
    (dict(counter_interval=float("inf")), "counter_interval=inf"),
])
def test_engine_misuse_is_refused(kw, match):
    with pytest.raises(WirecapError, match=match):
        Engine(**kw)


def test_pools_that_do_not_fit_in_memory_are_refused_in_one_line(monkeypatch):
    import wirecap.engine
    real = wirecap.engine.open_device

    class Starved:                      # a device whose DMA memory runs out
        def __init__(self, nic):
            self.nic = nic

        def __getattr__(self, name):
            return getattr(self.nic, name)

        def rx_queue(self, *a, **kw):
            raise MemoryError("DMA memory: mmap of 104857600000 bytes failed")
    monkeypatch.setattr(wirecap.engine, "open_device", lambda *a, **kw: Starved(real(*a, **kw)))
    with pytest.raises(WirecapError, match="do not fit in memory; give fewer chunks"):
        Engine("sim:0", chunks=200_000)
    monkeypatch.undo()
    Engine("sim:0").close()             # and the port was given back


def test_reading_before_start_and_a_bad_queue_are_refused():
    eng = Engine("sim:0", queues=2)
    try:
        with pytest.raises(WirecapError, match="not running"):
            eng.next_chunk(0)
        eng.start()
        with pytest.raises(WirecapError, match="queues 0 to 1"):
            eng.next_chunk(5)
    finally:
        eng.close()


def test_the_capture_queue_descriptor_is_selectable():
    with Engine("sim:0", queues=1, ndesc=128, segment=16, flush_us=0) as eng:
        fd = eng.workers[0].capture_q.fileno()
        assert select.select([fd], [], [], 0)[0] == []
        wire(eng).send(TrafficProfile(count=16))
        assert select.select([fd], [], [], 2)[0] == [fd]
        c = eng.next_chunk(0, timeout=1)
        while (x := eng.next_chunk(0, timeout=0)) is not None:
            x.release()
        assert select.select([fd], [], [], 0)[0] == []
        c.release()


def test_a_descriptor_taken_while_chunks_wait_is_readable_at_once():
    # the queue writes its eventfd only for sleepers until fileno() asks for level semantics
    with Engine("sim:0", queues=1, ndesc=128, segment=16, flush_us=0) as eng:
        wire(eng).send(TrafficProfile(count=32))
        deadline = time.monotonic() + 5
        while len(eng.workers[0].capture_q) == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        fd = eng.fileno(0)
        assert select.select([fd], [], [], 0)[0] == [fd]
        chunks = []
        while sum(len(c) for c in chunks) < 32:
            chunks.append(eng.next_chunk(0, timeout=1))
        assert select.select([fd], [], [], 0)[0] == []
        for c in chunks:
            c.release()


def test_two_readers_asleep_on_one_queue_both_see_the_chunk_that_comes():
    # two sleepers may take each other's wake-up: each still looks again within a slice
    with Engine("sim:0", queues=1, ndesc=128, segment=16, flush_us=0) as eng:
        got = []
        readers = [threading.Thread(target=lambda: got.append(eng.wait([0])), daemon=True)
                   for _ in range(2)]       # no timeout: a lost wake-up would hang
        for t in readers:
            t.start()
        time.sleep(0.2)                 # both past their spin, asleep
        wire(eng).send(TrafficProfile(count=16))
        for t in readers:
            t.join(10)
        assert got == [True, True]
        eng.next_chunk(0, timeout=1).release()


def test_a_reader_keeps_polling_while_traffic_flows_on_a_polled_device(monkeypatch):
    # what wait() spins for before it sleeps: SPIN_US when idle, FLOW_SPIN_US after a chunk
    # came less than FLOW_S ago (the model must be polled), never past the timeout
    spins, sleeps = [], []
    real_spin, real_sleep = _engine.spin_ready, _engine.sleep_ready
    monkeypatch.setattr(_engine, "spin_ready",
                        lambda ws, ns: spins.append(ns) or real_spin(ws, ns))
    monkeypatch.setattr(_engine, "sleep_ready",
                        lambda ws, t: sleeps.append(t) or real_sleep(ws, t))
    with Engine("sim:0", queues=1, ndesc=128, segment=16, flush_us=0) as eng:
        assert eng.workers[0].rxq.polled
        assert eng.wait(timeout=0.01) is False          # idle so far: a short spin
        assert spins[-1] == engine.SPIN_US * 1000
        wire(eng).send(TrafficProfile(count=16))
        before = time.monotonic()
        assert eng.wait(timeout=5) is True
        assert eng._chunk_at >= before                  # the flow is noticed
        got = 0
        while got < 16:                 # flush_us=0 may hand the 16 frames out in parts
            c = eng.next_chunk(0, timeout=1)
            got += len(c)
            c.release()
        spins.clear(), sleeps.clear()
        eng._chunk_at = time.monotonic()                # (however slow this machine is)
        assert eng.wait(timeout=0.05) is False          # traffic flowed: it keeps polling
        assert spins == [engine.FLOW_SPIN_US * 1000]
        eng._chunk_at = time.monotonic()
        assert eng.wait(timeout=0.0005) is False        # but never past the timeout
        assert spins[-1] == 500_000 and sleeps[-1] <= 0
        eng._chunk_at -= engine.FLOW_S                  # the flow ended long ago
        eng.wait(timeout=0.01)
        assert spins[-1] == engine.SPIN_US * 1000


@pytest.mark.parametrize("threads", [True, False])
def test_wait_returns_when_a_chunk_waits_and_times_out_when_none_does(threads):
    with Engine("sim:0", queues=2, ndesc=128, segment=16, flush_us=0, threads=threads) as eng:
        t0 = time.monotonic()
        assert eng.wait(timeout=0.05) is False                  # nothing sent: the timeout
        assert time.monotonic() - t0 >= 0.04
        wire(eng).send(TrafficProfile(count=64, flows=8))
        if not threads:                 # inline: the reading thread's capture step
            eng.workers[0].poll_inline(); eng.workers[1].poll_inline()
        assert eng.wait(timeout=2) is True
        got, deadline = 0, time.monotonic() + 10
        while got < 64 and time.monotonic() < deadline:
            for q in range(2):
                if eng.wait([q], timeout=0.01):
                    while (c := eng.next_chunk(q, timeout=0)) is not None:
                        got += len(c)
                        c.release()
        assert got == 64
        assert eng.wait(timeout=0) is False                     # all taken: not ready again


def test_forwarding_modified_packets_zero_copy_between_engine_ports():
    sim.reset()
    a, b = sim.pair(0, 1)                           # cabled, one DMA domain
    p = TrafficProfile(count=600, flows=8, rate=100_000)
    with Engine(["sim:0", "sim:1"], queues=1, ndesc=1024, segment=32, chunks=40,
                flush_us=200) as eng:
        tx = eng.tx_queue("sim:0")
        mac = bytes.fromhex(eng.nics[0].mac.replace(":", ""))
        sent = [p.frame(i, mac) for i in range(600)]
        a.wire.play(p)
        forwarded, arrived = 0, []
        deadline = time.monotonic() + 30
        while len(arrived) < 600 and time.monotonic() < deadline:
            c = eng.next_chunk(0, timeout=0.01)
            if c is not None:
                for i in range(len(c)):
                    c.packet(i)[22] = 63            # decrement the TTL in place
                    tx.forward(c, i, push=False)
                forwarded += len(c)
                tx.flush()
                c.release()                         # it returns once the NIC sent it too
            tx.collect()
            while (d := eng.next_chunk(1, timeout=0)) is not None:
                arrived += [bytes(x) for x in d]
                d.release()
        assert forwarded == 600 and tx.stats()["zero_copy"] == 600
        assert arrived == [f[:22] + b"\x3f" + f[23:] for f in sent]
        with pytest.raises(WirecapError, match="this engine has sim:0, sim:1"):
            eng.tx_queue("sim:7")


@pytest.mark.parametrize("key", [None, bytes(range(7, 47))])
def test_rss_key_is_configurable(key):
    from wirecap._pmd import DATASHEET_RSS_KEY
    p = TrafficProfile(count=64, flows=64)
    with Engine("sim:0", queues=4, rss_key=key, segment=16, chunks=80, flush_us=0) as eng:
        mac = bytes.fromhex(eng.nics[0].mac.replace(":", ""))
        wire(eng).send(p)
        hashes = {}
        deadline = time.monotonic() + 10
        while len(hashes) < 64 and time.monotonic() < deadline:
            for q in range(4):
                while (c := eng.next_chunk(q, timeout=0.01)) is not None:
                    for i in range(len(c)):
                        hashes[bytes(c.packet(i))] = (int(c.rss_hashes[i]), q)
                    c.release()
    want_key = DATASHEET_RSS_KEY if key is None else key
    for i in range(64):
        f = p.frame(i, mac)
        h = sim.toeplitz(want_key, f[26:38])
        assert hashes[f] == (h, (h & 0x7F) % 4)
    with pytest.raises(WirecapError, match="exactly 40"):
        Engine("sim:0", rss_key=b"short")


# ----------------------------------------------------------------------------- capture threads
def stamps(chunk, p):
    return [struct.unpack_from("<Q", bytes(x), p.stamp_offset)[0] for x in chunk]


@pytest.mark.parametrize("mode", ["basic", "advanced"])
def test_one_capture_thread_serves_every_queue_and_delivers_each_frame_once(mode):
    p = TrafficProfile(count=30_000, flows=32, rate=400_000)
    with Engine("sim:0", queues=4, mode=mode, threshold=0.3, capture_cpus=1, ndesc=256,
                segment=32, chunks=24, flush_us=100) as eng:
        assert [len(t.workers) for t in eng.capture_threads] == [4]
        wire(eng).play(p)
        seen, quiet = [], time.monotonic() + 0.2
        while wire(eng).running or time.monotonic() < quiet:
            for q in range(4):
                while (c := eng.next_chunk(q, timeout=0)) is not None:
                    seen += stamps(c, p)
                    c.release()
                    quiet = time.monotonic() + 0.2
        st = eng.stats()
        assert len(seen) == len(set(seen)) and set(seen) <= set(range(30_000))
        assert len(seen) + sum(s["nic_dropped"] for s in st) == 30_000
        assert sum(s["packets"] for s in st) == len(seen)


def test_capture_threads_take_queues_in_turn_and_the_default_leaves_a_core(monkeypatch):
    import os
    def engine(cpus, **kw):                     # built, not started: these CPUs are made up
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus)
        eng = Engine("sim:0", **kw)
        eng.close()
        return [[w.index for w in t.workers] for t in eng.capture_threads], eng._cpus

    # two CPUs: one thread for every queue, on the second CPU
    assert engine({0, 1}, queues=4) == ([[0, 1, 2, 3]], [{1}])
    assert engine({0}, queues=2) == ([[0, 1]], [{0}])
    assert engine(set(range(8)), queues=3)[0] == [[0], [1], [2]]   # at most one per queue
    assert engine(set(range(8)), queues=4, capture_cpus=[{2, 3}, 5]) == \
        ([[0, 2], [1, 3]], [{2, 3}, {5}])
    assert engine(set(range(8)), queues=4, capture_cpus=2) == ([[0, 2], [1, 3]], [{7}, {6}])


@pytest.mark.parametrize("cpus,match", [
    ([{97}], r"\{97\} is not a CPU .* may use CPUs"),
    ([97], "97 is not a CPU"),
    (["x"], "'x' is not a CPU"),
    ([set()], "is not a CPU"),
    (0, "1 to 2 capture threads"),
    (3, "1 to 2 capture threads"),
    ([0, 0, 0], "3 capture threads for 2 queues"),
    ("0", "a number of capture threads or a list"),
])
def test_bad_capture_cpus_are_refused_before_anything_opens(cpus, match):
    with pytest.raises(WirecapError, match=match):
        Engine("sim:0", queues=2, capture_cpus=cpus)
    Engine("sim:0", queues=2).close()           # nothing was left open


def test_a_capture_thread_that_cannot_start_fails_start_and_leaves_nothing_running(monkeypatch):
    import os
    import threading
    real = os.sched_setaffinity
    calls = []

    def refuse_second(pid, cpus):
        calls.append(cpus)
        if len(calls) == 2:
            raise OSError(22, "Invalid argument")
        real(pid, cpus)
    monkeypatch.setattr(os, "sched_setaffinity", refuse_second)
    cpu = min(os.sched_getaffinity(0))
    eng = Engine("sim:0", queues=2, capture_cpus=[cpu, cpu])
    try:
        with pytest.raises(WirecapError, match=r"^capture thread 1 \(queues 1\): cannot run on "
                                               r"CPUs \d+: Invalid argument; nothing was started$"):
            eng.start()
        assert not any(t.name.startswith("wirecap-capture") for t in threading.enumerate())
        with pytest.raises(WirecapError, match="not running"):
            eng.next_chunk(0, timeout=0)
        monkeypatch.setattr(os, "sched_setaffinity", real)
        eng.start()                             # a later start works
        wire(eng).send(TrafficProfile(count=256))
        got = sum(len(c) for c in _drain(eng, 0))
        assert got == 256
    finally:
        eng.close()


def _drain(eng, q, settle=0.3):
    out = []
    while (c := eng.next_chunk(q, timeout=settle)) is not None:
        out.append(c)
        c.release()
    return out


def test_start_after_close_is_refused():
    eng = Engine("sim:0")
    eng.close()
    with pytest.raises(WirecapError, match="closed"):
        eng.start()


# ----------------------------------------------------------------------------- concurrency
@pytest.mark.parametrize("threads", [False, True])
def test_reader_threads_on_every_queue_get_each_frame_once(threads):
    import threading
    n = 1_500_000                               # 1.5 s: long enough for the readers to race
    p = TrafficProfile(count=n, flows=32, rate=1_000_000)
    with Engine("sim:0", queues=4, threads=threads, ndesc=256, segment=32, chunks=16,
                flush_us=100) as eng:
        seen = [[] for _ in range(8)]           # (token, packets) of every delivery
        done = threading.Event()

        def reader(r):                          # two readers per queue, polling hard
            while not done.is_set():
                c = eng.next_chunk(r % 4, timeout=0)
                if c is not None:
                    seen[r].append((c.token, len(c)))
                    c.release()
        readers = [threading.Thread(target=reader, args=(r,)) for r in range(8)]
        for t in readers:
            t.start()
        wire(eng).play(p)
        wire(eng).wait(120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:      # until every frame is read or counted
            st = eng.stats()
            if sum(k for r in seen for _, k in r) + sum(s["nic_dropped"] for s in st) >= n:
                break
            time.sleep(0.05)
        done.set()
        for t in readers:
            t.join()
        st = eng.stats()
        # a token names one delivery of one chunk's generation: seen twice, handed out twice
        # (a chunk is reused ~R*M/delivery times here, far below the 16-bit generation wrap)
        tokens = [t for r in seen for t, _ in r]
        assert len(tokens) == len(set(tokens))
        assert all(s["refused"] == 0 for s in st)
        assert sum(k for r in seen for _, k in r) + sum(s["nic_dropped"] for s in st) == n
        for w in eng.workers:
            assert len(w.capture_q) == 0
            free, armed, captured = w.rxq.accounting()
            assert free + armed + captured == w.rxq.chunks and armed <= w.rxq.nseg


STOP_SCRIPT = r"""
import sys, threading, time
from wirecap.engine import Engine
from wirecap.errors import WirecapError
device, threads, how, api = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
kw = dict(block_size=1 << 20, chunks=4) if device.startswith("afpacket") else {}
eng = Engine(device, threads=threads, **kw).start()
ended = threading.Event()
def release(c):
    try:
        c.release()
    except WirecapError:        # stopped while we held it (lo may carry others' traffic)
        pass
def reader():
    if api == "chunks":
        for c in eng.chunks(0):
            release(c)
    else:
        while (c := eng.next_chunk(0, timeout=None)) is not None:
            release(c)
    ended.set()
t = threading.Thread(target=reader, daemon=True)
t.start()
time.sleep(0.3)                 # the reader waits for a chunk that never comes
getattr(eng, how)()
print("returned" if ended.wait(10) else "still blocked")
"""


@pytest.mark.parametrize("device", ["sim:0", "afpacket:lo"])
@pytest.mark.parametrize("threads", [True, False])
@pytest.mark.parametrize("how,api", [("stop", "chunks"), ("close", "next_chunk")])
def test_a_blocked_reader_returns_when_another_thread_stops_or_closes(device, threads, how,
                                                                       api):
    import subprocess
    import sys
    if device.startswith("afpacket"):
        from wirecap.afpacket import veth
        if veth.missing() is not None:
            pytest.skip(str(veth.missing()))
    r = subprocess.run([sys.executable, "-c", STOP_SCRIPT, device, str(int(threads)), how,
                        api], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "returned"


@pytest.mark.parametrize("threads", [False, True])
def test_a_reader_inside_next_chunk_captures_nothing_during_or_after_stop(threads):
    import threading
    with Engine("sim:0", queues=2, threads=threads, ndesc=128, segment=16, chunks=12,
                flush_us=0) as eng:
        wire(eng).play(TrafficProfile(count=10**8, flows=8, rate=300_000))
        stop_reading = threading.Event()

        def reader(q):
            while not stop_reading.is_set():
                try:
                    c = eng.next_chunk(q, timeout=0)
                except WirecapError:            # stopped between two calls
                    continue
                if c is not None:
                    try:
                        c.release()
                    except WirecapError:        # stopped while holding it: taken back
                        pass
        readers = [threading.Thread(target=reader, args=(q % 2,)) for q in range(3)]
        for t in readers:
            t.start()
        try:
            for _ in range(40):
                time.sleep(0.01)
                eng.stop()
                for w in eng.workers:           # stop() took every chunk back, and nobody
                    for _ in range(3):          # captures while stopped
                        free, armed, captured = w.rxq.accounting()
                        assert captured == 0 and free + armed == w.rxq.chunks
                        assert len(w.capture_q) == 0
                        time.sleep(0.002)
                eng.start()
        finally:
            stop_reading.set()
            wire(eng).stop()
            for t in readers:
                t.join()


def test_stop_brings_forwarded_chunks_home():
    # 10 chunks, each forwarded and never collected nor even pushed: stop() reaps them
    with Engine("sim:0", queues=1, ndesc=64, segment=8, chunks=10, flush_us=0) as eng:
        tx = eng.tx_queue(0)
        got = 0
        for run in range(2):
            wire(eng).send(TrafficProfile(count=80, seed=run))
            while (c := eng.next_chunk(0, timeout=0.5)) is not None:
                for i in range(len(c)):
                    tx.forward(c, i, push=False)
                got += len(c)
                c.release()
            eng.stop()
            free, armed, captured = eng.workers[0].rxq.accounting()
            assert (free + armed, captured) == (10, 0)
            assert eng.workers[0].rxq.stats()["waiting_tx"] == 0
            assert got + eng.discarded + eng.stats()[0]["nic_dropped"] == 80 * (run + 1)
            assert got > 80 * run
            eng.start()


def test_forwarded_chunks_come_home_while_running_without_collect():
    with Engine("sim:0", queues=1, ndesc=64, segment=8, chunks=10, flush_us=0) as eng:
        tx = eng.tx_queue(0)
        got = 0
        for run in range(5):                    # 5 x 80 frames through a pool of 80 buffers
            wire(eng).send(TrafficProfile(count=80, seed=run))
            while (c := eng.next_chunk(0, timeout=0.3)) is not None:
                for i in range(len(c)):
                    tx.forward(c, i)
                got += len(c)
                c.release()
        assert got + eng.stats()[0]["nic_dropped"] == 400 and got > 80


@pytest.mark.parametrize("flush_us", [10_000_000, None])
def test_stop_counts_what_the_nic_already_wrote_into_the_ring(flush_us):
    with Engine("sim:0", queues=1, ndesc=256, segment=64, chunks=8, flush_us=flush_us) as eng:
        wire(eng).send(TrafficProfile(count=100))   # one full segment, 36 in the next
        c = eng.next_chunk(0, timeout=5)
        assert len(c) == 64
        c.release()
        time.sleep(0.05)
        eng.stop()
        st = eng.stats()[0]
        assert (st["nic_dropped"], eng.discarded) == (0, 36)
        eng.start()                             # nothing from before the stop resurfaces
        assert eng.next_chunk(0, timeout=0.2) is None
