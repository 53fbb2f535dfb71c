"""`wirecap capture`'s placement options: --capture-cpus (capture threads that serve several
queues) and --wire-thread (the model's real-time wire instead of the driver's clock)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wirecap(*args):
    return subprocess.run([sys.executable, "-m", "wirecap.cli", *args], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)


def summary(*args):
    p = wirecap("capture", "-i", "sim:0", "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def conserved(s):
    # every frame the wire sent is delivered, taken back at stop or counted dropped
    return s["wire_sent"] == s["delivered"] + s["discarded_at_stop"] + s["dropped"]


@pytest.mark.parametrize("value, says", [
    ("x", "a list of CPU numbers"), ("0,0", "CPU listed twice"), ("1-0", "a list of CPU"),
    ("-1", "a list of CPU"), ("4096", "a list of CPU"), ("0,1,2,3,4", "capture threads for"),
])
def test_capture_cpus_refuses_bad_lists_in_one_line(value, says):
    p = wirecap("capture", "-i", "sim:0", "--queues", "4", "--capture-cpus=" + value,
                "--traffic", "count=10", "--json")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in p.stderr


def test_capture_cpus_and_inline_exclude_each_other():
    p = wirecap("capture", "-i", "sim:0", "--inline", "--capture-cpus", "0",
                "--traffic", "count=10")
    assert p.returncode == 2 and "--inline" in p.stderr


def test_one_capture_thread_serves_four_queues_and_accounts_for_every_frame():
    cpu = str(max(os.sched_getaffinity(0)))
    s = summary("--queues", "4", "--capture-cpus", cpu,
                "--traffic", "count=200000,size=64,flows=64,rate=2e6")
    assert s["wire_sent"] == 200_000 and conserved(s)
    assert sum(q["packets"] > 0 for q in s["per_queue"]) == 4     # RSS spread, one thread


def test_wire_thread_plays_the_same_traffic_and_accounts_for_every_frame():
    s = summary("--wire-thread", "--traffic", "count=50000,size=64,rate=1e6")
    assert s["wire_sent"] == 50_000 and conserved(s)


def test_wire_thread_needs_traffic():
    p = wirecap("capture", "-i", "sim:0", "--wire-thread", "-c", "1")
    assert p.returncode == 2 and "--traffic" in p.stderr


@pytest.mark.parametrize("args, says", [(["--rt-priority", "0"], "from 1 to"),
                                        (["--rt-priority", "5", "--inline"], "--inline")])
def test_rt_priority_refuses_what_cannot_be_in_one_line(args, says):
    p = wirecap("capture", "-i", "sim:0", *args, "--traffic", "count=10", "--json")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in p.stderr


@pytest.mark.skipif(os.geteuid() != 0 or len(os.sched_getaffinity(0)) < 2,
                    reason="SCHED_FIFO needs root and a CPU left to the application")
def test_rt_priority_captures_and_accounts_for_every_frame():
    s = summary("--rt-priority", "5", "--queues", "4",
                "--traffic", "count=200000,size=64,flows=64,rate=2e6")
    assert s["wire_sent"] == 200_000 and conserved(s)
