"""Capture files we write are read back by real tcpdump with the same bytes and timestamps."""
import shutil
import struct
import subprocess

import pytest

from wirecap.dump import PcapngWriter, PcapWriter, open_writer, read_pcap
from wirecap.errors import WirecapError

# (timestamp_ns, frame, orig_len): odd and even lengths, sub-µs stamps, a snapped frame.
FRAMES = [
    (1_700_000_000_123_456_789, bytes(range(61)), 61),
    (1_700_000_000_123_456_790, bytes(range(1, 65)), 64),
    (1_700_000_001_000_000_001, bytes(range(2, 99)), 1514),
    (1_700_000_002_999_999_999, bytes(range(255)) * 5 + b"\x42", 1276),
    (2_000_000_000_500_000_003, b"\xee" * 62, 62),
]
FORMATS = [("pcap", False), ("pcap-ns", True), ("pcapng", True)]


def tcpdump(*args):
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is not installed: `apt-get install tcpdump` (.ci/run does)")
    return subprocess.run(["tcpdump", *args], capture_output=True, check=True).stdout


def write(path, fmt, **kw):
    with open_writer(str(path), fmt, **kw) as w:
        for ts, frame, orig in FRAMES:
            w.write(ts, frame, orig)


def expected(ns):
    return [(ts if ns else ts // 1000 * 1000, frame, orig) for ts, frame, orig in FRAMES]


@pytest.mark.parametrize("fmt, ns", FORMATS + [("pcapng-us", False)])
def test_tcpdump_reads_our_files(tmp_path, fmt, ns):
    path, out = tmp_path / "ours", tmp_path / "theirs.pcap"
    if fmt == "pcapng-us":
        write(path, "pcapng", tsresol_ns=False)
    else:
        write(path, fmt)
    # tcpdump re-writes what it read as a nanosecond pcap: compare every record exactly.
    out.write_bytes(tcpdump("-r", str(path), "--time-stamp-precision=nano", "-w", "-"))
    assert read_pcap(str(out))[1] == expected(ns)
    printed = tcpdump("-r", str(path), "-nn", "-tt", "--time-stamp-precision=nano")
    stamps = [line.split()[0].decode() for line in printed.splitlines() if line[:1].isdigit()]
    assert stamps == [f"{ts // 10**9}.{ts % 10**9:09d}" for ts, _, _ in expected(ns)]


def test_tcpdump_hex_dump_of_odd_frame(tmp_path):
    path = tmp_path / "odd.pcapng"
    with PcapngWriter(str(path)) as w:
        w.write(10**18, bytes(range(61)))
    hexdump = tcpdump("-r", str(path), "-nn", "-xx").decode()
    words = "".join(line.split(":", 1)[1] for line in hexdump.splitlines() if "0x00" in line)
    assert bytes.fromhex(words.replace(" ", "")) == bytes(range(61))


def blocks(data):
    """(type, body) of each pcapng block, checking the framing every reader relies on."""
    off, out = 0, []
    while off < len(data):
        btype, total = struct.unpack_from("<II", data, off)
        assert total % 4 == 0 and total >= 12
        assert struct.unpack_from("<I", data, off + total - 4)[0] == total
        out.append((btype, data[off + 8:off + total - 4]))
        off += total
    assert off == len(data)
    return out


def options(body):
    opts, off = {}, 0
    while True:
        code, length = struct.unpack_from("<HH", body, off)
        if code == 0:
            return opts
        opts[code] = body[off + 4:off + 4 + length]
        off += 4 + length + (-length % 4)


def test_pcapng_blocks_and_options(tmp_path):
    path = tmp_path / "f.pcapng"
    with PcapngWriter(str(path), snaplen=96, interface_name="sim:0q", application="wcap") as w:
        w.write(5 * 10**9 + 7, bytes(range(97)) + b"tail")     # snapped to 96 bytes
        w.write(6 * 10**9, bytes(range(63)))
    (shb_t, shb), (idb_t, idb), *epbs = blocks(path.read_bytes())
    assert shb_t == 0x0A0D0D0A and struct.unpack_from("<IHHq", shb) == (0x1A2B3C4D, 1, 0, -1)
    assert options(shb[16:]) == {4: b"wcap"}
    assert idb_t == 1 and struct.unpack_from("<HHI", idb) == (1, 0, 96)
    assert options(idb[8:]) == {2: b"sim:0q", 9: b"\x09"}
    assert [(t, struct.unpack_from("<IIIII", b)) for t, b in epbs] == [
        (6, (0, 1, 5 * 10**9 + 7 - 2**32, 96, 101)), (6, (0, 1, 6 * 10**9 - 2**32, 63, 63))]
    assert epbs[0][1][20:20 + 96] == bytes(range(96))
    assert epbs[1][1][20:] == bytes(range(63)) + b"\0"      # padded to 32 bits, no options
    no_name = tmp_path / "g.pcapng"
    PcapngWriter(str(no_name), tsresol_ns=False, application=None).close()
    (_, shb), (_, idb) = blocks(no_name.read_bytes())
    assert options(shb[16:]) == {} and options(idb[8:]) == {9: b"\x06"}


def test_open_writer_picks_the_writer(tmp_path):
    for fmt, ns in FORMATS:
        with open_writer(str(tmp_path / fmt), fmt, snaplen=128) as w:
            assert w.snaplen == 128
            assert isinstance(w, PcapngWriter if fmt == "pcapng" else PcapWriter)
            assert fmt == "pcapng" or w.nanosecond == ns


def test_open_writer_errors(tmp_path):
    with pytest.raises(WirecapError, match="'pcap-us' is unknown: use one of pcap, pcap-ns, "
                                           "pcapng"):
        open_writer(str(tmp_path / "x"), "pcap-us")
    with pytest.raises(WirecapError, match="'pcap' does not take interface_name"):
        open_writer(str(tmp_path / "x"), "pcap", interface_name="eth0")
    with pytest.raises(WirecapError, match="'pcap-ns' does not take nanosecond"):
        open_writer(str(tmp_path / "x"), "pcap-ns", nanosecond=False)
    with pytest.raises(WirecapError, match="pcapng snaplen 0: valid range is 1..262144"):
        open_writer(str(tmp_path / "x"), "pcapng", snaplen=0)


# ----------------------------------------------------------------------------- merged records
def test_merge_records_interleaves_blobs_in_time_order_in_every_format(tmp_path):
    from wirecap import _pcap
    from wirecap.output import epb_records
    a = [(t, bytes([i]) * (60 + i), 60 + i) for i, t in enumerate((10, 30, 50, 70))]
    b = [(t, bytes([9 + i]) * (61 + 2 * i), 100 + i) for i, t in enumerate((20, 30, 60))]
    blobs = [epb_records(a, interface=0), epb_records(b, interface=1)]
    want = sorted(a + b, key=lambda r: r[0])        # stable: a's 30 before b's 30
    for fmt, ns in FORMATS:
        out, pos, n = _pcap.merge_records(blobs, [0, 0], 2**63, _pcap.FORMATS[fmt])
        assert n == 7 and pos == [len(x) for x in blobs]
        if fmt == "pcapng":
            epbs = [struct.unpack_from("<IIIII", out, off + 8) for off in
                    _offsets(out)]
            assert epbs == [(int((ts, d, o) in b), 0, ts, len(d), o) for ts, d, o in want]
            continue
        mine, ref = tmp_path / f"{fmt}.mine", tmp_path / f"{fmt}.ref"
        with open_writer(str(mine), fmt, snaplen=256) as w:
            w.write_records(out)
        with open_writer(str(ref), fmt, snaplen=256) as w:
            for ts, d, orig in want:
                w.write(ts, d, orig)
        assert mine.read_bytes() == ref.read_bytes()
        assert [r[1:] for r in read_pcap(str(mine))[1]] == [r[1:] for r in want]


def _offsets(blob):
    off = 0
    while off < len(blob):
        yield off
        off += struct.unpack_from("<I", blob, off + 4)[0]


def test_merge_records_stops_at_the_cutoff_the_count_and_the_size():
    from wirecap import _pcap
    from wirecap.output import epb_records
    recs = [(t, bytes(64), 64) for t in range(100, 110)]
    blob = epb_records(recs)
    pcap = _pcap.FORMATS["pcap-ns"]
    out, pos, n = _pcap.merge_records([blob], [0], 104, pcap)
    assert n == 5 and len(out) == 5 * 80 and pos == [5 * 96]
    out, pos, n = _pcap.merge_records([blob], pos, 2**63, pcap, 2)
    assert n == 2 and pos == [7 * 96]
    out, pos, n = _pcap.merge_records([blob], pos, 2**63, pcap, 2**63, 81)  # crossing 81 bytes
    assert n == 2 and len(out) == 160 and pos == [9 * 96]
    with pytest.raises(ValueError, match="position"):
        _pcap.merge_records([blob], [len(blob) + 1], 0, pcap)


def test_pcapng_statistics_block(tmp_path):
    path = tmp_path / "s.pcapng"
    with PcapngWriter(str(path), interfaces=["eth0", "sim:0"]) as w:
        w.write_statistics(1, 7 * 10**9, received=10, dropped=2)
    (_, _), idb0, idb1, (isb_t, isb) = blocks(path.read_bytes())
    assert options(idb0[1][8:])[2] == b"eth0" and options(idb1[1][8:])[2] == b"sim:0"
    assert isb_t == 5 and struct.unpack_from("<III", isb) == (1, 1, 7 * 10**9 - 2**32)
    assert options(isb[12:]) == {4: struct.pack("<Q", 10), 5: struct.pack("<Q", 2)}
    out = subprocess.run(["tcpdump", "-r", str(path)], capture_output=True)
    assert out.returncode == 0, out.stderr


def test_writers_fail_at_open_where_the_file_refuses_writes():
    with pytest.raises(OSError):
        open_writer("/proc/version", "pcap")
