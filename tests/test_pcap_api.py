"""The libpcap-compatible handle, as pcapy/pypcap users call it."""
import select
import struct

import pytest

from wirecap import pcap, sim
from wirecap.dump import read_pcap
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile


@pytest.fixture
def handle():
    sim.reset()
    h = pcap.open_live("sim:0", 65535, True, 200, ndesc=128, segment=16, chunks=40,
                       flush_us=0)
    yield h
    h.close()


def send(h, **kw):
    p = TrafficProfile(**kw)
    h.engine.nics[0].port.wire.send(p)
    return p, bytes.fromhex(h.engine.nics[0].mac.replace(":", ""))


def test_loop_calls_back_with_header_and_zero_copy_view(handle):
    p, mac = send(handle, count=100, sizes=(64, 200))
    seen, kept = [], []

    def cb(hdr, data):
        seen.append((hdr.getcaplen(), hdr.getlen(), hdr.getts(), bytes(data)))
        kept.append(data)

    assert handle.loop(100, cb) == 100
    assert [s[3] for s in seen] == [p.frame(i, mac) for i in range(100)]
    assert all(c == n == len(d) for c, n, _, d in seen)
    assert all(sec > 1_600_000_000 and 0 <= usec < 1_000_000 for _, _, (sec, usec), _ in seen)
    with pytest.raises(ValueError, match="valid during the callback only"):
        bytes(kept[0])                  # the view was valid during the call only
    with pytest.raises(ValueError, match="valid during the callback only"):
        kept[0][0]


def test_packet_view_reads_like_bytes(handle):
    p, mac = send(handle, count=1, sizes=(128,))
    frame = p.frame(0, mac)
    checks = []

    def cb(hdr, data):
        checks.append((len(data), data[12:14], data[0], data[-1], data[::2], bytes(data),
                       struct.unpack_from("!H", data, 12)[0], data.hex(), data == frame,
                       bytes(memoryview(data)[:6])))

    handle.loop(1, cb)
    assert checks == [(len(frame), frame[12:14], frame[0], frame[-1], frame[::2], frame,
                       0x0800, frame.hex(), True, frame[:6])]


def test_snaplen_caps_caplen_not_len():
    sim.reset()
    with pcap.open_live("sim:0", 100, True, 200, flush_us=0) as h:
        h.engine.nics[0].port.wire.send(TrafficProfile(count=3, sizes=(300,)))
        got = []
        h.loop(3, lambda hdr, d: got.append((hdr.caplen, hdr.len, len(d))))
        assert got == [(100, 296, 100)] * 3
        assert h.snapshot() == 100 and h.datalink() == pcap.DLT_EN10MB


def test_dispatch_takes_one_chunk_at_most(handle):
    send(handle, count=40)
    n = handle.dispatch(-1, lambda h, d: None)
    assert 0 < n <= 16
    assert handle.dispatch(5, lambda h, d: None) <= 5


def test_next_and_timeout(handle):
    p, mac = send(handle, count=2)
    h1, d1 = handle.next()
    h2, d2 = handle.next()
    assert (d1, d2) == (p.frame(0, mac), p.frame(1, mac)) and h1.getlen() == 60
    assert handle.next() == (None, b"")          # 200 ms read timeout, nothing came


def test_nonblocking_returns_at_once(handle):
    handle.setnonblock(True)
    assert handle.getnonblock()
    assert handle.dispatch(-1, lambda h, d: None) == 0
    assert handle.loop(-1, lambda h, d: None) == 0


def test_breakloop_stops_loop(handle):
    send(handle, count=50)
    got = []

    def cb(hdr, data):
        got.append(1)
        if len(got) == 7:
            handle.breakloop()

    assert handle.loop(-1, cb) == 7
    assert handle.loop(3, lambda h, d: got.append(1)) == 3     # the rest is still there


def test_selectable_descriptor(handle):
    assert select.select([handle], [], [], 0)[0] == []
    send(handle, count=5)
    assert select.select([handle.fileno()], [], [], 2)[0]


def test_stats_and_iteration(handle):
    p, mac = send(handle, count=30)
    it = iter(handle)                           # blocking: waits through the read timeout
    frames = [next(it) for _ in range(30)]
    assert [d for _, d in frames] == [p.frame(i, mac) for i in range(30)]
    recv, drop, ifdrop = handle.stats()
    assert (recv, drop, ifdrop) == (30, 0, 0)
    assert handle.stats().delivered == 30 and handle.stats().packets == 30


def test_dump_open_writes_a_pcap_we_and_tcpdump_read(handle, tmp_path):
    p, mac = send(handle, count=10, sizes=(64, 1518))
    path = tmp_path / "out.pcap"
    d = handle.dump_open(str(path))
    handle.loop(10, d.dump)
    d.close()
    linktype, recs = read_pcap(path)
    assert linktype == 1 and [r[1] for r in recs] == [p.frame(i, mac) for i in range(10)]


def test_chunk_level_iterator(handle):
    send(handle, count=32)
    total = 0
    for c in handle.chunks(timeout=0.2):
        total += int(c.lengths.sum() > 0) * len(c)
        c.release()
    assert total == 32


def test_misuse_is_refused():
    with pytest.raises(WirecapError, match="snaplen"):
        pcap.Handle(None, 0, snaplen=0)
    with pytest.raises(WirecapError, match="sim:0.*pci:0000:03:00.0.*afpacket:eth0"):
        pcap.open_live("wcnope0")


def test_setfilter_runs_libpcap_on_chunks(handle):
    # flows differ in source address; keep one flow's frames
    # 120 frames fit the armed ring even if the capture thread is descheduled: none dropped
    p, mac = send(handle, count=120, flows=4)
    src = p.flow_tuple(1)[0]
    handle.setfilter(f"udp and src host {src}")
    got = []
    want = [i for i in range(120) if bytes(p.frame(i, mac))[26:30] == bytes(map(int, src.split(".")))]
    for _ in range(100):                # bounded: a failure must not hang the suite
        if handle.recv == 120:
            break
        handle.dispatch(-1, lambda h, d: got.append(bytes(d)))
    assert got == [p.frame(i, mac) for i in want]


def test_a_bad_filter_raises_libpcaps_message_and_loses_nothing(handle):
    p, mac = send(handle, count=20)
    first = []
    handle.loop(5, lambda h, d: first.append(bytes(d)))
    with pytest.raises(WirecapError, match="syntax error|parse error|illegal"):
        handle.setfilter("udp and (port")
    rest = []
    handle.loop(15, lambda h, d: rest.append(bytes(d)))
    assert first + rest == [p.frame(i, mac) for i in range(20)]
