"""The wire: pcap replay, traffic profiles, and the errors for bad input."""
import struct
import subprocess
import sys

import pytest

from wirecap.dump import PcapError, PcapWriter, read_pcap
from wirecap.errors import WirecapError
from wirecap.sim import Pcap, TrafficProfile, line_rate_pps


def mixed_frames(n, dst_mac):
    p = TrafficProfile(count=n, sizes=(64, 128, 777, 1518), flows=5, proto="tcp")
    return [p.frame(i, dst_mac) for i in range(n)]


@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_replay_is_byte_exact(dev, make_driver, tmp_path, nanosecond):
    drv = make_driver(ndesc=512)
    frames = mixed_frames(200, bytes.fromhex(dev.mac.replace(":", "")))
    path = tmp_path / "in.pcap"
    with PcapWriter(path, nanosecond=nanosecond) as w:
        for i, f in enumerate(frames):
            w.write(1_700_000_000_000_000_000 + i * 20_000, f)   # 20 µs apart
    dev.wire.play(Pcap(str(path)))
    assert dev.wire.wait(10)
    assert [f for f, *_ in drv.receive(0)] == frames
    assert dev.wire.stats()["sent"] == 200


def test_pcap_at_a_given_rate_and_looped(dev, make_driver, tmp_path):
    drv = make_driver(ndesc=512)
    frames = mixed_frames(30, bytes.fromhex(dev.mac.replace(":", "")))
    path = tmp_path / "in.pcap"
    with PcapWriter(path) as w:
        for f in frames:
            w.write(0, f)
    dev.wire.send(Pcap(str(path), rate=1e6, loops=3))
    assert [f for f, *_ in drv.receive(0)] == frames * 3


def test_pcap_roundtrip_and_short_frames_padded(dev, make_driver, tmp_path):
    drv = make_driver(promisc=True)
    path = tmp_path / "x.pcap"
    with PcapWriter(path, nanosecond=True) as w:
        w.write(123_456_789_012, b"\x01" * 42)
    linktype, recs = read_pcap(path)
    assert linktype == 1 and recs == [(123_456_789_012, b"\x01" * 42, 42)]
    dev.wire.send(Pcap(str(path)))
    assert [f for f, *_ in drv.receive(0)] == [b"\x01" * 42 + bytes(18)]


def test_pcap_is_streamed_not_read_whole(tmp_path):
    """A 64 MB capture replays in a few MB (issue 15: 300 MB took 1.36 GB)."""
    path = tmp_path / "big.pcap"
    frame = bytes.fromhex("025743500000") + bytes(1294)
    with PcapWriter(path) as w:
        w.write_records(b"".join(struct.pack("<IIII", i // 1000, i % 1000, 1300, 1300) + frame
                                 for i in range(50_000)))
    code = f"""
import resource
from wirecap.sim import Device, Pcap, Wire
dev = Device(0)
wire = Wire(dev)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wire.send(Pcap({str(path)!r}))
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(wire.sent, grew)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sent, grew_kb = map(int, out.stdout.split())
    assert sent == 50_000 and grew_kb < 16 * 1024, f"RSS grew by {grew_kb} KB"


def test_a_long_gap_in_a_pcap_is_cut_to_max_gap(dev, make_driver, tmp_path):
    drv = make_driver()
    path = tmp_path / "gap.pcap"
    with PcapWriter(path) as w:
        w.write(0, bytes.fromhex("025743500000") + bytes(54))
        w.write(3600 * 10**9, bytes.fromhex("025743500000") + bytes(54))    # an hour later
    dev.wire.play(Pcap(str(path), max_gap=0.01), concurrent=False)
    assert dev.wire.wait(60)                         # not an hour
    assert dev.wire.stats()["gaps_shortened"] == 1 and len(drv.receive(0)) == 2


@pytest.mark.parametrize("kw,match", [
    (dict(speed=0), r"speed=0: must be a positive finite number"),
    (dict(speed=float("inf")), r"speed=inf"),
    (dict(max_gap=-1), r"max_gap=-1: must be a positive finite number of seconds, or None"),
    (dict(rate=float("nan")), r"rate=nan: must be a positive finite number of frames/s"),
    (dict(loops=0), r"loops=0: must be an integer >= 1"),
])
def test_pcap_options_are_checked(tmp_path, kw, match):
    path = tmp_path / "one.pcap"
    with PcapWriter(path) as w:
        w.write(0, bytes(60))
    with pytest.raises(WirecapError, match=match):
        Pcap(str(path), **kw)


def write_bytes(tmp_path, data):
    p = tmp_path / "bad.pcap"
    p.write_bytes(data)
    return str(p)


GOOD_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


@pytest.mark.parametrize("data,match", [
    (b"\x00" * 10, "too short .* at offset 0"),
    (b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng"),
    (b"\xde\xad\xbe\xef" + bytes(20), "bad magic deadbeef at offset 0"),
    (GOOD_HEADER + bytes(10), "truncated record header at offset 24"),
    (GOOD_HEADER + struct.pack("<IIII", 0, 0, 100, 100) + bytes(50),
     "record at offset 24 is truncated"),
    (GOOD_HEADER + struct.pack("<IIII", 0, 0, 60, 60) + bytes(60)
     + struct.pack("<IIII", 0, 0, 900000, 900000), "record at offset 100 has caplen 900000"),
    (GOOD_HEADER + struct.pack("<IIII", 0, 2_000_000, 4, 4) + bytes(4), "offset 24 .*timestamp"),
])
def test_malformed_pcap_names_the_offset(tmp_path, data, match):
    with pytest.raises(PcapError, match=match):
        read_pcap(write_bytes(tmp_path, data))
    with pytest.raises(PcapError, match=match):     # the wire's streaming reader, too
        Pcap(write_bytes(tmp_path, data))


@pytest.mark.parametrize("kw,match", [
    (dict(count=0), r"count=0 .* from 1 to 2\*\*48"),
    (dict(sizes=(10,)), r"sizes=.*from 64 to 16128"),
    (dict(sizes=(16132,)), r"sizes=.*from 64 to 16128"),
    (dict(rate=2e7), r"rate=20000000.0 .*0.001 <= rate <= 14,880,952"),
    (dict(rate=-1), r"rate=-1"),
    (dict(rate=1e-300), r"rate=1e-300 .*0.001 <= rate"),
    (dict(rate=float("nan")), r"rate=nan .*0.001 <= rate"),
    (dict(rate=float("inf")), r"rate=inf .*0.001 <= rate"),
    (dict(count=1 << 48, rate=1e-3), r"rate=0.001 .*at least 61035[.\d]* frames/s for count="),
    (dict(flows=2, weights=(1,)), r"weights=.*2 finite non-negative numbers"),
    (dict(flows=2, weights=(1, float("nan"))), r"weights=.*2 finite non-negative numbers"),
    (dict(flows=2, weights=(1, float("inf"))), r"weights=.*2 finite non-negative numbers"),
    (dict(flows=2, weights=(0, 0)), r"weights=.*positive sum"),
    (dict(sizes=(64, 128), size_weights=(1, -1)), r"size_weights=.*2 finite non-negative"),
    (dict(count=True), r"count=True .* from 1 to 2\*\*48"),
    (dict(flows=0), r"flows=0 .* from 1 to 65536"),
    (dict(count=10, burst=11), r"burst=11 .* count=10"),
    (dict(proto="icmp"), r"proto='icmp'"),
])
def test_impossible_profile_names_parameter_and_range(kw, match):
    with pytest.raises(WirecapError, match=match):
        TrafficProfile(**kw)


def test_profile_parse():
    p = TrafficProfile.parse("count=1e6, size=64:1518, size_weights=3:1, flows=4, "
                             "weights=8:1:1:1, rate=line, burst=1000")
    assert (p.count, p.sizes, p.flows, p.burst, p.rate) == (1_000_000, (64, 1518), 4, 1000, None)
    assert p.pps == pytest.approx(line_rate_pps(p.mean_size))
    assert line_rate_pps(64) == pytest.approx(14_880_952, rel=1e-6)
    with pytest.raises(WirecapError, match="unknown key 'speed'"):
        TrafficProfile.parse("speed=10")
    with pytest.raises(WirecapError, match="not KEY=VALUE"):
        TrafficProfile.parse("count")


@pytest.mark.parametrize("text,match", [
    ("count=inf", r"count='inf' is invalid; valid: a whole number"),
    ("count=nan", r"count='nan' is invalid; valid: a whole number"),
    ("count=1.5", r"count='1.5' is invalid; valid: a whole number"),
    ("count=lots", r"count='lots' is invalid; valid: a number"),
    ("size=64:inf", r"sizes='inf' is invalid; valid: a whole number"),
    ("flows=2,weights=1:nan", r"weights=\(1.0, nan\) is invalid; valid: 2 finite"),
    ("flows=2,weights=1:inf", r"weights=\(1.0, inf\) is invalid; valid: 2 finite"),
    ("rate=1e-300", r"rate=1e-300 is invalid; valid: 0.001 <= rate"),
    ("size=9018", None),
])
def test_profile_text_errors_are_one_line_with_the_range(text, match):
    if match is None:                           # jumbo frames are traffic the wire can carry
        assert TrafficProfile.parse(text).sizes == (9018,)
        return
    with pytest.raises(WirecapError, match=match) as err:
        TrafficProfile.parse(text)
    assert "\n" not in str(err.value)


def test_bursts_then_idle_keep_the_mean_rate(dev, make_driver):
    drv = make_driver(drop_en=True, ndesc=4096)
    p = TrafficProfile(count=3000, burst=1000, rate=200_000)
    dev.wire.play(p)
    assert dev.wire.wait(10)
    assert dev.wire.stats()["sent"] == 3000
    w = dev.wire
    line = 1e9 / line_rate_pps(64)
    assert w.due_ns(999) - w.due_ns(0) == pytest.approx(999 * line, abs=2)   # a burst at line rate
    assert w.due_ns(1000) == pytest.approx(5_000_000, abs=2)   # next burst keeps 200 kpps mean
    assert w.due_ns(2000) == pytest.approx(10_000_000, abs=2)
    assert len(drv.receive(0)) + dev.read32(0x01430) == 3000     # delivered + QPRDC(0)


def test_wire_refuses_a_second_source_while_playing(dev):
    dev.wire.play(TrafficProfile(count=10_000_000, rate=1000))
    with pytest.raises(WirecapError, match="still playing"):
        dev.wire.send(TrafficProfile(count=1))
    dev.wire.stop()
    assert not dev.wire.running


def test_cable_to_itself_is_refused(dev):
    with pytest.raises(WirecapError, match="itself"):
        dev.cable(dev)
