"""`wirecap demo` and `wirecap bench model` as a user runs them."""
import json
import subprocess
import sys

from wirecap.cli import main


def test_demo_accounts_for_every_frame(capsys):
    assert main(["demo", "--traffic", "count=20000,rate=2e5,flows=8", "--queues", "2"]) == 0
    out = capsys.readouterr().out
    assert "sent 20,000 = read by this demo" in out and "every frame accounted for" in out
    assert "capture_queue_peak" in out and out.count("sim:0") >= 3   # the per-queue table


def test_demo_rejects_bad_input(capsys):
    assert main(["demo", "--traffic", "count=10,rate=9e9"]) == 2
    err = capsys.readouterr().err
    assert "rate=9000000000.0 is invalid" in err and "14,880,952" in err
    assert main(["demo", "--queues", "17"]) == 2
    assert "1 to 16 queues" in capsys.readouterr().err


def test_bench_model_json(capsys):
    assert main(["bench", "model", "--frames", "20000", "--repeats", "2", "--queues", "1,4",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["queues"] for r in result["results"]] == [1, 4]
    for r in result["results"]:
        s = r["pps"]
        assert s["n"] == 2 and 0 < s["min"] <= s["median"] <= s["max"]
        assert r["vs_line_rate"] == s["median"] / result["line_rate_pps"]
    assert result["machine"]["cores"] >= 1


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "wirecap.cli", "bench", "model", "--queues", "0"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "RSS queue counts from 1 to 16" in out.stderr


def test_bench_pmd_json(capsys):
    assert main(["bench", "pmd", "--segments", "64,256", "--rounds", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    paths = [(r["path"], r["segment"]) for r in result["results"]]
    assert paths == [("capture+recycle", 64), ("capture+recycle", 256), ("forward", 256)]
    for r in result["results"]:
        s = r["ns_per_packet"]
        assert s["n"] == 3 and 0 < s["min"] <= s["median"] <= s["max"]
    mem = result["results"][0]["memory"]
    assert mem["metadata_per_buffer"] <= 32 and mem["pool"] == 65 * 64 * 2048
