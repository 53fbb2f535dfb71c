"""The model's shortcuts change no frame's fate and no counter: a template's admission cached
per configuration, and the frames of the common case (written to their ring, or meeting a full
one) counted in bulk and later, before anything reads a counter, against the same frames taken
one at a time through the receive path (Device.deliver parses and admits each anew)."""
import struct

import pytest

from datasheet_driver import CTRL, DatasheetDriver, RETA, RXCTRL, wait_for
from wirecap.sim import Device, TrafficProfile, Wire


def frames_of(profile, mac):
    """The frames the wire plays for ``profile``, sequence numbers stamped, as bytes."""
    templates, sched = profile.templates(mac), profile.schedule()
    out = []
    for i in range(profile.count):
        f = bytearray(templates[sched[i % len(sched)]])
        f[profile.stamp_offset:profile.stamp_offset + 8] = struct.pack("<Q", i)
        out.append(bytes(f))
    return out


def port(**driver):
    dev = Device(0)
    dev.wire = Wire(dev)
    drv = DatasheetDriver(dev, **driver)
    drv.init()
    return dev, drv


def outcome(dev, drv, queues):
    got = {q: [(f, rss, info, status) for f, rss, info, status in drv.receive(q)]
           for q in range(queues)}
    return got, drv.stats(), dev.diagnostics()


@pytest.mark.parametrize("queues, sizes", [(1, (64,)), (4, (64, 128, 1518)), (4, (64, 1600))])
def test_bulk_counts_at_a_full_ring_equal_the_frame_by_frame_counts(queues, sizes):
    # 64-descriptor rings under DROP_EN: after 63 frames per queue every frame meets a full
    # ring; frames over 1518 bytes are the MAC's (ROC), not the ring's
    p = TrafficProfile(count=5000, sizes=sizes, flows=16)
    results = []
    for bulk in (True, False):
        dev, drv = port(nrx=queues, rss_queues=queues, ndesc=64, drop_en=True)
        if bulk:
            dev.wire.send(p)
        else:
            dev.deliver(frames_of(p, bytes.fromhex(dev.mac.replace(":", ""))))
        results.append(outcome(dev, drv, queues))
    assert results[0] == results[1]
    stats = results[0][1]
    dropped = sum(stats[f"QPRDC{q}"] for q in range(queues))
    assert dropped + stats["ROC"] > 4000 and dropped > 2000          # the bulk path ran


def test_a_configuration_write_between_frames_changes_their_fate():
    # the admission of a template is cached: a register write must invalidate it
    dev, drv = port(nrx=4, rss_queues=4, ndesc=1024)
    p = TrafficProfile(count=400, flows=8)
    w = dev.wire
    w.send(p, count=200)
    before = {q: len(drv.receive(q)) for q in range(4)}
    assert sum(before.values()) == 200 and sum(n > 0 for n in before.values()) > 1
    for i in range(32):                              # RETA: every hash to queue 3 now
        drv.w(RETA(i), 0x03030303)
    w.send(count=100)
    after = {q: len(drv.receive(q)) for q in range(4)}
    assert after == {0: 0, 1: 0, 2: 0, 3: 100}
    drv.w(RXCTRL, 0)                                 # receive off: the same templates drop
    w.send(count=100)
    assert sum(len(drv.receive(q)) for q in range(4)) == 0
    assert dev.diagnostics()["rx_disabled"] == 100


def play_out(dev, profile):
    # on the driver's clock, polled the way a driver's receive loop polls: sync() delivers
    # what is due and counts nothing yet (the wire leaves its frames to count in bulk)
    dev.wire.play(profile)
    while dev.wire.running:
        dev.sync(poll=True)


@pytest.mark.parametrize("queues", [1, 4])
def test_counts_left_for_later_on_the_clock_are_exact_whenever_something_reads(queues):
    p = TrafficProfile(count=3000, sizes=(64, 128), flows=16, rate=2e6)
    dev, drv = port(nrx=queues, rss_queues=queues, ndesc=4096)
    play_out(dev, p)
    diag = dev.diagnostics()            # not a register access: it must settle the counts
    assert diag["wire_rx"] == 3000
    clocked = outcome(dev, drv, queues)
    ref_dev, ref_drv = port(nrx=queues, rss_queues=queues, ndesc=4096)
    ref_dev.deliver(frames_of(p, bytes.fromhex(ref_dev.mac.replace(":", ""))))
    assert clocked == outcome(ref_dev, ref_drv, queues)
    assert sum(clocked[1][f"QPRC{q}"] for q in range(queues)) == 3000


def test_a_reset_clears_counts_the_wire_had_not_made_yet():
    # frames counted in bulk belong before the reset: the reset's register write settles
    # them first, then clears every counter
    dev, drv = port(nrx=1, ndesc=4096)
    play_out(dev, TrafficProfile(count=2000, rate=2e6))
    drv.w(CTRL, drv.r(CTRL) | (1 << 26))            # 4.6.3.2 CTRL.RST
    wait_for(lambda: drv.r(CTRL) & (1 << 26) == 0, "CTRL.RST self-clear")
    assert dev.diagnostics()["wire_rx"] == 2000     # the model's own count survives
    stats = drv.stats()
    assert stats["GPRC"] == 0 and stats["QPRC0"] == 0 and stats["TPR"] == 0
