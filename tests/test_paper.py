"""The paper's tools and experiments (``wirecap bench handler|paper``) in reduced form."""
import json

import pytest

from wirecap import sim
from wirecap.bench import _handler, handler, paper
from wirecap.cli import main
from wirecap.engine import Engine
from wirecap.sim import TrafficProfile


pytestmark = pytest.mark.usefixtures("fresh_model")


def fnv1a(data, h):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def bench(capsys, *argv):
    assert main(["bench", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def check_accounting(run):
    assert run["accounted"]
    assert run["sent"] == run["processed"] + run["buffered"] + run["dropped"]
    assert run["drop_rate"] == run["dropped"] / run["sent"]


# ----------------------------------------------------------------------------- pkt_handler
def test_handler_does_x_units_of_fnv1a_per_packet():
    with Engine("sim:0", queues=1, ndesc=128, segment=16, chunks=12, flush_us=0) as eng:
        p = TrafficProfile(count=16, flows=3)
        eng.nics[0].port.wire.send(p)
        c = eng.next_chunk(0, timeout=2)
        frames = [bytes(x) for x in c]
        w = _handler.Worker(3)
        assert w.process(c) == len(c) == 16
        c.release()
    h = 0xCBF29CE484222325
    for f in frames:
        for _ in range(3):
            h = fnv1a(f, h)
    assert w.digest == h and w.processed == 16 and w.chunks == 1


def test_a_stopped_handler_leaves_the_chunk_unprocessed():
    with Engine("sim:0", queues=1, ndesc=128, segment=16, chunks=12, flush_us=0) as eng:
        eng.nics[0].port.wire.send(TrafficProfile(count=16))
        c = eng.next_chunk(0, timeout=2)
        w = _handler.Worker(1)
        w.stop()
        assert w.process(c) == 0 and w.processed == 0
        c.release()


def test_multi_pkt_handler_processes_every_delivered_packet():
    with Engine("sim:0", queues=4, ndesc=256, segment=32, chunks=64, flush_us=100) as eng:
        hs = handler.multi_pkt_handler(eng, x=2)
        assert [h.queue for h in hs] == [0, 1, 2, 3]
        eng.nics[0].port.wire.send(TrafficProfile(count=4000, flows=32))
        _, _, dropped, delivered, exact = paper.settle(eng, hs)
        assert exact and delivered + dropped == 4000
        st = eng.stats()
        for h, s in zip(hs, st):            # basic mode: each handler read its own queue only
            assert set(h.by_owner) <= {h.queue}
    with pytest.raises(Exception, match="one load or one per queue"):
        with Engine("sim:0", queues=2) as eng:
            handler.multi_pkt_handler(eng, x=[1, 2, 3])


def test_bench_handler_json(capsys):
    r = bench(capsys, "handler", "--x", "20", "--queues", "2", "--seconds", "0.2",
              "--repeats", "2", "--rate", "2e5")
    assert [q["queue"] for q in r["results"]] == [0, 1] and r["x"] == 20
    for q in r["results"]:
        assert len(q["processed"]) == 2
        s = q["pp_pps"]
        assert s is None or 0 < s["min"] <= s["median"] <= s["max"]
    assert 0 < r["unit_ns"]["min"] <= r["unit_ns"]["max"]


# ----------------------------------------------------------------------------- figures
def test_figure9_reduced_shows_the_pool_absorbing_the_burst(capsys, tmp_path):
    png = tmp_path / "fig9.png"
    r = bench(capsys, "paper", "--figure", "9", "--p", "1000,40000", "--rate", "1e6",
              "--png", str(png))
    assert r["figure"] == "9" and r["ndesc"] == 1024 and r["frame_size"] == 64
    assert [c["label"] for c in r["configs"]] == ["WireCAP-B-(256,100)", "WireCAP-B-(256,500)",
                                                  "ring-only (64,17)"]
    assert r["x"] > 0 and r["x_probe"]["x"] > 0
    assert r["pp_target_pps"] == pytest.approx(1e6 * 38844 / 14_880_000)
    for c in r["configs"]:
        assert [run["P"] for run in c["runs"]] == [1000, 40000]
        assert c["capacity"] == c["M"] * c["R"]
        assert c["loss_free_bound"] >= c["capacity"] and c["pp_pps"]["median"] > 0
        assert [d["P"] for d in c["drop_rate"]] == [1000, 40000]
        for run, d in zip(c["runs"], c["drop_rate"]):
            check_accounting(run)
            assert run["sent"] == run["P"] and run["pp_pps"] >= 0
            assert d["n"] == 1 and d["median"] == run["drop_rate"]
            # a pool never holds more than R*M: what it could not hold was processed or dropped
            assert run["buffered"] <= c["capacity"]
    by = {c["label"]: c["runs"] for c in r["configs"]}
    assert by["WireCAP-B-(256,500)"][1]["dropped"] == 0            # 40,000 < R*M = 128,000
    ring = by["ring-only (64,17)"][1]
    assert ring["dropped"] >= 40000 - 1088 - ring["processed"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure10_equal_capacity_gives_equal_drop_rates(capsys):
    r = bench(capsys, "paper", "--figure", "10", "--p", "50000", "--rate", "1e6", "--x", "2000")
    assert [(c["M"], c["R"]) for c in r["configs"]] == [(64, 400), (128, 200), (256, 100)]
    rates = []
    for c in r["configs"]:
        run = c["runs"][0]
        check_accounting(run)
        # everything beyond the pool (R*M = 25,600) is dropped but what the handler got done
        assert run["dropped"] >= 50000 - 25600 - run["processed"]
        rates.append(run["drop_rate"])
    assert max(rates) - min(rates) < 0.03


def test_figure8_structure_without_load(capsys):
    r = bench(capsys, "paper", "--figure", "8", "--p", "1000,5000", "--rate", "1e6",
              "--repeats", "2")
    assert r["x"] == 0 and r["pp_target_pps"] is None and r["paper"]["x"] == 0
    assert len(r["configs"]) == 5 and r["configs"][-1]["ring_only"] and r["repeats"] == 2
    for c in r["configs"]:
        assert c["loss_free_bound"] is None and c["pp_pps"] is None
        assert [(run["P"], run["repeat"]) for run in c["runs"]] == \
            [(1000, 0), (1000, 1), (5000, 0), (5000, 1)]
        for run in c["runs"]:
            check_accounting(run)
        for d, pair in zip(c["drop_rate"], (c["runs"][:2], c["runs"][2:])):
            assert d["n"] == 2 and d["min"] == min(run["drop_rate"] for run in pair)
    assert "WireCAP-B-(256,500)" in paper.text(r)


def test_imbalance_basic_drops_advanced_offloads():
    spec = dict(paper.IMBALANCE, modes=[("basic", None), ("advanced", 0.5)])
    r = paper.imbalance(seconds=1.5, progress=False, spec=spec)
    basic, adv = r["runs"]
    for run in r["runs"]:
        check_accounting(run)
        qs = run["queues"]
        assert qs[0]["packets"] > 0.8 * run["sent"]            # queue 0 gets most flows
        assert sum(q["offloaded_in"] for q in qs) == sum(q["offloaded_out"] for q in qs)
    # queue 0 receives 1.5x what its handler is allowed to process, for longer than its pool
    # of 4,096 lasts: basic mode must drop there; advanced mode hands chunks to the buddies
    assert basic["queues"][0]["dropped"] > 0 and basic["queues"][0]["offloaded_out"] == 0
    assert adv["queues"][0]["offloaded_out"] > 0
    assert adv["dropped"] < basic["dropped"]
    assert "WireCAP-A (T=0.5)" in paper.text(r)


def test_progress_bar_draws_on_a_terminal_only():
    import io
    out = io.StringIO()
    bar = paper.Progress(200, enabled=True, out=out)
    bar.done = 100
    bar.show(50, what="fig 9", force=True)
    assert "[######################        ]  75.0% fig 9" in out.getvalue()
    quiet = io.StringIO()
    paper.Progress(200, out=quiet).show(50, force=True)     # StringIO is not a terminal
    assert quiet.getvalue() == ""


def test_flow_weights_follow_rss():
    fq = paper.flow_queues(32, 4)
    w = paper.skewed_weights(32, 4, 0.9)
    share = [sum(x for x, q in zip(w, fq) if q == k) for k in range(4)]
    assert share == pytest.approx([0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3])


@pytest.mark.parametrize("argv,match", [
    (["--figure", "9", "--rate", "2e7"], "10 GbE line rate"),
    (["--figure", "8", "--repeats", "0"], "at least once"),
])
def test_paper_misuse_is_refused(capsys, argv, match):
    assert main(["bench", "paper", *argv]) == 2
    assert match in capsys.readouterr().err


def test_bad_burst_sizes_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "paper", "--figure", "8", "--p", "1e3,abc"])
    assert "give burst sizes P" in capsys.readouterr().err
