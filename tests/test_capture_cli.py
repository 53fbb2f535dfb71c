"""`wirecap capture` and `wirecap stats` as a user runs them, checked with real tcpdump."""
import json
import os
import shutil
import signal
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


def wirecap(*args, env=None, **kw):
    e = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, "-m", "wirecap.cli", *args], capture_output=True,
                          env=e, timeout=120, **kw)


@pytest.fixture
def source(tmp_path):
    """A mixed UDP/TCP pcap, 50 µs apart: slow enough that the ring never runs dry."""
    mac = bytes.fromhex("025743000000")
    frames = []
    for proto, n in (("udp", 900), ("tcp", 600)):
        p = TrafficProfile(count=n, sizes=(64, 128, 1518), flows=7, proto=proto, seed=3)
        frames += [p.frame(i, mac) for i in range(n)]
    frames = frames[::2] + frames[1::2]             # interleave the protocols
    path = tmp_path / "in.pcap"
    with PcapWriter(str(path)) as w:
        for i, f in enumerate(frames):
            w.write(1_700_000_000_000_000_000 + i * 50_000, f)
    return path, frames


def tcpdump(*args):
    r = subprocess.run([TCPDUMP, "-n", *args], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def records(path):
    return [d for _, d, _ in read_pcap(str(path))[1]]


@needs_tcpdump
@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns"])
def test_capture_w_is_read_by_tcpdump_with_identical_bytes(source, tmp_path, fmt):
    src, frames = source
    out = tmp_path / "out.pcap"
    r = wirecap("capture", "-i", "sim:0", "--traffic", str(src), "-w", str(out), "--format",
                fmt, "--json", "-q")
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


@needs_tcpdump
@pytest.mark.parametrize("expr", ["tcp", "udp and port 5001", "greater 1000",
                                  "src net 198.18.0.0/16 and not tcp"])
def test_capture_filter_agrees_with_tcpdump(source, tmp_path, expr):
    src, frames = source
    out = tmp_path / "f.pcap"
    r = wirecap("capture", "--traffic", str(src), "-w", str(out), "-q", expr)
    assert r.returncode == 0, r.stderr.decode()
    want = tcpdump("-r", str(src), "-w", "-", expr)
    assert len(records(out)) == len(tcpdump("-r", str(src), expr).splitlines()) > 0
    assert records(out) == [d for _, d, _ in read_pcap_bytes(want, tmp_path)]


def read_pcap_bytes(data, tmp_path):
    p = tmp_path / "want.pcap"
    p.write_bytes(data)
    return read_pcap(str(p))[1]


def test_count_stops_the_capture_and_lines_look_like_tcpdumps(source):
    src, _ = source
    r = wirecap("capture", "--traffic", str(src), "-c", "5", "-q")
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 5 and all(" IP 198.18." in ln and "> 198.19.0.1.5001" in ln
                                   for ln in lines)
    assert "5 packets shown" in r.stderr.decode()


@pytest.mark.parametrize("args, message", [
    (["udp and (port"], "syntax error"),
    (["-i", "pci:0000:03:00.0", "--traffic", "count=10"], "needs sim:N"),
    (["--traffic", "count=10,bogus=1"], "unknown key"),
    (["-c", "-1"], "packet count"),
    (["--format", "pcapng", "-w", "/nonexistent-dir/x.pcap", "--traffic", "count=1"],
     "No such file"),
])
def test_bad_input_names_the_problem(args, message, tmp_path):
    r = wirecap("capture", *args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr.decode(), r.stderr.decode()


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
    finally:
        cap.send_signal(signal.SIGTERM)
        out, err = cap.communicate(timeout=60)
    assert cap.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["captured"] >= summary["delivered"] > 0
    assert wirecap("stats", env=env).returncode == 2      # its stats file is gone


def test_count_with_w_writes_exactly_count_records(source, tmp_path):
    src, frames = source
    out = tmp_path / "c.pcap"
    r = wirecap("capture", "--traffic", str(src), "-c", "7", "-w", str(out), "-q", "tcp")
    assert r.returncode == 0, r.stderr.decode()
    tcp = [f for f in frames if f[23] == 6]
    assert records(out) == tcp[:7]
