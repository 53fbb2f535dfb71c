"""The poll-mode driver against the 82599 model (DESIGN §4, issue 3)."""
import struct
import time

import numpy as np
import pytest

from wirecap import ixgbe as r
from wirecap import _pmd, sim
from wirecap._dma import Domain
from wirecap.devices import open_device
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile


@pytest.fixture
def nic():
    sim.reset()                         # a fresh model port per test
    n = open_device("sim:0")
    yield n
    n.port.wire.stop()
    n.close()


def mac_of(nic):
    return bytes.fromhex(nic.mac.replace(":", ""))


def seq(pkt, profile):
    return struct.unpack_from("<Q", bytes(pkt), profile.stamp_offset)[0]


def drain(q, keep=False):
    """Capture until nothing is ready; return the packets (bytes) and release every chunk."""
    out = []
    while (c := q.poll()) is not None:
        out += [bytes(p) for p in c]
        if not keep:
            c.release()
    return out


@pytest.mark.parametrize("concurrent", [True, False])    # the wire thread races the driver
def test_every_frame_delivered_in_order_or_counted_with_the_wire_running(nic, concurrent):
    nic.set_rss(4)
    qs = [nic.rx_queue(i, ndesc=256, segment=32, chunks=40, flush_us=200) for i in range(4)]
    nic.start()
    p = TrafficProfile(count=60_000, flows=32, rate=1_000_000)
    nic.port.wire.play(p, concurrent=concurrent)
    got = [[] for _ in qs]
    while nic.port.wire.running:
        for q, g in zip(qs, got):
            g += [seq(x, p) for x in drain(q)]
    quiet_until = time.monotonic() + 0.05       # the flush timer starts when a poll sees data
    while time.monotonic() < quiet_until:
        for q, g in zip(qs, got):
            new = drain(q)
            if new:
                quiet_until = time.monotonic() + 0.05
            g += [seq(x, p) for x in new]
    c = nic.counters()
    for i, g in enumerate(got):
        assert g == sorted(g), f"queue {i} out of order"
        assert len(g) + c[f"QPRDC{i}"] == c[f"QPRC{i}"] + c[f"QPRDC{i}"]
    delivered = sum(map(len, got))
    drops = sum(c[f"QPRDC{i}"] for i in range(4)) + c["MPC0"]
    assert delivered + drops == 60_000
    assert len(set(x for g in got for x in g)) == delivered      # nothing delivered twice
    for q in qs:
        free, armed, captured = q.accounting()
        assert free + armed + captured == q.chunks and captured == 0


def test_packets_are_byte_exact_and_metadata_is_right(nic):
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=None)
    nic.start()
    p = TrafficProfile(count=48, sizes=(64, 300, 1518), flows=3)
    nic.port.wire.send(p)
    chunks = [q.poll() for _ in range(3)]
    assert q.poll() is None and all(len(c) == 16 for c in chunks)
    for k, c in enumerate(chunks):
        for i, pkt in enumerate(c):
            want = p.frame(16 * k + i, mac_of(nic))
            assert bytes(pkt) == want and c.lengths[i] == len(want)
        assert np.all(c.status & r.RXDADV_STAT_DD) and np.all(c.status & r.RXDADV_STAT_EOP)
        assert np.all(c.packet_info & r.RXDADV_PKTTYPE_UDP)
        assert np.all(c.timestamps > 1_600_000_000 * 10**9)
        c.release()


def test_pool_empty_segments_wait_and_the_nic_counts_drops(nic):
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=None)
    nic.start()
    nic.port.wire.send(TrafficProfile(count=200, flows=1))
    # One descriptor is always withheld (RDT), so the NIC wrote 63 frames and dropped 137.
    held = []
    while (c := q.poll()) is not None:
        held.append(c)
    # segment 0 got the spare chunk; segments 1 and 2 found the pool empty and wait unarmed;
    # segment 3 holds 15 frames and is not full
    assert [len(h) for h in held] == [16, 16, 16]
    assert q.accounting() == (0, 2, 3) and q.stats()["pool_empty"] == 2
    c = nic.counters()
    assert (c["QPRC0"], c["QPRDC0"]) == (63, 137)
    for h in held:
        h.release()                 # chunks come back: the waiting segments are re-armed
    assert q.accounting() == (1, 4, 0)
    p = TrafficProfile(count=16, flows=1, seed=9)
    nic.port.wire.send(p)
    c = q.poll()                    # segment 3 completes with the first new frame
    assert len(c) == 16 and bytes(c.packet(15)) == p.frame(0, mac_of(nic))
    c.release()


def test_flush_delivers_a_partial_segment_without_handing_out_nic_buffers(nic):
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=0)
    nic.start()
    p = TrafficProfile(count=5)
    nic.port.wire.send(p)
    c = q.poll()
    assert c is not None and (c.first, len(c)) == (0, 5)
    assert [bytes(x) for x in c] == [p.frame(i, mac_of(nic)) for i in range(5)]
    # zero copy: the packet is a view of its buffer in the pool, the first of its chunk
    view = np.frombuffer(c.packet(0), np.uint8)
    assert np.shares_memory(view, q.pool_array)
    assert view.ctypes.data - q.pool_array.ctypes.data == c.index * q.segment * q.stride
    nic.port.wire.send(TrafficProfile(count=3, seed=4))
    c2 = q.poll()
    assert (c2.index, c2.first, len(c2)) == (c.index, 5, 3)     # same chunk, next buffers
    assert q.accounting()[1] == q.nseg                           # still attached: no copy
    assert q.stats()["flushes"] == 2
    c.release()
    c2.release()


def test_flush_waits_for_its_timeout(nic):
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=10_000_000)   # 10 s
    nic.start()
    nic.port.wire.send(TrafficProfile(count=3))
    assert q.poll() is None and q.poll() is None


def test_bad_recycles_are_refused_and_change_nothing(nic):
    q0 = nic.rx_queue(0, ndesc=64, segment=16, chunks=6, flush_us=0)
    q1 = nic.rx_queue(1, ndesc=64, segment=16, chunks=6, flush_us=0)
    nic.start()
    nic.port.wire.send(TrafficProfile(count=16))
    c = q0.poll()
    before = (q0.accounting(), q0.stats()["recycled"])
    with pytest.raises(WirecapError, match="another queue's pool"):
        q1.recycle(c.token)
    with pytest.raises(WirecapError, match="names no chunk"):
        q0.recycle((c.token & ~(0xFFFFFFFF << 32)) | (0xFFFFF << 32))
    with pytest.raises(WirecapError, match="not outstanding"):
        q0.recycle(c.token ^ 1)                            # another first index
    with pytest.raises(WirecapError, match="give a Chunk"):
        q0.recycle("chunk 3")
    assert (q0.accounting(), q0.stats()["recycled"]) == before
    c.release()
    with pytest.raises(WirecapError, match="not outstanding|stale"):
        q0.recycle(c.token)                                # double recycle
    with pytest.raises(WirecapError, match="was released"):
        c.lengths                                          # use after release
    # stale: the chunk came back, was armed again, and the old handle is from its past life
    for _ in range(8):
        nic.port.wire.send(TrafficProfile(count=16, seed=5))
        while (x := q0.poll()) is not None:
            x.release()
    with pytest.raises(WirecapError, match="stale|not outstanding"):
        q0.recycle(c.token)
    assert q0.stats()["refused"] == 4 and q1.stats()["refused"] == 1


@pytest.mark.parametrize("kw,match", [
    (dict(ndesc=1000), "power of two"),
    (dict(ndesc=64, segment=24), "must divide"),
    (dict(ndesc=64, segment=16, chunks=4), "need N/M . 1 = 5"),
    (dict(bufsize=1500), "steps of 1024"),
    (dict(flush_us=-1), "non-negative"),
])
def test_geometry_errors_say_which_rule_broke(nic, kw, match):
    with pytest.raises(WirecapError, match=match):
        nic.rx_queue(0, **kw)


def test_queue_index_twice_is_refused(nic):
    nic.rx_queue(2, ndesc=64, segment=16)
    with pytest.raises(WirecapError, match="already set up"):
        nic.rx_queue(2, ndesc=64, segment=16)


@pytest.mark.parametrize("name,match", [("wcnope0", "sim:0.*pci:0000:03:00.0.*afpacket:eth0"),
                                        ("sim:x", "sim:0"),
                                        ("pci:0000:99:00.0", "no PCI device 0000:99:00.0.*wirecap devices")])
def test_device_name_errors(name, match):
    with pytest.raises(WirecapError, match=match):
        open_device(name)


def test_the_same_device_twice_is_refused(nic):
    with pytest.raises(WirecapError, match="in use"):
        open_device("sim:0")


def test_init_follows_the_datasheet_order():
    sim.reset()
    dev = sim.open(0)
    dev.start_trace()
    nic = open_device("sim:0")
    nic.rx_queue(0, ndesc=64, segment=16)
    nic.tx_queue(0, ndesc=64)
    nic.start()
    writes = dev.stop_trace()
    nic.close()

    def first(pred, after=-1):
        return next(i for i, (off, val) in enumerate(writes) if i > after and pred(off, val))

    mask = first(lambda o, v: o == r.EIMC and v == r.EIMS_ALL)
    reset = first(lambda o, v: o == r.CTRL and v & r.CTRL_RST, mask)       # 4.6.3.2
    remask = first(lambda o, v: o == r.EIMC, reset)
    link = first(lambda o, v: o == r.AUTOC and v & r.AUTOC_AN_RESTART, remask)   # 4.6.4
    rx_off = first(lambda o, v: o == r.RXCTRL and not v & r.RXCTRL_RXEN, link)   # 4.6.7
    te = first(lambda o, v: o == r.DMATXCTL and v & r.DMATXCTL_TE, rx_off)       # 4.6.8
    ring = first(lambda o, v: o == r.RDLEN(0), rx_off)
    q_on = first(lambda o, v: o == r.RXDCTL(0) and v & r.RXDCTL_ENABLE, ring)    # 4.6.7.1
    tail = first(lambda o, v: o == r.RDT(0) and v != 0, q_on)
    tx_on = first(lambda o, v: o == r.TXDCTL(0) and v & r.TXDCTL_ENABLE, te)
    rx_on = first(lambda o, v: o == r.RXCTRL and v & r.RXCTRL_RXEN, tail)
    assert mask == 0 and mask < reset < remask < link < rx_off < te < ring
    assert q_on < tail < rx_on and te < tx_on
    assert [o for o, _ in writes].count(r.CTRL) == 1


def test_zero_copy_forwarding_between_cabled_ports():
    sim.reset()
    a, b = sim.pair(0, 1)
    dom = Domain(a.iommu)
    na, nb = open_device("sim:0", domain=dom), open_device("sim:1", domain=dom)
    rx = na.rx_queue(0, ndesc=256, segment=32, chunks=12, flush_us=0)
    tx = na.tx_queue(0, ndesc=256)
    out = nb.rx_queue(0, ndesc=1024, segment=64, chunks=20, flush_us=0)
    na.start()
    nb.start()
    # the frames travel a -> (forwarded out of a's TX) -> b; addressed to b
    p = TrafficProfile(count=2000, flows=4)
    frames = [p.frame(i, mac_of(nb)) for i in range(2000)]
    sent, got = 0, []
    while sent < 2000 or rx.accounting()[2] or tx.in_flight:
        if sent < 2000:
            a.wire.inject(frames[sent:sent + 50])
            sent += 50
        while (c := rx.poll()) is not None:
            for i in range(len(c)):
                tx.forward(c, i, push=False)
            tx.flush()
            c.release()                     # the app is done; the NIC may not be yet
        tx.collect()
        got += drain(out)
    got += drain(out)
    assert got == frames
    assert tx.stats()["zero_copy"] == 2000 and tx.stats()["completed"] == 2000
    free, armed, captured = rx.accounting()
    assert captured == 0 and free + armed == rx.chunks           # every chunk came home
    na.close()
    nb.close()


def test_forwarding_across_dma_domains_is_refused():
    sim.reset()
    na, nb = open_device("sim:0"), open_device("sim:1")
    rx = na.rx_queue(0, ndesc=64, segment=16, flush_us=0)
    tx = nb.tx_queue(0, ndesc=64)
    na.start()
    na.port.wire.send(TrafficProfile(count=1))
    c = rx.poll()
    with pytest.raises(WirecapError, match="not in one DMA domain"):
        tx.forward(c, 0)
    na.close()
    nb.close()


def test_copy_send_reaches_the_wire(nic):
    tx = nic.tx_queue(0, ndesc=64)
    nic.start()
    nic.port.keep_tx = True
    frames = [bytes([i]) * 60 for i in range(10)]
    for f in frames:
        tx.send(f)
    assert tx.collect() == 10
    assert nic.port.transmitted() == (10, frames)
    assert nic.counters()["QPTC0"] == 10


def test_memory_budget(nic):
    q = nic.rx_queue(0, ndesc=1024, segment=256, chunks=10, bufsize=2048)
    m = q.memory
    assert m["pool"] == 10 * 256 * (2048 + 64) and m["metadata_per_buffer"] <= 32


@pytest.mark.parametrize("bufsize", [2048, 3072, 16384])
def test_packet_buffers_are_spread_over_every_cache_set(nic, bufsize):
    # buffers a multiple of 1 KiB apart would share a few cache sets and every DMA write would
    # miss; an odd number of 64-byte lines apart they use them all
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, bufsize=bufsize, flush_us=0)
    nic.start()
    p = TrafficProfile(count=16)
    nic.port.wire.send(p)
    c = q.poll()
    assert c is not None and len(c) == 16
    assert [bytes(x) for x in c] == [p.frame(i, mac_of(nic)) for i in range(16)]
    addrs = np.array([np.frombuffer(c.packet(i), np.uint8).ctypes.data for i in range(16)])
    assert (np.diff(addrs) == q.stride).all()
    assert q.stride >= bufsize and (q.stride // 64) % 2 == 1
    assert len({int(a) // 64 % 16 for a in addrs}) == 16        # 16 buffers, 16 sets
    assert q.memory["pool"] == _pmd.pool_bytes(5, 16, bufsize)
    c.release()


def test_closing_a_queue_unmaps_its_pool_at_once(nic):
    # not at the next garbage collection: a bench or a notebook that opens engines one after
    # another would find no hugepage free and fall back to 4 KiB pages
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5)
    addr = q.pool_array.ctypes.data
    q.close()
    assert q.pool_array is None
    mapped = []
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            mapped.append(lo <= addr < hi)
    assert not any(mapped)


def test_counters_accumulate_into_64_bits(nic):
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=0)
    nic.start()
    for _ in range(3):
        nic.port.wire.send(TrafficProfile(count=10))
        drain(q)
        c = nic.counters()
    assert c["GPRC"] == 30 and c["GORC"] == 30 * 64 and c["QPRC0"] == 30


def test_a_released_chunk_waits_behind_the_chunks_freed_before_it(nic):
    # The pool is FIFO: a chunk the reader just read is still in the reader's caches, and
    # the NIC (here the model, on the capture core) should not write into it next.
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=8, flush_us=None)
    nic.start()
    order = []
    for _ in range(8):              # 3 segments at a time: the ring holds 63 frames
        nic.port.wire.send(TrafficProfile(count=3 * 16, flows=1))
        while (c := q.poll()) is not None:
            order.append(c.index)
            c.release()
    assert order[:24] == [i % 8 for i in range(24)]
    assert q.accounting() == (4, 4, 0)
