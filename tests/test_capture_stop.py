"""`wirecap capture` stopped mid-traffic (^C, SIGTERM, --duration, -c) as a user stops it: the
--json summary accounts for every frame the wire sent, exactly, in every run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from wirecap.dump import PcapWriter, read_pcap
from wirecap.sim import TrafficProfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNT = 10_000_000                  # at 1 Mpps the wire is still playing when we stop
TRAFFIC = f"count={COUNT:.0e},rate=1e6,flows=8"


def capture(tmp_path, *args, sig=None, after=0.3):
    """Run the CLI with ``args``; with ``sig``, deliver it ``after`` seconds of traffic.
    Returns the --json summary."""
    env = dict(os.environ, PYTHONPATH=ROOT, WIRECAP_RUN_DIR=str(tmp_path / "run"))
    p = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "-i", "sim:0",
                          "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, text=True)
    try:
        if sig is not None:
            while "listening on" not in (line := p.stderr.readline()):  # started: traffic on
                assert line, "the capture ended before it listened"
            time.sleep(after)
            p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return json.loads(out)


def assert_balanced(s):
    # each frame the wire sent was read, taken back unread at the stop, or dropped somewhere
    assert s["dropped"] == s["nic_dropped"] + s["buffer_dropped"] + s["mac_dropped"]
    assert s["captured"] == s["seen"] + s["discarded_at_stop"]
    assert s["wire_sent"] == s["seen"] + s["discarded_at_stop"] + s["dropped"]
    assert s["received_by_filter"] == s["seen"] + s["dropped"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("how", [(), ("--inline", "--queues", "2"),
                                 ("--queues", "3", "--mode", "advanced", "--chunks", "8")])
def test_a_signal_during_traffic_leaves_no_frame_unaccounted(tmp_path, sig, how):
    s = capture(tmp_path, "--traffic", TRAFFIC, *how, sig=sig, after=0.2 + 0.1 * len(how))
    assert 0 < s["wire_sent"] < COUNT           # stopped while the wire was playing
    assert_balanced(s)


@pytest.mark.parametrize("how", [(), ("--queues", "2", "--inline")])
def test_duration_ends_mid_traffic_with_every_frame_accounted(tmp_path, how):
    for _ in range(2):
        s = capture(tmp_path, "--traffic", TRAFFIC, "--duration", "0.4", *how)
        assert 0 < s["wire_sent"] < COUNT
        assert_balanced(s)


def test_count_stops_mid_traffic_and_the_rest_is_accounted(tmp_path):
    s = capture(tmp_path, "--traffic", TRAFFIC, "-c", "5000")
    assert s["delivered"] == 5000 and s["seen"] >= 5000
    assert_balanced(s)


def test_a_file_written_until_sigint_holds_what_the_summary_says(tmp_path):
    out = tmp_path / "cap.pcap"
    s = capture(tmp_path, "--traffic", TRAFFIC, "-w", str(out), sig=signal.SIGINT, after=0.3)
    assert_balanced(s)
    assert len(list(read_pcap(str(out))[1])) == s["delivered"] == s["seen"]


def test_mac_drops_are_in_the_summary_and_its_balance(tmp_path):
    # 9018-byte frames on the default 2 KiB buffers: the MAC's limit stays 1518 bytes
    s = capture(tmp_path, "--traffic", "count=100000,size=9018")
    assert (s["wire_sent"], s["mac_dropped"], s["captured"]) == (100_000, 100_000, 0)
    assert_balanced(s)
    p = TrafficProfile(count=20_000, sizes=(64, 1519, 9018), flows=4, rate=200_000)
    s = capture(tmp_path, "--traffic", "count=20000,sizes=64:1519:9018,flows=4,rate=2e5",
                "--queues", "2", sig=signal.SIGTERM, after=0.05)
    mac = bytes.fromhex("025743000000")
    sent_long = sum(len(p.frame(i, mac)) + 4 > 1518 for i in range(s["wire_sent"]))
    assert s["mac_dropped"] == sent_long > 0
    assert_balanced(s)


def test_a_pcap_with_frames_over_1518_bytes_balances(tmp_path):
    src = tmp_path / "long.pcap"
    lengths = [60, 1514, 1515, 2000, 9014, 100]      # without FCS: 1515 and up are too long
    with PcapWriter(str(src), nanosecond=True, snaplen=16384) as w:
        for i, n in enumerate(lengths):
            w.write(i * 10_000, b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + bytes(n - 14))
    s = capture(tmp_path, "--traffic", str(src))
    assert (s["wire_sent"], s["seen"], s["mac_dropped"]) == (6, 3, 3)
    assert_balanced(s)
