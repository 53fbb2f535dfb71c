"""Every frame the wire brought is accounted for through the engine's public API: sent =
delivered + discarded + drops at the ring, the packet buffer and the MAC (per port)."""
import time

import pytest

from wirecap import sim
from wirecap.dump import PcapWriter
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile

pytestmark = pytest.mark.usefixtures("fresh_model")
MAC = bytes.fromhex("025743000000")


def read_all(eng, timeout=0.3):
    """Packets read from every queue until none came for ``timeout`` seconds."""
    got, quiet = 0, time.monotonic() + timeout
    while time.monotonic() < quiet:
        for q in range(len(eng.workers)):
            while (c := eng.next_chunk(q, timeout=0)) is not None:
                got += len(c)
                c.release()
                quiet = time.monotonic() + timeout
        time.sleep(0.001)
    return got


def balanced(eng, sent, got):
    """The accounting after stop(): exact, and as a user would add it up."""
    eng.stop()
    a = eng.accounting()
    assert a["delivered"] == got
    assert a["dropped"] == a["nic_dropped"] + a["buffer_dropped"] + a["mac_dropped"]
    assert a["received"] == sent == a["delivered"] + a["discarded"] + a["dropped"]
    return a


def test_jumbo_frames_on_2k_buffers_are_mac_drops():
    # 2 KiB buffers keep the MAC's limit at 1518 bytes: every 9018-byte frame is refused
    with Engine("sim:0", flush_us=0) as eng:
        eng.nics[0].port.wire.send(TrafficProfile(count=10_000, sizes=(9018,)))
        a = balanced(eng, 10_000, read_all(eng))
        assert (a["captured"], a["mac_dropped"]) == (0, 10_000)


@pytest.mark.parametrize("queues", [1, 4])
def test_a_mix_of_sizes_balances_per_device(queues):
    p = TrafficProfile(count=20_000, sizes=(64, 1518, 1519, 9018), flows=16)
    with Engine("sim:0", queues=queues, flush_us=0) as eng:
        eng.nics[0].port.wire.send(p)
        a = balanced(eng, 20_000, read_all(eng))
        too_long = sum(len(p.frame(i, MAC)) + 4 > 1518 for i in range(20_000))  # with FCS
        assert a["mac_dropped"] == too_long     # the rest reached a queue: taken or dropped
        assert a["captured"] + a["nic_dropped"] == 20_000 - too_long
        assert a["devices"][0]["received"] == 20_000


def test_jumbo_buffers_take_the_frames_the_mac_refused_before():
    with Engine("sim:0", bufsize=10240, flush_us=0) as eng:
        eng.nics[0].port.wire.send(TrafficProfile(count=1_000, sizes=(9018,)))
        a = balanced(eng, 1_000, read_all(eng))
        assert (a["captured"], a["mac_dropped"]) == (1_000, 0)


def test_a_pcap_with_frames_over_1518_bytes(tmp_path):
    sizes = [60, 1514, 1515, 2000, 9014, 100]      # without FCS: 1515 and up are too long
    path = tmp_path / "long.pcap"
    with PcapWriter(str(path), snaplen=16384) as w:
        for i, n in enumerate(sizes):
            w.write(i * 1000, TrafficProfile(count=1, sizes=(64,)).frame(0, MAC)[:12] +
                    b"\x08\x00" + bytes(n - 14))
    with Engine("sim:0", flush_us=0) as eng:
        eng.nics[0].port.wire.send(sim.Pcap(str(path)))
        a = balanced(eng, len(sizes), read_all(eng))
        assert (a["delivered"], a["mac_dropped"]) == (3, 3)


def test_runts_are_mac_drops():
    good = TrafficProfile(count=1, sizes=(64,)).frame(0, MAC)
    with Engine("sim:0", flush_us=0) as eng:
        eng.nics[0].port.wire.inject([good[:40]] * 7 + [good] * 5)
        a = balanced(eng, 12, read_all(eng))
        assert (a["delivered"], a["mac_dropped"]) == (5, 7)


def test_frames_that_came_while_stopped_are_discarded_at_start_not_delivered():
    with Engine("sim:0", ndesc=256, segment=64, chunks=8, flush_us=1000) as eng:
        eng.stop()
        eng.nics[0].port.wire.send(TrafficProfile(count=100))
        eng.start()                 # they belong to no run: stamped now, they would lie
        assert eng.next_chunk(0, timeout=0.2) is None
        a = balanced(eng, 100, 0)
        assert a["discarded"] == 100


def test_counters_after_close_are_refused_in_one_line():
    eng = Engine("sim:0").start()
    eng.close()
    for read in (eng.stats, eng.accounting):
        with pytest.raises(WirecapError, match=r"closed.*before close\(\)"):
            read()


def test_chunks_offloaded_to_another_devices_queue_count_for_their_own_device():
    # advanced mode offloads across every queue of the engine, another port's included; what
    # stop() takes back unread is discarded by the pool it came from
    with Engine(["sim:0", "sim:1"], mode="advanced", threshold=0.1, ndesc=256, segment=32,
                chunks=40, threads=False, flush_us=0) as eng:
        eng.nics[0].port.wire.send(TrafficProfile(count=200))
        c = eng.next_chunk(0, timeout=0)            # inline: this read captures every queue
        got = len(c)
        c.release()
        assert eng.stats()[1]["capture_queue"] > 0  # sim:0's chunks wait on sim:1's queue
        a = balanced(eng, 200, got)
        sim0, sim1 = a["devices"]
        assert sim0["received"] == 200 == sim0["delivered"] + sim0["discarded"] + \
            sim0["dropped"] and sim0["discarded"] > 0
        assert (sim1["received"], sim1["captured"], sim1["discarded"]) == (0, 0, 0)
