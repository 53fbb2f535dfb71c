"""Issue 15, driver and ring: what used to crash or accept a bad handle. Each crash case runs
in a subprocess with a timeout, so a segfault fails the test instead of the suite."""
import os
import subprocess
import sys
import textwrap

import pytest

from wirecap import sim
from wirecap._ring import Chunk
from wirecap.devices import open_device
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile

ROOT = os.path.dirname(os.path.dirname(__file__))
PRELUDE = """
from wirecap import sim, _pcap
from wirecap.devices import open_device
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile

def refused(f, *a):
    try:
        f(*a)
    except WirecapError as e:
        return str(e)
    raise AssertionError(f"{f} was not refused")
"""


def run(body):
    """Run ``body`` in a fresh interpreter; its stdout, after checking it exited cleanly."""
    p = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"exit {p.returncode} (negative: a signal)\n{p.stderr}"
    return p.stdout


def test_transmit_queue_used_after_close_is_refused():
    out = run("""
        with Engine("sim:0", ndesc=64, segment=16, chunks=8) as eng:
            tx = eng.tx_queue(0, 0, ndesc=64)
            eng.nics[0].port.wire.send(TrafficProfile(count=16))
            c = eng.next_chunk(0, timeout=5)
        print(refused(tx.send, bytes(60)))
        print(refused(tx.forward, c, 0))
        print(tx.collect(), tx.in_flight)
    """)
    assert out.count("transmit queue 0 is closed") == 2 and out.splitlines()[-1] == "0 0"


def test_release_after_close_with_an_empty_pool_does_not_rearm_a_freed_ring():
    out = run("""
        nic = open_device("sim:0")
        q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=None)
        nic.start()
        nic.port.wire.send(TrafficProfile(count=16 * 8))
        held = [c for c in iter(q.poll, None)]          # every chunk: the pool is empty
        assert q.accounting()[0] == 0 and q.ring_state()["unarmed"] > 0
        nic.close()
        print(refused(held[0].release))
        print(refused(_pcap.pcap_records, held[1], 65535, False))
        print(refused(_pcap.run_callbacks, held[1], 0, 1, print, 65535))
        print(refused(held[2].packet, 0))
    """)
    assert out.count("queue is closed") == 1 and out.count("queue was closed") == 3


def test_no_python_path_builds_a_chunk_for_an_arbitrary_index():
    from wirecap import _engine
    assert not hasattr(_engine.QueuedChunk, "wrap")
    with pytest.raises(TypeError, match="come from capture"):
        Chunk()
    out = run("""
        from wirecap._ring import Chunk
        from wirecap import _engine
        for cls in (Chunk, _engine.QueuedChunk):
            c = cls.__new__(cls)
            print(refused(c.packet, 0))
            print(refused(lambda: c.lengths))
            print(refused(_pcap.pcap_records, c, 65535, False))
    """)
    assert out.count("was not captured") == 6


def test_packet_indexes_are_bounds_checked(fresh_model):
    with Engine("sim:0", ndesc=64, segment=16, chunks=8, threads=False) as eng:
        eng.nics[0].port.wire.send(TrafficProfile(count=16))
        c = eng.next_chunk(0, timeout=5)
        with pytest.raises(IndexError, match="packet 16 of a chunk with 16"):
            c.packet(16)
        with pytest.raises(OverflowError):
            c.packet(-1)
        c.release()


@pytest.fixture
def nic(fresh_model):
    n = open_device("sim:0")
    yield n
    n.close()


@pytest.mark.parametrize("ahead", [1 << 16, 1 << 32, 1 << 47])
def test_a_generation_far_ahead_is_stale_not_a_wrap(nic, ahead):
    # 16-bit generations matched again after 65,536 reuses of a chunk (two minutes at line
    # rate): a handle that old recycled another holder's chunk
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=None)
    nic.start()
    nic.port.wire.send(TrafficProfile(count=16))
    c = q.poll()
    token, chunk_first = c.token >> 64, c.token & ((1 << 64) - 1)
    pool, gen = token >> 48, token & ((1 << 48) - 1)
    forged = ((pool << 48 | (gen + ahead) % (1 << 48)) << 64) | chunk_first
    with pytest.raises(WirecapError, match="stale"):
        q.recycle(forged)
    c.release()


def test_released_cannot_be_reset_from_python(nic):
    q = nic.rx_queue(0, ndesc=64, segment=16, chunks=5, flush_us=None)
    nic.start()
    nic.port.wire.send(TrafficProfile(count=16))
    c = q.poll()
    c.release()
    with pytest.raises(AttributeError):
        c.released = False
    with pytest.raises(WirecapError, match="was released"):
        c.packet(0)


def test_start_after_close_raises(fresh_model):
    eng = Engine("sim:0", ndesc=64, segment=16, chunks=8)
    eng.close()
    with pytest.raises(WirecapError, match="closed"):
        eng.start()
    nic = open_device("sim:0")
    nic.close()
    with pytest.raises(WirecapError, match="sim:0 is closed"):
        nic.start()
    with pytest.raises(WirecapError, match="sim:0 is closed"):
        nic.rx_queue(0)


def test_a_second_tx_queue_on_one_index_is_refused(nic):
    nic.tx_queue(3, ndesc=64)
    with pytest.raises(WirecapError, match="transmit queue 3 is already set up"):
        nic.tx_queue(3, ndesc=64)
    with open_device("lo") as dev:
        dev.tx_queue(0)
        with pytest.raises(WirecapError, match="transmit queue 0 is already set up"):
            dev.tx_queue(0)
