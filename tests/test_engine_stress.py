"""The engine under random start/stop/close/release/forward interleavings (tests/engine_stress.py),
in a subprocess so that a hang fails by timeout. A few seconds by default; `--soak SECONDS`
runs each variant that long."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


@pytest.mark.parametrize("threads", [1, 0])
def test_random_interleavings_keep_every_chunk_and_frame_accounted(threads, request):
    seconds = request.config.getoption("--soak") or 3.0
    r = subprocess.run([sys.executable, os.path.join(HERE, "engine_stress.py"), "--seconds",
                        str(seconds), "--threads", str(threads)], capture_output=True,
                       text=True, timeout=seconds + 300)
    assert r.returncode == 0, r.stderr[-3000:]
    totals = json.loads(r.stdout.strip().splitlines()[-1])
    assert totals["rounds"] >= 1 and totals["stops"] >= 1
    assert totals["frames"] == totals["delivered"] + totals["discarded"] + totals["dropped"]
