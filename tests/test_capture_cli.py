"""`wirecap capture` and `wirecap stats` as a user runs them, checked against real tcpdump."""
import json
import os
import pwd
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from wirecap.dump import PcapWriter, read_pcap
from wirecap.sim import TrafficProfile

TCPDUMP = shutil.which("tcpdump")
needs_tcpdump = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed "
                                   "(.ci/run installs it)")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = 1_700_000_000_000_000_000


def wirecap(*args, env=None, **kw):
    e = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, "-m", "wirecap.cli", *args], capture_output=True,
                          env=e, timeout=120, **kw)


def write(path, frames, gap_ns=50_000):
    with PcapWriter(str(path), nanosecond=True) as w:
        for i, f in enumerate(frames):
            w.write(T0 + i * gap_ns + i % 1000, f)
    return path


@pytest.fixture
def source(tmp_path):
    """A mixed UDP/TCP pcap, 50 µs apart: slow enough that the ring never runs dry."""
    mac = bytes.fromhex("025743000000")
    frames = []
    for proto, n in (("udp", 900), ("tcp", 600)):
        p = TrafficProfile(count=n, sizes=(64, 128, 1518), flows=7, proto=proto, seed=3)
        frames += [p.frame(i, mac) for i in range(n)]
    frames = frames[::2] + frames[1::2]             # interleave the protocols
    return write(tmp_path / "in.pcap", frames), frames


def _csum(b):
    s = sum(struct.unpack(f">{len(b) // 2}H", b + b"\0" * (len(b) % 2)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(proto, payload, src=b"\xc0\xa8\x01\x02", dst=b"\xc0\xa8\x01\x01", flags_frag=0):
    h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, flags_frag, 64, proto, 0,
                    src, dst)
    return h[:10] + struct.pack(">H", _csum(h)) + h[12:] + payload


ETH = bytes.fromhex("025743000000" "0257430000aa")


def zoo():
    """Frames of every kind the old hand-written decoder got wrong, and the usual ones."""
    icmp = struct.pack(">BBHHH", 8, 0, 0, 0x1234, 1) + b"ping" * 8
    icmp = icmp[:2] + struct.pack(">H", _csum(icmp)) + icmp[4:]
    udp = struct.pack(">HHHH", 5353, 53, 8 + 12, 0) + bytes(12)
    tcp = struct.pack(">HHIIBBHHH", 443, 51000, 1000, 2000, 0x50, 0x12, 65535, 0, 0)
    arp = struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, ETH[6:], b"\xc0\xa8\x01\x02",
                      bytes(6), b"\xc0\xa8\x01\x01")
    ip6 = struct.pack(">IHBB16s16s", 0x60000000, 8 + 4, 17, 64, b"\xfe\x80" + bytes(13) + b"\1",
                      b"\xff\x02" + bytes(13) + b"\xfb") + struct.pack(">HHHH", 5353, 5353, 12,
                                                                        0) + b"mdns"
    return [
        ETH + b"\x08\x00" + _ipv4(1, icmp),
        ETH + b"\x08\x06" + arp,
        ETH + b"\x86\xdd" + ip6,
        ETH + b"\x81\x00\x00\x05\x08\x00" + _ipv4(17, udp),                  # VLAN 5
        ETH + b"\x08\x00" + _ipv4(17, udp + bytes(40), flags_frag=0x2000),    # first fragment
        ETH + b"\x08\x00" + _ipv4(17, bytes(24), flags_frag=0x0006),          # a later one
        ETH + b"\x08\x00" + _ipv4(6, tcp),
        ETH + b"\x08\x00" + _ipv4(17, udp),
    ]


def tcpdump(*args):
    r = subprocess.run([TCPDUMP, *args], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def records(path):
    return [d for _, d, _ in read_pcap(str(path))[1]]


# ----------------------------------------------------------------------------- files
@needs_tcpdump
@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns"])
def test_capture_w_is_read_by_tcpdump_with_identical_bytes(source, tmp_path, fmt):
    src, frames = source
    out = tmp_path / "out.pcap"
    r = wirecap("capture", "-i", "sim:0", "--traffic", str(src), "-w", str(out), "--format",
                fmt, "--json")
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout)
    assert summary["nic_dropped"] == 0 and summary["delivered"] == len(frames)
    assert records(out) == frames
    # tcpdump reads every record, and writing them back out reproduces the file exactly
    copy = tmp_path / "copy.pcap"
    precision = ["--time-stamp-precision=nano"] if fmt == "pcap-ns" else []
    tcpdump(*precision, "-r", str(out), "-w", str(copy))
    assert copy.read_bytes() == out.read_bytes()
    hexdump = tcpdump("-r", str(out), "-xx").decode()
    assert hexdump.count("\n\t0x0000:") == len(frames)


def test_several_queues_are_written_in_time_order(tmp_path):
    out = tmp_path / "q.pcap"
    r = wirecap("capture", "--queues", "4", "--traffic", "count=40000,rate=400000,flows=64",
                "-w", str(out), "--json", "--segment", "32")
    assert r.returncode == 0, r.stderr.decode()
    s = json.loads(r.stdout)
    stamps = [ts for ts, _, _ in read_pcap(str(out))[1]]
    assert len(stamps) == s["delivered"] == s["seen"] > 0
    assert {q["rx_queue"] for q in s["per_queue"] if q["packets"]} == {0, 1, 2, 3}
    assert all(a <= b for a, b in zip(stamps, stamps[1:]))


def blocks(data):
    off, out = 0, []
    while off < len(data):
        btype, total = struct.unpack_from("<II", data, off)
        out.append((btype, data[off + 8:off + total - 4]))
        off += total
    return out


def options(body):
    opts, off = {}, 0
    while off + 4 <= len(body):
        code, length = struct.unpack_from("<HH", body, off)
        if code == 0:
            break
        opts[code] = body[off + 4:off + 4 + length]
        off += 4 + length + (-length % 4)
    return opts


@needs_tcpdump
def test_pcapng_has_an_interface_per_device_and_their_statistics(source, tmp_path):
    src, frames = source
    out = tmp_path / "two.pcapng"
    r = wirecap("capture", "-i", "sim:0", "-i", "sim:1", "--traffic", str(src), "-w", str(out),
                "--format", "pcapng", "-s", "100", "--json")
    assert r.returncode == 0, r.stderr.decode()
    s = json.loads(r.stdout)
    bl = blocks(out.read_bytes())
    idbs = [b for t, b in bl if t == 1]
    assert [options(b[8:])[2] for b in idbs] == [b"sim:0", b"sim:1"]
    assert [struct.unpack_from("<HHI", b)[2] for b in idbs] == [100, 100]
    epbs = [b for t, b in bl if t == 6]
    assert len(epbs) == 2 * len(frames) == s["delivered"]
    by_iface = [sum(1 for b in epbs if struct.unpack_from("<I", b)[0] == i) for i in (0, 1)]
    assert by_iface == [len(frames)] * 2
    stamps = [struct.unpack_from("<II", b, 4) for b in epbs]
    assert stamps == sorted(stamps)
    isbs = [b for t, b in bl if t == 5]
    assert [struct.unpack_from("<I", b)[0] for b in isbs] == [0, 1]
    assert all(struct.unpack("<Q", options(b[12:])[4])[0] == len(frames) for b in isbs)
    assert all(struct.unpack("<Q", options(b[12:])[5])[0] == 0 for b in isbs)
    assert bl[-1][0] == 5 and bl[-2][0] == 5            # statistics at the end
    assert tcpdump("-r", str(out), "-n").count(b"\n") == 2 * len(frames)


def test_file_size_rotation_names_files_as_tcpdump(source, tmp_path):
    src, frames = source
    out = tmp_path / "r.pcap"
    r = wirecap("capture", "--traffic", str(src), "-w", str(out), "-C", "200k")
    assert r.returncode == 0, r.stderr.decode()
    names = sorted(os.listdir(tmp_path))
    rotated = ["r.pcap"] + [f"r.pcap{i}" for i in range(1, len(names) - 1)]
    assert sorted(rotated + ["in.pcap"]) == names and len(rotated) >= 3
    got = []
    for name in rotated:
        size = (tmp_path / name).stat().st_size
        recs = read_pcap(str(tmp_path / name))[1]
        if name != rotated[-1]:         # cut after the record that crossed 200 KiB
            assert size > 200 * 1024 >= size - 16 - len(recs[-1][1])
        got += [d for _, d, _ in recs]
    assert got == frames


def test_file_ring_with_W(source, tmp_path):
    src, frames = source
    out = tmp_path / "ring.pcap"
    r = wirecap("capture", "--traffic", str(src), "-w", str(out), "-C", "100k", "-W", "3",
                "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert sorted(os.listdir(tmp_path)) == ["in.pcap", "ring.pcap0", "ring.pcap1", "ring.pcap2"]
    kept = sum(len(read_pcap(str(tmp_path / f"ring.pcap{i}"))[1]) for i in range(3))
    assert 0 < kept < len(frames) == json.loads(r.stdout)["delivered"]


def test_time_rotation_stops_after_W_files(tmp_path):
    out = tmp_path / "t-%s.pcap"
    r = wirecap("capture", "--traffic", "count=1e9,rate=2000", "-w", str(out), "-G", "1",
                "-W", "2", "--json")
    assert r.returncode == 0, r.stderr.decode()
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2 and all(n.startswith("t-") and n[2:-5].isdigit() for n in names)
    assert sum(len(read_pcap(str(tmp_path / n))[1]) for n in names) == \
        json.loads(r.stdout)["delivered"] > 0


# ----------------------------------------------------------------------------- printing
@needs_tcpdump
@pytest.mark.parametrize("flags", [["-n"], ["-nn", "-e"], ["-n", "-v"], ["-nn", "-xx"],
                                   ["-X", "-n"], ["-A", "-n"], ["-q", "-n", "-tttt"],
                                   ["-tt", "--time-stamp-precision", "nano", "-n"]])
def test_r_prints_what_tcpdump_prints(tmp_path, flags):
    src = write(tmp_path / "zoo.pcap", zoo())
    mine = wirecap("capture", "-r", str(src), *flags)
    assert mine.returncode == 0, mine.stderr.decode()
    theirs = tcpdump("-r", str(src), *flags)
    assert mine.stdout == theirs and theirs.count(b"\n") >= len(zoo())
    assert b"ICMP echo request" in mine.stdout
    assert f"reading from file {src}".encode() in mine.stderr


@needs_tcpdump
@pytest.mark.parametrize("expr", ["tcp", "udp and port 5001", "greater 1000",
                                  "src net 198.18.0.0/16 and not tcp"])
@pytest.mark.parametrize("how", ["-r", "--traffic"])
def test_filter_agrees_with_tcpdump(source, tmp_path, expr, how):
    src, _ = source
    out = tmp_path / "f.pcap"
    r = wirecap("capture", how, str(src), "--time-stamp-precision", "nano", "-w", str(out),
                expr)
    assert r.returncode == 0, r.stderr.decode()
    want = tcpdump("--time-stamp-precision=nano", "-r", str(src), "-w", "-", expr)
    if how == "-r":                         # a file: its records, original time stamps
        assert out.read_bytes() == want
    else:                                   # the model: the same frames, stamped on capture
        assert records(out) == [d for _, d, _ in read_pcap_bytes(want, tmp_path)] != []


def write_pcapng(path, frames, gap_ns=50_000):
    from wirecap.dump import PcapngWriter
    with PcapngWriter(str(path), interface_name="eth9") as w:
        for i, f in enumerate(frames):
            w.write(T0 + i * gap_ns + i % 1000, f)
    return path


@needs_tcpdump
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("expr", [[], ["udp"], ["not ip"]])
def test_r_reads_pcap_and_pcapng_as_tcpdump(tmp_path, fmt, expr):
    frames = zoo() * 5
    src = write(tmp_path / "zoo.pcap", frames) if fmt == "pcap" else \
        write_pcapng(tmp_path / "zoo.pcapng", frames)
    mine = wirecap("capture", "-r", str(src), "-nn", "-tt", *expr)
    assert mine.returncode == 0, mine.stderr.decode()
    theirs = tcpdump("-r", str(src), "-nn", "-tt", *expr)
    assert mine.stdout == theirs and theirs.count(b"\n") >= 5
    out = tmp_path / "out.pcap"         # written: the records tcpdump writes from it
    assert wirecap("capture", "-r", str(src), "-w", str(out), *expr).returncode == 0
    assert out.read_bytes() == tcpdump("-r", str(src), "-w", "-", *expr)


def _max_rss_kib(argv, env):
    """The peak resident memory of ``argv``'s process, as the kernel counted it."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0, p.stderr.read().decode()
    return usage.ru_maxrss


def test_r_streams_a_large_file_in_bounded_memory(tmp_path):
    frame = ETH + b"\x08\x00" + _ipv4(17, struct.pack(">HHHH", 1, 2, 1408, 0) + bytes(1400))
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    write(small, [frame] * 100)
    with PcapWriter(str(big), nanosecond=True) as w:      # 250 MB: more than any slack
        for i in range(170_000):
            w.write(T0 + i * 1000, frame)
    env = dict(os.environ, PYTHONPATH=ROOT)
    rss = {}
    for name, f in (("small", small), ("big", big)):
        rss[name] = _max_rss_kib([sys.executable, "-m", "wirecap.cli", "capture", "-r", str(f),
                                  "-w", str(tmp_path / f"{name}-out.pcap"), "udp"], env)
    assert len(read_pcap(str(tmp_path / "big-out.pcap"))[1]) == 170_000
    # reading the file whole would add its 250 MB (twice: the file and its records)
    assert rss["big"] - rss["small"] < 64 * 1024, rss


def read_pcap_bytes(data, tmp_path):
    p = tmp_path / "want.pcap"
    p.write_bytes(data)
    return read_pcap(str(p))[1]


@needs_tcpdump
def test_live_lines_are_tcpdumps_lines(tmp_path):
    src = write(tmp_path / "zoo.pcap", zoo() * 3)
    out = tmp_path / "cap.pcap"
    assert wirecap("capture", "--traffic", str(src), "-w", str(out)).returncode == 0
    r = wirecap("capture", "--traffic", str(src), "-n", "-e", "-t")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == tcpdump("-r", str(out), "-n", "-e", "-t")
    err = r.stderr.decode()
    assert "listening on sim:0, link-type EN10MB (Ethernet), snapshot length 262144" in err
    assert "24 packets captured\n24 packets received by filter\n0 packets dropped by kernel" \
        in err


def test_plain_lines_without_tcpdump(tmp_path):
    src = write(tmp_path / "zoo.pcap", zoo())
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if not os.path.exists(os.path.join(d, "tcpdump")))
    r = wirecap("capture", "-r", str(src), env={"PATH": path})
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert len(lines) == len(zoo())
    assert "02:57:43:00:00:aa > 02:57:43:00:00:00, ethertype 0x0806, length 42" in lines[1]


def test_long_pauses_of_a_traffic_file_are_cut_and_the_summary_says_so(tmp_path):
    frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + bytes(50)
    src = write(tmp_path / "gap.pcap", [frame] * 3, gap_ns=3600 * 10**9)    # an hour apart
    r = wirecap("capture", "--traffic", str(src))
    assert r.returncode == 0 and "3 packets captured" in r.stderr.decode()
    assert "2 pauses of the --traffic file longer than 1 s were played as 1 s" in \
        r.stderr.decode()
    s = json.loads(wirecap("capture", "--traffic", str(src), "--json").stdout)
    assert (s["wire_sent"], s["wire_gaps_shortened"], s["wire_max_gap_s"]) == (3, 2, 1.0)


def test_count_stops_the_capture(source):
    src, _ = source
    r = wirecap("capture", "--traffic", str(src), "-c", "5", "-n")
    assert r.returncode == 0, r.stderr.decode()
    if TCPDUMP:
        lines = r.stdout.decode().splitlines()
        assert len(lines) == 5 and all(" IP 198.18." in ln for ln in lines)
    assert "5 packets captured" in r.stderr.decode()


def test_count_with_w_writes_exactly_count_records(source, tmp_path):
    src, frames = source
    out = tmp_path / "c.pcap"
    r = wirecap("capture", "--traffic", str(src), "-c", "7", "-w", str(out), "tcp")
    assert r.returncode == 0, r.stderr.decode()
    tcp = [f for f in frames if f[23] == 6]
    assert records(out) == tcp[:7]


def test_snaplen_zero_means_whole_packets(source, tmp_path):
    src, frames = source
    out = tmp_path / "s.pcap"
    assert wirecap("capture", "--traffic", str(src), "-s", "0", "-c", "50", "-w",
                   str(out)).returncode == 0
    assert records(out) == frames[:50]
    assert struct.unpack_from("<I", out.read_bytes(), 16)[0] == 262144


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, message", [
    (["udp and (port"], "syntax error"),
    (["-i", "pci:0000:03:00.0", "--traffic", "count=10"], "needs sim:N"),
    (["--traffic", "count=10,bogus=1"], "unknown key"),
    (["--traffic", "nosuchfile.pcap"], "no such file"),
    (["-c", "-1"], "-c -1: a packet count is 1 to"),
    (["-c", "0"], "-c 0: a packet count is 1 to"),
    (["-c", "99999999999999999999"], "-c 99999999999999999999"),
    (["-s", "-5"], "-s -5: the snapshot length"),
    (["-s", "300000"], "-s 300000: the snapshot length"),
    (["--segment", "-1"], "--segment -1: descriptors per segment is 8 to 1024"),
    (["--ndesc", "100000"], "--ndesc 100000: descriptors per ring is 64 to 8192"),
    (["--segment", "99999999999"], "--segment 99999999999"),
    (["--chunks", "-3"], "--chunks -3"),
    (["--chunks", "200000"], "--chunks 200000"),
    (["--queues", "0"], "--queues 0"),
    (["--duration", "nan"], "--duration nan"),
    (["--duration", "-1"], "--duration -1"),
    (["--threshold", "inf"], "--threshold inf"),
    (["-C", "0", "-w", "x"], "-C 0"),
    (["-C", "5"], "give -w FILE"),
    (["-W", "3", "-w", "x"], "-W 3: counts the files"),
    (["-B", "-1"], "-B -1"),
    (["-G", "0", "-w", "x"], "-G 0"),
    (["-Z", "no-such-user-here"], "no such user"),
    (["-F", "/nonexistent/filter"], "-F /nonexistent/filter: No such file"),
    (["-r", "/nonexistent.pcap"], "No such file"),
    (["-r", "x.pcap", "-i", "sim:0"], "-r reads a file: -i"),
    (["-Q", "in"], "-Q in: the 82599"),
    (["-i", "sim:0", "-i", "sim:0"], "-i sim:0: the same device as -i sim:0; name each"),
    (["-i", "lo", "-i", "afpacket:lo"], "-i afpacket:lo: the same device as -i lo"),
    (["-w", "/proc/version", "--traffic", "count=1"], "-w /proc/version"),
    (["--format", "pcapng", "-w", "/nonexistent-dir/x.pcap", "--traffic", "count=1"],
     "No such file"),
])
def test_bad_input_names_the_problem(args, message, tmp_path):
    r = wirecap("capture", *args, cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unknown_option_prints_captures_usage():
    r = wirecap("capture", "-K", "-i", "sim:0")
    err = r.stderr.decode()
    assert r.returncode == 2 and err.startswith("usage: wirecap capture") and "-K" in err


# ----------------------------------------------------------------------------- signals, -Z
def test_sigint_ends_a_capture_started_in_the_background(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, WIRECAP_RUN_DIR=str(tmp_path / "run"))
    # a non-interactive shell starts background jobs with SIGINT ignored
    sh = subprocess.Popen(["sh", "-c", f"{sys.executable} -m wirecap.cli capture --traffic "
                           f"count=1e9,rate=5000 --json & echo $!; wait"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    pid = int(sh.stdout.readline())
    try:
        _wait_published(tmp_path / "run", pid)
        os.kill(pid, signal.SIGINT)
        out, err = sh.communicate(timeout=60)
    finally:
        if sh.poll() is None:
            os.kill(pid, signal.SIGKILL)
            sh.wait()
    assert sh.returncode == 0, err.decode()
    assert json.loads(out)["delivered"] > 0
    assert os.listdir(tmp_path / "run") == []          # no stats file, no temp file left


def _wait_published(run, pid, timeout=60):
    """Until the capture has published stats that show packets delivered (a signal sent
    before the first delivery would leave nothing to check)."""
    end = time.monotonic() + timeout
    while not _delivered(run / f"capture-{pid}.json"):
        assert time.monotonic() < end, "the capture never published stats with packets"
        time.sleep(0.05)


def _delivered(path):
    try:
        text = path.read_text()
    except FileNotFoundError:
        return False
    return any(int(n) > 0 for n in re.findall(r'"packets": (\d+)', text))


@pytest.mark.skipif(os.geteuid() != 0, reason="-Z changes the user: needs root")
def test_Z_drops_to_the_user_and_every_capability():
    import pathlib
    import tempfile
    nobody = pwd.getpwnam("nobody")
    home = pathlib.Path(tempfile.mkdtemp(prefix="wirecap-Z-", dir="/tmp"))  # pytest's is 0700
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    out = home / "z.pcap"
    run = home / "run"
    env = dict(os.environ, PYTHONPATH=ROOT, WIRECAP_RUN_DIR=str(run))
    p = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "-Z", "nobody",
                          "--traffic", "count=1e9,rate=5000", "-U", "-w", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        end = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 24) and p.poll() is None:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()[1].decode()
        with open(f"/proc/{p.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        owner, kept = out.stat().st_uid, len(records(out))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(home)
    assert p.returncode == 0, err.decode()
    assert status["Uid"].split() == [str(nobody.pw_uid)] * 4
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
    assert owner == nobody.pw_uid and kept > 0


# ----------------------------------------------------------------------------- live stats
def test_stats_shows_a_running_capture_then_forgets_it(tmp_path):
    env = {"WIRECAP_RUN_DIR": str(tmp_path / "run")}
    none = wirecap("stats", "--json", env=env)
    assert none.returncode == 2 and "no running capture" in none.stderr.decode()
    e = dict(os.environ, PYTHONPATH=ROOT, **env)
    cap = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "--queues", "2",
                            "--traffic", "count=100000000,rate=20000,flows=8", "--json",
                            "--duration", "60"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e)
    try:
        deadline = time.monotonic() + 60
        while True:
            r = wirecap("stats", "--json", env=env)
            if r.returncode == 0:
                doc = json.loads(r.stdout)
                (pid, snap), = doc.items()
                if snap["totals"]["packets"] > 0:
                    break
            assert time.monotonic() < deadline, "the capture never published its stats"
            time.sleep(0.3)
        assert int(pid) == cap.pid
        assert [q["queue"] for q in snap["queues"]] == [0, 1]
        assert {"packets", "nic_dropped", "capture_queue_peak", "free", "armed",
                "captured", "offloaded_in"} <= set(snap["queues"][0])
        table = wirecap("stats", "--once", env=env).stdout.decode()
        assert f"capture pid {cap.pid}" in table and "capture_queue" in table
        assert stat_mode(tmp_path / "run") == 0o700
    finally:
        cap.send_signal(signal.SIGTERM)
        out, err = cap.communicate(timeout=60)
    assert cap.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["captured"] >= summary["delivered"] > 0
    assert wirecap("stats", env=env).returncode == 2      # its stats file is gone


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


def test_a_stats_directory_others_can_write_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o777)
    os.chmod(run, 0o777)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, run / "capture-1.json.tmp")
    r = wirecap("capture", "--traffic", "count=100", "--json", env={"WIRECAP_RUN_DIR": str(run)})
    assert r.returncode == 0, r.stderr.decode()
    assert "mode 777: it must be yours with mode 700" in r.stderr.decode()
    assert victim.read_text() == "precious"
    s = wirecap("stats", "--json", env={"WIRECAP_RUN_DIR": str(run)})
    assert s.returncode == 2 and "chmod 700" in s.stderr.decode()


def test_stats_skips_planted_entries(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    me = os.getpid()            # alive, so its entries are read rather than cleaned up
    (run / f"capture-{me}.json").write_text('{"t": "soon", "queues": 5}')
    (run / "capture-abc.json").write_text("{}")
    (run / "capture-1.json").symlink_to("/etc/passwd")
    (run / "capture-2.json").mkdir()
    env = {"WIRECAP_RUN_DIR": str(run)}
    for args in (["--json"], ["--once"]):
        r = wirecap("stats", *args, env=env)
        assert r.returncode == 2 and "no running capture" in r.stderr.decode(), r.stderr
        assert "Traceback" not in r.stderr.decode()


# ----------------------------------------------------------------------------- AF_PACKET
@pytest.fixture
def net():
    from wirecap.afpacket import veth
    why = veth.missing()
    if why:
        pytest.skip(why)
    with veth.VethPair() as pair:
        yield pair


def _kill(*procs):
    """Whatever is still running when a test ends (a failed assertion) goes."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _until_listening(p, timeout=60):
    """Read p's stderr up to its "listening on" line (tcpdump's and ours)."""
    end = time.monotonic() + timeout
    seen = b""
    while b"listening on" not in seen:
        assert time.monotonic() < end and p.poll() is None, seen.decode()
        seen += p.stderr.readline()
    return seen


@needs_tcpdump
@pytest.mark.parametrize("flags", [["-n", "-e"], ["-nn", "-v", "-x"]])
def test_afpacket_lines_equal_tcpdumps_on_the_same_traffic(net, tmp_path, flags):
    # no VLAN frame: the kernel moves the tag out of the frame, and only libpcap puts it back
    frames = [net.mac + f[6:] for f in zoo() if f[12:14] != b"\x81\x00"] * 4
    sent = write(tmp_path / "sent.pcap", frames)
    n = str(len(frames))
    env = dict(os.environ, PYTHONPATH=ROOT, WIRECAP_RUN_DIR=str(tmp_path / "run"))
    ours = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "-i",
                             f"afpacket:{net.capture}", "-c", n, "-t", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    theirs = subprocess.Popen([TCPDUMP, "-i", net.capture, "-c", n, "-t", *flags],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _until_listening(ours)
        _until_listening(theirs)
        assert net.replay(sent) == len(frames)
        out, err = ours.communicate(timeout=60)
        want, _ = theirs.communicate(timeout=60)
    finally:
        _kill(ours, theirs)
    assert ours.returncode == 0, err.decode()
    assert out == want and out.count(b"\n") >= len(frames)
    assert f"{n} packets captured".encode() in err


def test_afpacket_w_keeps_every_frame_and_its_wire_length(net, tmp_path):
    # nor fragments: a hash fanout group reassembles them before it picks a queue
    frames = [net.mac + f[6:] for f in zoo() if f[12:14] != b"\x81\x00" and
              not (f[12:14] == b"\x08\x00" and f[20:22] != b"\0\0")] * 10
    sent = write(tmp_path / "sent.pcap", frames)
    out = tmp_path / "cut.pcapng"
    env = dict(os.environ, PYTHONPATH=ROOT, WIRECAP_RUN_DIR=str(tmp_path / "run"))
    p = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "-i",
                          f"afpacket:{net.capture}", "-c", str(len(frames)), "-s", "50",
                          "-w", str(out), "--format", "pcapng", "--queues", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        _until_listening(p)
        assert net.replay(sent) == len(frames)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err.decode()
    epbs = [b for t, b in blocks(out.read_bytes()) if t == 6]
    got = sorted((bytes(b[20:20 + struct.unpack_from("<I", b, 12)[0]]),
                  struct.unpack_from("<I", b, 16)[0]) for b in epbs)
    assert got == sorted((f[:50], len(f)) for f in frames)


@pytest.mark.parametrize("direction", ["in", "out", "inout"])
def test_Q_chooses_the_direction_on_afpacket(net, tmp_path, direction):
    import socket
    inbound = [net.mac + f[6:] for f in zoo()[:1]] * 20             # ICMP from the peer
    outbound = [bytes(6) + net.mac + f[12:] for f in zoo()[6:7]] * 30     # TCP we send
    want = {"in": inbound, "out": outbound, "inout": inbound + outbound}[direction]
    out = tmp_path / "q.pcap"
    env = dict(os.environ, PYTHONPATH=ROOT, WIRECAP_RUN_DIR=str(tmp_path / "run"))
    p = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "-i",
                          f"afpacket:{net.capture}", "-Q", direction, "-c", str(len(want)),
                          "-w", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        _until_listening(p)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((net.capture, 0))
            for f in outbound:
                s.send(f)
        assert net.replay(write(tmp_path / "in.pcap", inbound)) == len(inbound)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err.decode()
    assert sorted(records(out)) == sorted(want)


def test_Q_out_is_refused_on_the_model_in_one_line():
    r = wirecap("capture", "-i", "sim:0", "-Q", "out", "-c", "1")
    err = r.stderr.decode()
    assert r.returncode == 2 and "only receives" in err and err.count("\n") == 1, err


def _in_netns(net, argv):
    return ["ip", "netns", "exec", net.ns, *argv]


@needs_tcpdump
@pytest.mark.parametrize("y", [[], ["-y", "LINUX_SLL"]])
def test_any_records_equal_tcpdumps_on_the_same_traffic(net, tmp_path, y):
    # both capture on every interface of the sender's namespace, where nothing else talks:
    # what tcpreplay sends there goes out, what the other end sends comes in
    import socket
    frames = [net.mac + f[6:] for f in zoo() if f[12:14] != b"\x81\x00"] * 3
    back = [bytes(6) + net.mac + f[12:] for f in frames]
    n = str(len(frames) + len(back))
    env = dict(os.environ, PYTHONPATH=ROOT, WIRECAP_RUN_DIR=str(tmp_path / "run"))
    ours_file, theirs_file = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    ours = subprocess.Popen(_in_netns(net, [sys.executable, "-m", "wirecap.cli", "capture",
                                            "-i", "any", "-c", n, *y, "-w", str(ours_file)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    theirs = subprocess.Popen(_in_netns(net, [TCPDUMP, "-i", "any", "-c", n, *y, "-w",
                                              str(theirs_file)]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _until_listening(ours)
        _until_listening(theirs)
        assert net.replay(write(tmp_path / "sent.pcap", frames)) == len(frames)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((net.capture, 0))
            for f in back:
                s.send(f)
        _, err = ours.communicate(timeout=60)
        theirs.communicate(timeout=60)
    finally:
        _kill(ours, theirs)
    assert ours.returncode == 0, err.decode()
    mine, want = read_pcap(str(ours_file)), read_pcap(str(theirs_file))
    assert mine[0] == want[0] == (113 if y else 276)
    assert [r[1:] for r in mine[1]] == [r[1:] for r in want[1]]    # bytes and wire lengths
    lines = tcpdump("-r", str(ours_file), "-n", "-e", "-t")
    assert lines == tcpdump("-r", str(theirs_file), "-n", "-e", "-t")
    directions = [next(w for w in ln.split()[:2] if w in ("In", "Out", "P", "B", "M"))
                  for ln in lines.decode().splitlines()]   # LINUX_SLL2 names the interface first
    # our frames back are for no one's MAC: "P", the kernel's PACKET_OTHERHOST
    assert sorted(directions) == sorted(["Out"] * len(frames) + ["P"] * len(back))


@needs_tcpdump
@pytest.mark.parametrize("device", ["any", "lo"])
def test_L_lists_link_types_as_tcpdump(device):
    r = wirecap("capture", "-L", "-i", device)
    want = subprocess.run([TCPDUMP, "-L", "-i", device], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stderr == want.stderr and r.stdout == b"", r.stderr


def test_L_on_the_model_is_ethernet():
    r = wirecap("capture", "-L", "-i", "sim:0")
    assert r.returncode == 0 and r.stderr.decode().splitlines() == [
        "Data link types for sim:0 (use option -y to set):", "  EN10MB (Ethernet)"]


@pytest.mark.parametrize("args, message", [
    (["-y", "LINUX_SLL", "-i", "sim:0"], "sim:0 does not hand it out; it takes EN10MB"),
    (["-y", "NOSUCHTYPE"], "not a link type libpcap knows"),
    (["-i", "any", "-i", "sim:0"], "different link types"),
])
def test_y_refuses_what_the_devices_do_not_hand_out(args, message):
    r = wirecap("capture", *args, "-c", "1")
    err = r.stderr.decode()
    assert r.returncode == 2 and message in err and err.count("\n") == 1, err


def test_D_lists_interfaces_and_the_model():
    r = wirecap("capture", "-D")
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("1.") and any(".lo (" in ln and "Loopback" in ln for ln in lines)
    assert lines[-1].startswith(f"{len(lines)}.sim:0 (")
