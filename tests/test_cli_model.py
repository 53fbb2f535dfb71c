"""`wirecap bench model` as a user runs it (the demo's tests are in test_paper.py)."""
import json
import subprocess
import sys

from wirecap.cli import main


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
    assert mem["metadata_per_buffer"] <= 32 and mem["pool"] == 65 * 64 * (2048 + 64)
