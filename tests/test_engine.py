"""The capture engine: capture threads, work-queue pairs, basic and advanced mode."""
import select
import struct
import time

import pytest

from wirecap import sim
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile


pytestmark = pytest.mark.usefixtures("fresh_model")


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
])
def test_engine_misuse_is_refused(kw, match):
    with pytest.raises(WirecapError, match=match):
        Engine(**kw)


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
