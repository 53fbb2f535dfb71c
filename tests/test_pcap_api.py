"""The libpcap-compatible handle, as pcapy/pypcap users call it."""
import hashlib
import json
import os
import select
import struct
import subprocess
import sys
import time

import pytest

from wirecap import pcap, sim
from wirecap.afpacket import veth
from wirecap.dump import PcapWriter, read_pcap
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


# ---------------------------------------------------------------------- pcapy-ng's whole API
def test_findalldevs_lists_interfaces_and_the_model_and_lookupdev_picks_one():
    devs = pcap.findalldevs()
    assert "lo" in devs and "sim:0" in devs and all(isinstance(d, str) for d in devs)
    lo = devs[devs.index("lo")]
    assert "loopback" in lo.flags and ("127.0.0.1", "255.0.0.0") in lo.addresses
    assert "AF_PACKET" in lo.description and "model" in devs[devs.index("sim:0")].description
    assert devs.index("lo") < devs.index("sim:0")
    picked = pcap.lookupdev()
    assert picked in devs and "loopback" not in devs[devs.index(picked)].flags


def test_create_then_activate_and_the_set_calls_libpcap_refuses_afterwards(fresh_model):
    h = pcap.create("sim:0", ndesc=128, segment=16, flush_us=0)
    with pytest.raises(pcap.PcapError, match="not activated"):
        h.dispatch(1, lambda hd, d: None)
    assert (h.set_snaplen(100), h.set_promisc(1), h.set_timeout(200), h.set_buffer_size(1 << 20),
            h.set_immediate_mode(1)) == (0, 0, 0, 0, 0)
    assert h.set_rfmon(1) == pcap.PCAP_ERROR_RFMON_NOTSUP
    assert h.activate() == 0
    try:
        assert h.set_snaplen(50) == pcap.PCAP_ERROR_ACTIVATED and h.snapshot() == 100
        assert h.activate() == pcap.PCAP_ERROR_ACTIVATED
        sim.open(0).wire.send(TrafficProfile(count=3, sizes=(300,)))
        got = []
        h.loop(3, lambda hdr, d: got.append((hdr.caplen, hdr.len)))
        assert got == [(100, 296)] * 3
        # 1 MiB of 16 x 2 KiB buffers per chunk: 32 chunks
        assert h.stats().free + h.stats().armed + h.stats().captured == 32
        assert (h.getnet(), h.getmask()) == ("0.0.0.0", "0.0.0.0")     # no IPv4 on a NIC port
        h.setdirection(pcap.PCAP_D_IN)                  # it captures received frames only
        with pytest.raises(pcap.PcapError, match="PCAP_D_OUT"):
            h.setdirection(pcap.PCAP_D_OUT)
        with pytest.raises(pcap.PcapError, match="not a Linux interface"):
            h.set_fanout(1)
    finally:
        h.close()


def test_sendpacket_goes_out_of_transmit_queue_0(fresh_model):
    with pcap.open_live("sim:0", 65535, True, 100, ndesc=128, segment=16) as h:
        frame = bytes.fromhex("ffffffffffff025743fffffe0806") + bytes(46)
        before = sim.open(0).transmitted()[0]
        h.sendpacket(frame)
        h.sendpacket(bytearray(frame))
        for _ in range(1000):                          # the model sends on its clock
            if sim.open(0).transmitted()[0] == before + 2:
                break
            time.sleep(0.001)
        assert sim.open(0).transmitted()[0] == before + 2


def udp_frame(i, dport=5001, size=80):
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, size - 14, i & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 9, 0, 2]), bytes([10, 9, 0, 1]))
    udp = struct.pack(">HHHH", 1024 + i % 50000, dport, size - 34, 0)
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + udp + \
        i.to_bytes(4, "big") + bytes(size - 46)


def write_trace(path, frames, t0_ns=1_700_000_000_123_456_000, step_ns=1000):
    w = PcapWriter(str(path))
    for i, f in enumerate(frames):
        w.write(t0_ns + i * step_ns, f)
    w.close()


def test_open_offline_reads_a_file_through_libpcaps_filter_with_its_timestamps(tmp_path):
    frames = [udp_frame(i, 5001 if i % 3 else 7000) for i in range(30)]
    write_trace(tmp_path / "t.pcap", frames)
    r = pcap.open_offline(str(tmp_path / "t.pcap"))
    assert r.datalink() == pcap.DLT_EN10MB and r.getnet() == "0.0.0.0"
    r.setfilter("udp dst port 5001")
    got = []
    assert r.loop(5, lambda h, d: got.append((h.getts(), h.getlen(), d))) == 5
    h, d = r.next()
    rest = [(hh.getts(), hh.getlen(), dd) for hh, dd in r]
    want = [(divmod(1_700_000_000_123_456 + i, 1_000_000), 80, f)
            for i, f in enumerate(frames) if i % 3]
    assert got + [(h.getts(), h.getlen(), d)] + rest == want
    assert r.next() == (None, b"") and r.stats()[:3] == (30, 0, 0)
    with pytest.raises(pcap.PcapError, match="no such file"):
        pcap.open_offline(str(tmp_path / "missing.pcap"))
    with pytest.raises(pcap.BPFError, match="syntax|parse"):
        r.setfilter("udp and (")


def test_compile_gives_a_bpfprogram_as_pcapy_does():
    prog = pcap.compile(pcap.DLT_EN10MB, 65535, "udp dst port 5001", 1, 0)
    assert prog.filter(udp_frame(1)) == 65535 and prog.filter(udp_frame(1, 7000)) == 0
    code = prog.get_bpf()
    assert code and all(len(ins) == 4 for ins in code) and code[-1][0] == 0x06   # BPF_RET
    with pytest.raises(pcap.BPFError):
        pcap.compile(pcap.DLT_EN10MB, 65535, "no such primitive", 1, 0)


def test_pypcap_shape_hands_out_float_timestamps(tmp_path):
    frames = [udp_frame(i) for i in range(4)]
    write_trace(tmp_path / "t.pcap", frames, step_ns=250_000_000)
    p = pcap.pcap(str(tmp_path / "t.pcap"))             # pypcap opens a file by its name
    p.setfilter("udp")
    seen = []
    p.loop(2, lambda ts, data, tag: seen.append((round(ts, 6), bytes(data), tag)), "x")
    assert seen == [(1_700_000_000.123456, frames[0], "x"), (1_700_000_000.373456, frames[1], "x")]
    assert [(round(ts, 6), d) for ts, d in p] == [(1_700_000_000.623456, frames[2]),
                                                  (1_700_000_000.873456, frames[3])]
    assert p.filter == "udp" and p.datalink() == pcap.DLT_EN10MB


# A typical pcapy-ng script; the test runs it twice on the same veth traffic: as written
# (import pcapy) and with only its import line changed (import wirecap.pcap as pcapy).
PCAPY_SCRIPT = """\
import hashlib, json, sys
IMPORT

dev, count, dump_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if dev not in pcapy.findalldevs():
    sys.exit(f"{dev} is not among {pcapy.findalldevs()}")
p = pcapy.open_live(dev, 65536, 1, 100)
p.setfilter("udp and dst port 5001")
print("ready", flush=True)
seen, dumper = [], p.dump_open(dump_path)

def on_packet(hdr, data):
    seen.append([hdr.getlen(), hdr.getcaplen(), hashlib.sha1(data).hexdigest()])
    dumper.dump(hdr, data)

p.loop(count, on_packet)
dumper.close()
p.sendpacket(bytes.fromhex(sys.argv[4]))
recv, drop, ifdrop = p.stats()

bpf = pcapy.compile(pcapy.DLT_EN10MB, 65536, "udp src port 1030", 1, 0)
r = pcapy.open_offline(dump_path)
r.setfilter("udp")
offline = []
while True:
    hdr, data = r.next()
    if hdr is None:
        break
    offline.append([hdr.getlen(), hashlib.sha1(data).hexdigest(), bpf.filter(data) > 0])
print(json.dumps({"seen": seen, "offline": offline, "datalink": p.datalink(),
                  "net": [p.getnet(), p.getmask()], "recv_at_least_count": recv >= count,
                  "drop": drop}))
"""


def run_pcapy_script(import_line, vp, count, frames, tmp_path):
    name = "wirecap" if "wirecap" in import_line else "pcapy"
    script = tmp_path / f"{name}_script.py"
    script.write_text(PCAPY_SCRIPT.replace("IMPORT", import_line))
    reply = udp_frame(99, 6000).hex()
    return subprocess.Popen([sys.executable, str(script), vp.capture, str(count),
                             str(tmp_path / f"{name}.pcap"), reply],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def peer_rx_packets(vp):
    out = subprocess.run(["ip", "netns", "exec", vp.ns, "cat",
                          f"/sys/class/net/{vp.sender}/statistics/rx_packets"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(veth.missing() is not None, reason=str(veth.missing()))
def test_a_pcapy_ng_script_runs_with_only_its_import_changed(tmp_path):
    pytest.importorskip("pcapy")
    count = 200
    # 200 frames to port 5001 among 50 to port 7000 that the script's filter drops
    frames = [udp_frame(i, 7000 if i % 5 == 4 else 5001) for i in range(count + 50)]
    write_trace(tmp_path / "traffic.pcap", frames)
    with veth.VethPair() as vp:
        base_rx = peer_rx_packets(vp)
        procs = [run_pcapy_script(line, vp, count, frames, tmp_path)
                 for line in ("import pcapy", "import wirecap.pcap as pcapy")]
        for p in procs:                 # both have their sockets open: both see every frame
            line = p.stdout.readline()
            assert line == "ready\n", p.stderr.read()
        assert vp.replay(tmp_path / "traffic.pcap", pps=20000) == len(frames)
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(json.loads(out))
        assert peer_rx_packets(vp) - base_rx == 2      # each script's sendpacket arrived
    pcapy_run, ours = results
    want = [f for f in frames if f[36:38] == (5001).to_bytes(2, "big")]
    assert ours["seen"] == [[len(f), len(f), hashlib.sha1(f).hexdigest()] for f in want]
    assert ours == pcapy_run            # the same packets, files, filters, net and counters
    assert ours["offline"] == [[len(f), hashlib.sha1(f).hexdigest(), f[34:36] == b"\x04\x06"]
                               for f in want]
    assert ours["net"] == ["0.0.0.0", "0.0.0.0"] and ours["datalink"] == pcap.DLT_EN10MB


def test_open_offline_reads_pcapng_as_it_reads_pcap(tmp_path):
    from wirecap.dump import PcapngWriter
    frames = [udp_frame(i, 5001 if i % 3 else 7000) for i in range(30)]
    write_trace(tmp_path / "t.pcap", frames)
    with PcapngWriter(str(tmp_path / "t.pcapng"), interface_name="eth9") as w:
        for i, f in enumerate(frames):
            w.write(1_700_000_000_123_456_000 + i * 1000, f)
    got = {}
    for name in ("t.pcap", "t.pcapng"):
        with pcap.open_offline(str(tmp_path / name)) as r:
            r.setfilter("udp dst port 5001")
            got[name] = [(h.getts(), h.getlen(), d) for h, d in r]
            assert r.datalink() == pcap.DLT_EN10MB and r.stats()[:3] == (30, 0, 0)
    assert got["t.pcap"] == got["t.pcapng"] and len(got["t.pcap"]) == 20


def _udp_to_loopback(ports):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for port in ports:
            s.sendto(b"wirecap", ("127.0.0.1", port))


def _until_marker(h, marker_port):
    """Ports of the UDP packets h hands out, up to the one to ``marker_port``."""
    got = []
    deadline = time.monotonic() + 30
    while marker_port not in got:
        assert time.monotonic() < deadline, got
        h.dispatch(-1, lambda hdr, d: got.append(struct.unpack(">H", d[-13:-11])[0]))
    return got


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET sockets need root")


@needs_root
def test_any_hands_out_cooked_packets_and_loopback_once():
    import socket
    with pcap.open_live("any", 65535, True, 100) as h:
        assert h.datalink() == pcap.DLT_LINUX_SLL2
        assert h.list_datalinks() == [pcap.DLT_LINUX_SLL, pcap.DLT_LINUX_SLL2]
        with pytest.raises(pcap.PcapError, match="not one it hands out"):
            h.set_datalink(pcap.DLT_EN10MB)
        h.setfilter("udp and portrange 54321-54322")    # compiled for the cooked headers
        heads = []
        h.set_datalink(pcap.DLT_LINUX_SLL)
        h.setfilter("udp and portrange 54321-54322")
        _udp_to_loopback([54321] * 3 + [54322])
        h.loop(1, lambda hdr, d: heads.append(bytes(d[:16])))
        # each datagram once: loopback's outgoing copy is skipped, as libpcap skips it
        assert _until_marker(h, 54322) == [54321] * 2 + [54322]
        pkttype, hatype, halen, _, proto = struct.unpack(">HHH8sH", heads[0])
        assert (pkttype, hatype, halen, proto) == (0, 772, 6, 0x0800)  # HOST, ARPHRD_LOOPBACK
        h.set_datalink(pcap.DLT_LINUX_SLL2)
        got = []
        _udp_to_loopback([54321, 54322])
        while not got or struct.unpack(">H", got[-1][-13:-11])[0] != 54322:
            h.dispatch(-1, lambda hdr, d: got.append(bytes(d)))
        proto, _, ifindex = struct.unpack(">HHI", got[0][:8])
        assert (proto, ifindex) == (0x0800, socket.if_nametoindex("lo"))


@needs_root
def test_setdirection_out_keeps_what_the_interface_sent():
    with pcap.open_live("lo", 65535, True, 100) as h:
        h.setfilter("udp and portrange 54323-54324")
        h.setdirection(pcap.PCAP_D_OUT)
        _udp_to_loopback([54323] * 3 + [54324])
        # only the outgoing copies (lo also hands each back as received, PACKET_HOST)
        assert _until_marker(h, 54324) == [54323] * 3 + [54324]
        h.setdirection(pcap.PCAP_D_IN)
        _udp_to_loopback([54323] * 2 + [54324])
        assert _until_marker(h, 54324) == [54323] * 2 + [54324]
