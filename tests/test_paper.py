"""The paper's tools and experiments (``wirecap bench handler|paper``) in reduced form."""
import json
import os
import time

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
    # inline capture: no capture thread can flush part of the segment while send() runs
    with Engine("sim:0", queues=1, ndesc=128, segment=16, chunks=12, flush_us=0,
                threads=False) as eng:
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
    assert r["x"] == 300 == r["paper"]["x"] and r["rate_target_pps"] == 1e6
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
            assert run["dropped"] >= run["P"] - c["capacity"] - run["processed"]
    by = {c["label"]: c["runs"] for c in r["configs"]}
    ring = by["ring-only (64,17)"][1]
    assert ring["dropped"] >= 40000 - 1088 - ring["processed"] > 0
    # 40,000 < R*M = 128,000: only a capture thread kept off the CPU for most of the burst
    # could make the big pool drop as much as the ring alone must
    assert by["WireCAP-B-(256,500)"][1]["dropped"] < ring["dropped"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure10_equal_capacity_gives_equal_drop_rates(capsys):
    r = bench(capsys, "paper", "--figure", "10", "--p", "50000", "--rate", "1e6", "--x", "2000")
    assert [(c["M"], c["R"]) for c in r["configs"]] == [(64, 400), (128, 200), (256, 100)]
    for c in r["configs"]:
        run = c["runs"][0]
        check_accounting(run)
        # everything beyond the pool (R*M = 25,600) is dropped but what the handler got done
        assert run["dropped"] >= 50000 - 25600 - run["processed"]
        # the bound comes from this configuration's measured rates
        assert c["loss_free_bound"] == paper.bound(c["pin_pps"]["median"],
                                                   c["pp_pps"]["median"], c["M"], c["R"])


def test_figure8_structure_without_load(capsys):
    r = bench(capsys, "paper", "--figure", "8", "--p", "1000,5000", "--rate", "1e6",
              "--repeats", "2")
    assert r["x"] == 0 and r["paper"]["x"] == 0 and r["paper"]["pp_pps"] is None
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


# ----------------------------------------------------------------------------- line rate
SMALL = ["--ndesc", "256", "--segment", "64", "--chunks", "20"]


def test_linerate_accounts_for_every_frame_of_every_run(capsys):
    r = bench(capsys, "linerate", "--frames", "20000", "--repeats", "1", "--queues", "1,4",
              *SMALL)
    assert r["frames"] == 20000 and r["ndesc"] == 256 and r["segment"] == 64
    runs = r["runs"]
    assert sorted((x["queues"], x["consumer"], x["pool"]) for x in runs) == sorted(
        (q, c, p) for q in (1, 4) for c in ("chunks", "pcap", "loop", "handler")
        for p in ("wirecap", "ring-only"))
    for x in runs:
        assert x["accounted"], x
        assert x["sent"] == 20000
        assert x["sent"] == (x["delivered"] + x["discarded"] + x["dropped_ring"] +
                             x["dropped_packet_buffer"] + x["on_chip"])
        assert x["lost"] == x["dropped_ring"] + x["dropped_packet_buffer"]
        assert x["loss"] == x["lost"] / x["sent"]
        assert x["chunks"] == (256 // 64 + 1 if x["pool"] == "ring-only" else 20)
        if x["capture_ns_per_frame"] is not None:
            assert x["capture_ns_per_frame"] > 0
    assert len(r["rows"]) == 16
    for row in r["rows"]:
        assert row["repeats"] == 1 and row["accounted"]
        same = [x for x in runs if (x["queues"], x["consumer"], x["pool"]) ==
                (row["queues"], row["consumer"], row["pool"])]
        assert row["lost"]["median"] == same[0]["lost"]
    want = [row for row in r["rows"] if row["pool"] == "wirecap" and
            row["consumer"] in ("chunks", "pcap")]
    assert r["goal"]["met"] == all(row["lost"]["max"] == 0 for row in want)


def test_linerate_pcap_writer_writes_what_it_counts(tmp_path):
    from wirecap.bench import linerate
    from wirecap.dump import read_pcap
    from wirecap.engine import Engine
    with linerate.Spool(directory=str(tmp_path), size=4 << 20) as spool:
        # written through before any run: its pages exist before frames come
        assert os.path.getsize(spool.path) >= 4 << 20
        for frames in (200, 150):           # each run writes the spool over from its start
            with Engine("sim:0", queues=1, ndesc=256, segment=64, chunks=20,
                        flush_us=0) as eng:
                w = linerate._Pcap(eng, spool)
                eng.nics[0].port.wire.send(TrafficProfile(count=frames, flows=4))
                got, deadline = 0, time.monotonic() + 30
                while got < frames and time.monotonic() < deadline:
                    got += w.pass_()
            assert got == w.read == frames
        spool.writer.close()                # cuts the file where the last run ended
        records = read_pcap(spool.path)[1]
        size = os.path.getsize(spool.path)
        path = spool.path
    assert len(records) == 150
    assert size == 24 + 150 * (16 + 60)
    assert not os.path.exists(path)


def test_linerate_goal_needs_every_repeat_of_chunks_and_pcap_lossless():
    from wirecap.bench import linerate

    def run(q, consumer, pool, lost):
        return {"queues": q, "consumer": consumer, "pool": pool, "ndesc": 1024, "segment": 256,
                "chunks": 100, "sent": 10, "delivered": 10 - lost, "dropped_ring": lost,
                "pool_dry_events": 0, "dropped_packet_buffer": 0, "lost": lost,
                "loss": lost / 10, "wall_s": 1.0, "rate_pps": 1.0, "accounted": True,
                "capture_ns_per_frame": 10.0, "model_ns_per_frame": 4.0,
                "max_gap_us": 50.0 if lost < 5 else 900.0, "max_round_us": 10.0}
    ok = [run(1, "chunks", "wirecap", 0), run(1, "pcap", "wirecap", 0),
          run(1, "loop", "wirecap", 3), run(1, "chunks", "ring-only", 5)]
    rows = linerate.summarize(ok)
    assert linerate.goals(rows)["met"]
    assert rows[0]["driver_ns_per_frame"]["median"] == 6.0
    assert [r["short_gaps"] for r in rows] == [[0], [0], [3], []]   # 69 us ring at N=1024
    # a capture thread away longer than the ring: the run is not short, whatever the port saw
    for r in ok:
        r["max_round_us"] = 80.0
    assert [r["short_gaps"] for r in linerate.summarize(ok)] == [[], [], [], []]
    for r in ok:
        r["max_round_us"] = None    # capture inline: no capture thread to time
    assert [r["short_gaps"] for r in linerate.summarize(ok)] == [[0], [0], [3], []]
    bad = ok + [run(1, "pcap", "wirecap", 1)]          # a second repeat that lost one frame
    rows = linerate.summarize(bad)
    assert not linerate.goals(rows)["met"]
    assert [r["lost"]["max"] for r in rows if r["consumer"] == "pcap"] == [1]
    assert "NOT met" in linerate.text({"rows": rows, "goal": linerate.goals(rows),
                                       "frames": 10, "rate_pps": 1.0, "repeats": 2,
                                       "ndesc": 1024, "segment": 256})


@pytest.mark.parametrize("argv,match", [
    (["--consumers", "chunks,bogus"], "not one of"),
    (["--ndesc", "1000", "--segment", "256"], "must divide"),
    (["--repeats", "0"], "at least once"),
])
def test_linerate_misuse_is_refused(capsys, argv, match):
    assert main(["bench", "linerate", *argv]) == 2
    assert match in capsys.readouterr().err


# ----------------------------------------------------------------------------- the demo
def _row(**kw):
    row = {"sent": 1000, "delivered": 1000, "discarded": 0, "dropped_ring": 0,
           "dropped_packet_buffer": 0, "lost": 0, "loss": 0.0, "accounted": True,
           "pool_dry_events": 0, "rate_pps": 14_880_952.4, "queues": 4, "wall_s": 0.5,
           "capture_ns_per_frame": 30.0, "model_ns_per_frame": 12.0}
    row.update(kw)
    return row


def test_demo_says_zero_lost_only_when_nothing_was_lost():
    from wirecap import demo
    text = "\n".join(demo.line_rate_lines(_row()))
    assert "1,000 frames at line rate, 0 lost." in text and "every frame accounted" in text
    text = "\n".join(demo.line_rate_lines(_row(delivered=993, dropped_ring=7, lost=7,
                                               loss=0.007)))
    assert "0 lost" not in text and "7 of 1,000 frames lost" in text
    assert "came too late" in text
    text = "\n".join(demo.line_rate_lines(_row(delivered=993, dropped_ring=7, lost=7,
                                               loss=0.007, pool_dry_events=2)))
    assert "pool ran dry" in text
    assert "MISMATCH" in "\n".join(demo.line_rate_lines(_row(accounted=False)))


def test_demo_burst_comparison_is_computed_from_the_runs():
    from wirecap import demo
    runs = [{"P": 10000, "label": "ring-only (256,5)", "capacity": 1280, "M": 256, "R": 5,
             "pin_pps": 1e7, "pp_pps": 1e5, "processed": 100, "buffered": 1180,
             "dropped": 8720, "drop_rate": 0.872, "accounted": True},
            {"P": 10000, "label": "WireCAP-B-(256,500)", "capacity": 128000, "M": 256,
             "R": 500, "pin_pps": 1e7, "pp_pps": 1e5, "processed": 700, "buffered": 9300,
             "dropped": 0, "drop_rate": 0.0, "accounted": True}]
    text = "\n".join(demo.burst_lines(runs, 300))
    assert f"{1e7 * 1280 / (1e7 - 1e5):,.0f}" in text          # the bound, from the rates
    assert f"{1e7 * 128000 / (1e7 - 1e5):,.0f}" in text
    assert "ring-only lost 87.2 % of the burst; WireCAP's pool lost nothing." in text
    runs[1].update(dropped=3, drop_rate=0.0003)
    assert "WireCAP's pool lost 3." in "\n".join(demo.burst_lines(runs, 300))


def test_demo_advice_names_only_options_that_exist():
    import shlex
    from wirecap import demo
    from wirecap.cli import build_parser
    parser = build_parser()
    for line in demo.ADVICE:
        argv = shlex.split(line.split("#")[0])
        assert argv[0] == "wirecap"
        parser.parse_args(argv[1:])            # an unknown option exits


def test_demo_runs_and_accounts_for_both_captures(capsys):
    assert main(["demo", "--frames", "30000", "--queues", "2", "--burst", "20000",
                 "--x", "30", "--chunks", "100"]) == 0
    out = capsys.readouterr().out
    assert "sent 30,000 frames of 64 B" in out
    assert "a burst of 20,000 frames at line rate" in out
    assert out.count("every frame accounted for") >= 1 and "MISMATCH" not in out
    assert "ring-only lost" in out
    assert "capture_queue_peak" in out and out.count("sim:0") >= 3   # the per-queue table


def test_demo_rejects_bad_input(capsys):
    assert main(["demo", "--queues", "17"]) == 2
    assert "1 to 16 queues" in capsys.readouterr().err
    assert main(["demo", "--frames", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
