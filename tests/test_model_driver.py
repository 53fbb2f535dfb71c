"""A driver written from the datasheet initializes, receives and transmits through the model."""
import struct
import time
import zlib

import numpy as np
import pytest

from datasheet_driver import DatasheetDriver, MS_RSS_KEY, HLREG0, GPTC, MAXFRS, TDH
from wirecap.sim import Device, TrafficProfile, Wire, toeplitz


def mac_of(dev):
    return bytes.fromhex(dev.mac.replace(":", ""))


def seq(frame, profile):
    return struct.unpack_from("<Q", frame, profile.stamp_offset)[0]


def test_receive_rss_byte_exact_in_order_per_queue(dev, make_driver):
    drv = make_driver(nrx=4, rss_queues=4, ndesc=1024)
    p = TrafficProfile(count=3000, flows=64)
    assert dev.wire.send(p) == 3000
    seen = set()
    for q in range(4):
        frames = drv.receive(q)
        assert frames, f"queue {q} got nothing: RSS did not spread 64 flows"
        seqs = [seq(f, p) for f, _, _, _ in frames]
        assert seqs == sorted(seqs), f"queue {q} out of order"
        for (f, rss, info, status), i in zip(frames, seqs):
            assert f == p.frame(i, mac_of(dev))
            want = toeplitz(MS_RSS_KEY, f[26:38])
            assert rss == want
            assert (rss & 0x7F) % 4 == q          # RETA entry j holds queue j % 4
            assert info & 0xF == 7                 # RSS type: IPv4 UDP
            assert info & (1 << 4) and info & (1 << 9)   # packet type: IPv4, UDP
            assert status & (1 << 6) and not status & (1 << 31)  # IPCS checked, no IPE
        seen.update(seqs)
    assert seen == set(range(3000))


@pytest.mark.parametrize("bufsize,size,jumbo", [(1024, 1518, False), (2048, 9018, True)])
def test_frames_span_descriptors(dev, make_driver, bufsize, size, jumbo):
    drv = make_driver(bufsize=bufsize)
    if jumbo:
        drv.set_bits(HLREG0, 1 << 2)
        drv.w(MAXFRS, 9018 << 16)
    p = TrafficProfile(count=20, sizes=(size,))
    dev.wire.send(p)
    frames = drv.receive(0)
    assert [f for f, *_ in frames] == [p.frame(i, mac_of(dev)) for i in range(20)]


def test_crc_kept_when_not_stripped(dev, make_driver):
    drv = make_driver()
    drv.clear_bits(HLREG0, 1 << 1)
    p = TrafficProfile(count=3)
    dev.wire.send(p)
    for i, (f, *_) in enumerate(drv.receive(0)):
        body = p.frame(i, mac_of(dev))
        assert f == body + struct.pack("<I", zlib.crc32(body))


def test_transmit_to_sink(dev, make_driver):
    drv = make_driver(ntx=2)
    dev.keep_tx = True
    p = TrafficProfile(count=10, sizes=(64, 300, 1518))
    frames = [p.frame(i, b"\xff" * 6) for i in range(10)]
    assert drv.transmit(1, frames), "RS descriptors were not written back with DD"
    count, sent = dev.transmitted()
    assert count == 10 and sent == frames
    assert drv.r(GPTC) == 10
    st = drv.stats()
    assert st["QPTC1"] == 10 and st["QPTC0"] == 0
    assert drv.r(TDH(1)) == 10


def test_cabled_ports_pass_frames_both_ways():
    a, b = Device(0), Device(1)
    a.cable(b)
    da, db = DatasheetDriver(a), DatasheetDriver(b)
    da.init()
    db.init()
    pa = TrafficProfile(count=50, flows=3, seed=2)
    pb = TrafficProfile(count=40, flows=5, sizes=(128,), seed=3)
    a_to_b = [pa.frame(i, mac_of(b)) for i in range(50)]
    b_to_a = [pb.frame(i, mac_of(a)) for i in range(40)]
    assert da.transmit(0, a_to_b) and db.transmit(0, b_to_a)
    assert [f for f, *_ in db.receive(0)] == a_to_b
    assert [f for f, *_ in da.receive(0)] == b_to_a


def test_realtime_wire_with_a_concurrent_driver(dev, make_driver):
    """The wire thread runs without the GIL while the test polls the rings."""
    drv = make_driver(nrx=2, rss_queues=2, ndesc=256)
    p = TrafficProfile(count=20000, flows=8, rate=400_000)
    dev.wire.play(p, concurrent=True)
    got = {0: [], 1: []}
    deadline = time.monotonic() + 30
    while sum(map(len, got.values())) < 20000 and time.monotonic() < deadline:
        for q in (0, 1):
            got[q] += [seq(f, p) for f, *_ in drv.receive(q)]
    assert dev.wire.wait(5)
    for q in (0, 1):
        assert got[q] == sorted(got[q])
    st = drv.stats()
    delivered = len(got[0]) + len(got[1])
    # nothing lost unaccounted: what was not delivered waits on chip or was counted missed
    assert delivered + dev.pending() + st["MPC0"] == 20000
    assert dev.wire.stats()["sent"] == 20000


def test_deferred_transmit_waits_for_process_tx(dev, make_driver):
    drv = make_driver()
    dev.keep_tx = True
    dev.tx_deferred = True
    frames = [bytes([7]) * 60, bytes([8]) * 80]
    assert not drv.transmit(0, frames), "nothing is sent before process_tx()"
    assert dev.transmitted() == (0, [])
    dev.process_tx()
    assert dev.transmitted() == (2, frames)
