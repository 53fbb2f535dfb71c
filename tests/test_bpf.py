"""Filters: compiled and run by libpcap, so they must agree with real tcpdump on every packet."""
import random
import shutil
import struct
import subprocess

import numpy as np
import pytest

from wirecap._bpf import Filter, FilterError, kernel_program
from wirecap.dump import PcapWriter, read_pcap
from wirecap.errors import WirecapError

T0 = 1_700_000_000                  # frame i is stamped T0 + i seconds: its index in tcpdump output
HOSTS4 = ["198.18.0.1", "198.18.0.2", "198.18.7.9", "10.0.0.1", "192.0.2.200"]
HOSTS6 = ["2001:db8::1", "2001:db8::2", "fe80::1"]
PORTS = [22, 53, 80, 443, 999, 1000, 1500, 2000, 2001, 5353, 40000]
BROADCAST, MCAST4, MCAST6 = b"\xff" * 6, bytes.fromhex("01005e000001"), bytes.fromhex("333300000001")

EXPRESSIONS = [
    "tcp", "udp", "udp port 53", "host 198.18.0.1", "net 198.18.0.0/16", "ip6", "icmp", "icmp6",
    "arp", "vlan", "vlan and tcp", "tcp[tcpflags] & tcp-syn != 0", "ether broadcast",
    "ether multicast", "not ip", "portrange 1000-2000", "ip[8] < 64", "greater 500", "less 100",
    "src host 198.18.0.2 and dst port 80", "ip6 and tcp", "udp and not port 53",
    "ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0", "tcp dst port 443 or udp src port 5353",
    "ip6 host 2001:db8::1", "ip and (tcp or icmp) and not net 10.0.0.0/8",
]


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def ip6(a):
    import ipaddress
    return ipaddress.IPv6Address(a).packed


def eth(dst, src, ethertype, payload, vlan=None):
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return dst + src + tag + struct.pack("!H", ethertype) + payload


def tcp(sport, dport, flags, payload):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src, dst, proto, payload, ttl, frag=0):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, frag, ttl, proto, 0,
                       ip4(src), ip4(dst)) + payload


def ipv6(src, dst, nh, payload, hlim):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, hlim, ip6(src), ip6(dst)) \
        + payload


def arp(sender, target):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x02" * 6, ip4(sender),
                       b"\x00" * 6, ip4(target))


def random_frame(rng):
    """(frame, orig_len): a random mix of the traffic the expressions above tell apart."""
    src = bytes.fromhex("020000000001")
    dst = rng.choice([bytes.fromhex("020000000002")] * 6 + [BROADCAST, MCAST4, MCAST6])
    payload = bytes(rng.choice([0, 6, 40, 300, 600, 1400]))
    kind = rng.choice(["tcp4", "tcp4", "udp4", "udp4", "icmp4", "frag4", "tcp6", "udp6",
                       "icmp6", "arp"])
    sport, dport = rng.choice(PORTS), rng.choice(PORTS)
    a, b = rng.sample(HOSTS4, 2)
    a6, b6 = rng.sample(HOSTS6, 2)
    ttl = rng.choice([1, 32, 63, 64, 128, 255])
    if kind == "tcp4":
        l3 = 0x0800, ipv4(a, b, 6, tcp(sport, dport, rng.choice([0x02, 0x12, 0x10, 0x18]),
                                      payload), ttl)
    elif kind == "udp4":
        l3 = 0x0800, ipv4(a, b, 17, udp(sport, dport, payload), ttl)
    elif kind == "icmp4":
        l3 = 0x0800, ipv4(a, b, 1, struct.pack("!BBHI", 8, 0, 0, 1) + payload, ttl)
    elif kind == "frag4":           # first fragment (MF) or a later one (offset, no L4 header)
        frag = rng.choice([0x2000, 0x00B9, 0x20B9])
        l3 = 0x0800, ipv4(a, b, rng.choice([6, 17]), udp(sport, dport, payload), ttl, frag)
    elif kind == "tcp6":
        l3 = 0x86DD, ipv6(a6, b6, 6, tcp(sport, dport, 0x02, payload), ttl)
    elif kind == "udp6":
        l3 = 0x86DD, ipv6(a6, b6, 17, udp(sport, dport, payload), ttl)
    elif kind == "icmp6":
        l3 = 0x86DD, ipv6(a6, b6, 58, struct.pack("!BBHI", 128, 0, 0, 1) + payload, ttl)
    else:
        dst, l3 = BROADCAST, (0x0806, arp(a, b))
    frame = eth(dst, src, *l3, vlan=rng.choice([None] * 5 + [10, 4095]))
    frame += bytes(max(0, 60 - len(frame)))
    if rng.random() < 0.1:          # snapped: the wire length is what `greater`/`less` test
        return frame[:96], len(frame) + 500
    return frame, len(frame)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """A pcap of 400 mixed frames and its records as read back."""
    path = tmp_path_factory.mktemp("bpf") / "mixed.pcap"
    rng = random.Random(82599)
    with PcapWriter(str(path)) as w:
        for i in range(400):
            frame, orig = random_frame(rng)
            w.write((T0 + i) * 1_000_000_000, frame, orig)
    return path, read_pcap(str(path))[1]


def tcpdump(*args, check=True):
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is not installed: `apt-get install tcpdump` (.ci/run does)")
    return subprocess.run(["tcpdump", *args], capture_output=True, check=check)


def tcpdump_matches(path, expression, tmp_path):
    """Indices of the frames `tcpdump -r` selects, read from the records it writes out."""
    out = tmp_path / "selected.pcap"
    out.write_bytes(tcpdump("-r", str(path), "-nn", "-w", "-", expression).stdout)
    return {ts // 1_000_000_000 - T0 for ts, _, _ in read_pcap(str(out))[1]}


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_filter_selects_what_tcpdump_selects(traffic, expression, tmp_path):
    path, records = traffic
    f = Filter(expression)
    ours = {i for i, (_, frame, orig) in enumerate(records) if f.matches(frame, wirelen=orig)}
    theirs = tcpdump_matches(path, expression, tmp_path)
    assert 0 < len(theirs) < len(records), "the traffic does not exercise this expression"
    assert ours == theirs


@pytest.mark.parametrize("expression", ["tcp port 80", "vlan and udp", "ip6 or arp", ""])
def test_dump_is_tcpdump_d(traffic, expression):
    out = tcpdump("-r", str(traffic[0]), "-d", expression).stdout.decode()
    assert Filter(expression).dump() == out.rstrip("\n")


def test_program_is_instructions_as_data():
    prog = Filter("tcp port 80").program
    assert prog[0] == (0x28, 0, 0, 12)                      # ldh [12]: the ethertype
    assert prog[-1] == (0x06, 0, 0, 0)                      # ret #0: reject
    assert (0x06, 0, 0, 65535) in prog                      # ret #snaplen: accept
    assert Filter("tcp", snaplen=128).program[-2] == (0x06, 0, 0, 128)


@pytest.mark.parametrize("expression, libpcap_says", [
    ("tcp port x", "unknown port 'x'"),
    ("foo bar", "syntax error"),
    ("host 300.1.1.1", "300.1.1.1"),
])
def test_bad_expression_raises_with_libpcaps_message(traffic, expression, libpcap_says):
    with pytest.raises(WirecapError) as err:
        Filter(expression)
    assert isinstance(err.value, FilterError)
    assert f"filter {expression!r}: " in str(err.value)
    assert libpcap_says in str(err.value)
    said = tcpdump("-r", str(traffic[0]), expression, check=False).stderr.decode()
    assert libpcap_says in said                           # tcpdump's libpcap says the same


def test_bad_arguments_are_refused():
    with pytest.raises(FilterError, match="data link type 9999"):
        Filter("ip", linktype=9999)
    with pytest.raises(FilterError, match="snaplen 0"):
        Filter("ip", snaplen=0)
    with pytest.raises(FilterError, match="NUL"):
        Filter("ip\0tcp")
    f = Filter("ip")
    with pytest.raises(FilterError, match="compiled once"):
        f.__init__("udp")                                   # would leak the first program
    assert f.expression == "ip"


@pytest.mark.parametrize("expression", ["", None])
def test_empty_expression_matches_everything(traffic, expression):
    f = Filter(expression)
    assert f.expression == ""
    assert all(f.matches(frame, wirelen=orig) for _, frame, orig in traffic[1])
    assert f.matches(b"")


def test_other_link_types():
    raw = ipv4("198.18.0.1", "198.18.0.2", 17, udp(1, 53, b""), 64)
    f = Filter("udp port 53", linktype=12)                  # DLT_RAW: no Ethernet header
    assert f.matches(raw) and not f.matches(ipv4("198.18.0.1", "198.18.0.2", 6,
                                                  tcp(1, 53, 2, b""), 64))
    assert not Filter("udp port 53").matches(raw)


def test_match_many_agrees_with_matches(traffic):
    frames = [frame for _, frame, _ in traffic[1]]
    for expression in EXPRESSIONS:
        f = Filter(expression)
        many = f.matches_many(frames)
        assert many.dtype == np.bool_ and many.shape == (len(frames),)
        assert many.tolist() == [f.matches(fr) for fr in frames], expression
    assert Filter("tcp").matches_many([]).shape == (0,)
    views = [memoryview(fr) for fr in frames[:10]] + [bytearray(frames[10])]
    assert Filter("ip").matches_many(views).tolist() == [Filter("ip").matches(v) for v in views]


def test_match_many_refuses_jumbo_packets():
    with pytest.raises(FilterError, match="70000 bytes"):
        Filter("ip").matches_many([bytes(60), bytes(70000)])


def test_wirelen_below_caplen_is_refused():
    with pytest.raises(FilterError, match="wirelen 10"):
        Filter("ip").matches(bytes(60), wirelen=10)


@pytest.mark.parametrize("expression", ["tcp port 80", "", "vlan and udp"])
def test_kernel_program_round_trips(expression):
    f, code = Filter(expression), kernel_program(expression)
    assert len(code) == 8 * len(f.program) and len(code) % 8 == 0
    assert struct.unpack_from("<HBBI", code) == f.program[0]
    assert list(struct.iter_unpack("<HBBI", code)) == f.program


def test_kernel_program_snaplen_and_errors():
    code = kernel_program("udp", snaplen=200)
    assert (0x06, 0, 0, 200) in list(struct.iter_unpack("<HBBI", code))
    with pytest.raises(FilterError, match="syntax error"):
        kernel_program("udp and and")


def test_repr_names_the_filter():
    r = repr(Filter("udp port 53", snaplen=128))
    assert "'udp port 53'" in r and "snaplen=128" in r and "linktype=1" in r
