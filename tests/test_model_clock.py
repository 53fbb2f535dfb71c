"""The model on the driver's clock (issue 12 item 1): frames are due on a schedule and the port
delivers them when the driver touches it, each meeting the state silicon would have shown it.

No test asserts on timing: a test that needs frames to be due sleeps past their due time
(time.sleep sleeps at least that long), and every count is exact.
"""
import os
import struct
import subprocess
import sys
import threading
import time

import pytest

from datasheet_driver import DatasheetDriver, MPC, QPRDC, RDT, RNBC
from wirecap.sim import Device, TrafficProfile, Wire

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def seq(frame, profile):
    return struct.unpack_from("<Q", frame, profile.stamp_offset)[0]


def sleep_until_due(wire, i):
    """Sleep until frame i of the playing profile is due (CLOCK_MONOTONIC, as the model's)."""
    left = (wire.started_ns + wire.due_ns(i) - time.monotonic_ns()) / 1e9
    time.sleep(max(left, 0) + 0.001)


def on_clock(dev, profile):
    dev.wire.play(profile, concurrent=False)
    return dev.wire


def test_nothing_arrives_until_the_driver_touches_the_port(dev, make_driver):
    drv = make_driver(ndesc=256)
    p = TrafficProfile(count=100)
    w = on_clock(dev, p)
    sleep_until_due(w, 99)
    assert w.sent == 0 and drv.receive(0) == []      # descriptors read: not a sync point
    dev.sync()
    assert w.sent == 100
    assert [seq(f, p) for f, *_ in drv.receive(0)] == list(range(100))
    st = dev.clock_stats()
    assert st["catchup_frames"] == 100 and st["catchups"] >= 1


def test_a_frame_due_while_the_ring_is_full_is_dropped_though_rearmed_later(dev, make_driver):
    drv = make_driver(ndesc=64, drop_en=True)       # RDT = 63: 63 descriptors for the NIC
    p = TrafficProfile(count=200)
    w = on_clock(dev, p)
    sleep_until_due(w, 199)                          # all 200 came while the driver slept
    got = [seq(f, p) for f, *_ in drv.receive(0)]    # (its RDT writes are sync points)
    assert got == []                                 # it looked before touching a register
    dev.sync()
    got = [seq(f, p) for f, *_ in drv.receive(0)]    # re-arms all 64, too late for the rest
    got += [seq(f, p) for f, *_ in drv.receive(0)]
    assert got == list(range(63))
    assert drv.r(QPRDC(0)) == 137 and w.sent == 200 and dev.pending() == 0


def test_stop_takes_the_schedule_off_the_clock(dev, make_driver):
    drv = make_driver(ndesc=512)
    p = TrafficProfile(count=300, burst=100, rate=10)  # bursts of 100, 10 s apart
    w = on_clock(dev, p)
    sleep_until_due(w, 99)
    dev.sync()
    assert w.sent == 100 and w.running
    w.stop()
    drv.w(RDT(0), drv.r(RDT(0)))                     # sync points after the stop
    dev.sync()
    assert not w.running and w.sent == 100 and len(drv.receive(0)) == 100


def test_frames_keep_arrival_order_across_queues_and_syncs(dev, make_driver):
    drv = make_driver(nrx=4, rss_queues=4, ndesc=512, drop_en=True)
    p = TrafficProfile(count=20_000, flows=64, rate=2_000_000)   # 10 ms of traffic
    w = on_clock(dev, p)
    got = [[] for _ in range(4)]
    while w.running:
        dev.sync()
        for q in range(4):
            got[q] += [seq(f, p) for f, *_ in drv.receive(q)]
    for q in range(4):
        got[q] += [seq(f, p) for f, *_ in drv.receive(q)]
        assert got[q] == sorted(got[q]), f"queue {q} out of order"
    dropped = sum(drv.r(QPRDC(q)) for q in range(4))
    assert sum(map(len, got)) + dropped == 20_000
    assert len({x for g in got for x in g}) == sum(map(len, got))


def test_the_packet_buffer_without_drop_en_holds_and_releases(dev, make_driver):
    drv = make_driver(ndesc=64, drop_en=False)
    p = TrafficProfile(count=500)
    w = on_clock(dev, p)
    sleep_until_due(w, 499)
    dev.sync()
    assert dev.pending() == 500 - 63                 # waiting on chip for descriptors
    assert drv.r(RNBC(0)) == 1 and drv.r(MPC(0)) == 0
    got = []
    while len(got) < 500:
        frames = drv.receive(0)                      # each RDT write lets more in
        assert frames, "the packet buffer did not release"
        got += [seq(f, p) for f, *_ in frames]
    assert got == list(range(500)) and dev.pending() == 0 and drv.r(QPRDC(0)) == 0


def test_a_full_packet_buffer_misses_and_counts(dev, make_driver):
    drv = make_driver(ndesc=64, drop_en=False)
    drv.w(0x03C00, 64 << 10)                         # RXPBSIZE(0): 64 KB
    p = TrafficProfile(count=1000, sizes=(1518,))
    w = on_clock(dev, p)
    sleep_until_due(w, 999)
    dev.sync()
    held = dev.pending()
    assert held == (64 << 10) // 1518                # as many as fit, whole frames
    assert 63 + held + drv.r(MPC(0)) == 1000


def run_bursts(dev, drv, p, bursts, concurrent):
    """The driver's actions tied to the schedule: after each burst, sync and receive."""
    w = dev.wire
    w.play(p, concurrent=concurrent)
    fates = []
    for b in range(bursts):
        last = (b + 1) * p.burst - 1
        if concurrent:
            while w.sent <= last:
                time.sleep(0.0005)
        else:
            sleep_until_due(w, last)
        dev.sync()
        fates.append([seq(f, p) for f, *_ in drv.receive(0)])
    w.stop()
    return fates, drv.r(QPRDC(0)), drv.r(RNBC(0)), drv.r(MPC(0)), dev.pending()


@pytest.mark.parametrize("drop_en", [True, False])
def test_same_schedule_same_fates_as_the_concurrent_wire(drop_en):
    p = TrafficProfile(count=300, burst=100, rate=1000)   # 100 ms between bursts
    results = []
    for concurrent in (True, False):
        dev = Device(0)
        dev.wire = Wire(dev)
        drv = DatasheetDriver(dev, ndesc=64, drop_en=drop_en)
        drv.init()
        results.append(run_bursts(dev, drv, p, 3, concurrent))
    assert results[0] == results[1]
    fates = results[0][0]
    if drop_en:                                      # 63 descriptors per burst, the rest dropped
        assert fates == [list(range(b * 100, b * 100 + 63)) for b in range(3)]
    else:                                            # the rest waited on chip and came after
        assert sum(fates, []) == list(range(300))


def test_threads_syncing_at_once_deliver_each_frame_once(dev, make_driver):
    drv = make_driver(nrx=4, rss_queues=4, ndesc=4096, drop_en=True)
    p = TrafficProfile(count=200_000, flows=64, rate=4_000_000)   # 50 ms
    w = on_clock(dev, p)
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            dev.sync()
            dev.read32(0x01030)                      # QPRC(0): a register read syncs too

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for t in threads:
        t.start()
    got = [[] for _ in range(4)]
    while w.running:
        for q in range(4):
            got[q] += [seq(f, p) for f, *_ in drv.receive(q)]
    stop.set()
    for t in threads:
        t.join()
    dev.sync()
    for q in range(4):
        got[q] += [seq(f, p) for f, *_ in drv.receive(q)]
        assert got[q] == sorted(got[q])
    dropped = sum(drv.r(QPRDC(q)) for q in range(4))
    delivered = sum(map(len, got))
    assert delivered + dropped == 200_000 == dev.clock_stats()["catchup_frames"]
    assert len({x for g in got for x in g}) == delivered


def test_wait_polls_the_port_on_the_driver_clock(dev, make_driver):
    drv = make_driver(ndesc=512)
    p = TrafficProfile(count=300, rate=100_000)
    w = on_clock(dev, p)
    assert w.wait(10) and w.sent == 300
    assert len(drv.receive(0)) == 300


def test_the_wire_thread_stays_available(dev, make_driver):
    drv = make_driver(ndesc=512)
    p = TrafficProfile(count=300, rate=100_000)
    dev.wire.play(p, concurrent=True)
    assert dev.wire.wait(10)
    assert len(drv.receive(0)) == 300
    assert dev.clock_stats()["catchup_frames"] == 0


def test_sim_open_sets_the_wire_default():
    from wirecap import sim
    sim._instances.clear()
    try:
        assert sim.open(5, concurrent=True).wire.concurrent
        assert not sim.open(5, concurrent=False).wire.concurrent
        assert not sim.open(5).wire.concurrent        # None leaves it as it is
    finally:
        sim._instances.clear()


def test_conservation_is_exact_for_ten_million_frames_on_the_driver_clock(fresh_model):
    """sent = captured + every counted drop, at line rate; the driver's own capture loop
    (which calls the register interface's sync where it polls) is the model's clock."""
    from wirecap.devices import open_device
    nic = open_device("sim:0")
    try:
        q = nic.rx_queue(0, ndesc=4096, segment=256, chunks=64)
        nic.start()
        dev = nic.port
        w = dev.wire
        w.play(TrafficProfile(count=10_000_000))
        assert not w.concurrent                     # the default
        captured = 0
        while w.running:
            captured += q.discard()
        quiet = time.monotonic() + 0.02             # past the flush timeout: the last part
        while time.monotonic() < quiet:
            captured += q.discard()
        c = nic.counters()
        drops = c["QPRDC0"] + c["MPC0"] + c["ROC"] + c["RUC"]
        assert w.sent == 10_000_000
        assert captured + drops == 10_000_000 == c["QPRC0"] + c["QPRDC0"]
        assert dev.clock_stats()["catchup_frames"] == 10_000_000
    finally:
        nic.port.wire.stop()
        nic.close()


DEADLOCK_PROBE = """
import threading
from wirecap import sim
from wirecap.devices import open_device
from wirecap.sim import TrafficProfile
nic = open_device("sim:0")
q = nic.rx_queue(0, ndesc=256, segment=64, chunks=8)
nic.start()
done = False
def counters():                     # Python-level register reads: the GIL held throughout
    while not done:
        nic.counters()
t = threading.Thread(target=counters)
t.start()
w = nic.port.wire
for i in range(400):                # each stop() takes the schedule off the clock (detach)
    w.play(TrafficProfile(count=10**6, rate=2e6))
    q.discard()
    w.stop()
done = True
t.join()
print("ok")
"""


def test_register_reads_with_the_gil_never_deadlock_with_a_wire_leaving_the_clock():
    # detach holds the clock lock while it takes the GIL back; a register access from a
    # thread holding the GIL must therefore never block on the clock lock with it
    p = subprocess.run([sys.executable, "-c", DEADLOCK_PROBE], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
