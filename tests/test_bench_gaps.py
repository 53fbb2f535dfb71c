"""`wirecap bench gaps`: the probe of how long the machine takes a polling CPU away."""
import json
import os

import pytest

from wirecap.bench import _gaps
from wirecap.cli import main


def test_the_probe_counts_each_gap_in_every_bucket_it_exceeds():
    counts, longest, lost, ran = _gaps.spin(0.05)
    assert ran >= 50_000_000 and len(counts) == len(_gaps.LIMITS_US)
    assert all(a >= b for a, b in zip(counts, counts[1:]))     # > 20 us includes > 50 us ...
    assert (longest > _gaps.LIMITS_US[0] * 1000) == (counts[0] > 0)
    assert lost >= longest and lost <= ran


def test_a_cpu_shared_with_another_poller_shows_as_gaps():
    # the loop cannot be made to sleep from outside; a CPU shared with a busy sibling can: two
    # probes on one CPU take it from each other in slices far longer than 20 us
    import threading
    cpu = sorted(os.sched_getaffinity(0))[0]
    out = []

    def busy():
        os.sched_setaffinity(0, {cpu})
        out.append(_gaps.spin(0.3))

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(counts[0] > 0 and longest > 20_000 for counts, longest, _, _ in out)


def test_bench_gaps_json(capsys):
    cpu = sorted(os.sched_getaffinity(0))[0]
    assert main(["bench", "gaps", "--seconds", "0.05", "--cpus", str(cpu), "--rt-priority",
                 "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["rows"]
    assert row["cpu"] == cpu and row["policy"] == "SCHED_OTHER" and row["seconds"] >= 0.05
    assert set(row["gaps"]) == {str(k) for k in _gaps.LIMITS_US} and 0 <= row["lost"] <= 1
    assert os.sched_getscheduler(0) == os.SCHED_OTHER           # the caller's, given back


@pytest.mark.parametrize("argv,match", [
    (["--seconds", "0"], "--seconds 0"),
    (["--cpus", "4096"], "not a CPU this process may use"),
    (["--rt-priority", "100", "--cpus", "0"], "SCHED_FIFO priority from 1 to"),
])
def test_bench_gaps_misuse_is_refused(capsys, argv, match):
    assert main(["bench", "gaps", *argv]) == 2
    assert match in capsys.readouterr().err
