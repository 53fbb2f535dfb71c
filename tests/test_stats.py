"""wirecap.stats: snapshots add up to the engine's own counters; the sampler records occupancy."""
import time

import pytest

from wirecap import stats
from wirecap.engine import Engine
from wirecap.sim import TrafficProfile


@pytest.fixture
def engine():
    with Engine("sim:0", queues=2, ndesc=256, segment=32, chunks=12) as eng:
        yield eng


def drain(eng, hold=()):
    """Read every queue until nothing came for 0.2 s; keep the chunks of queues in ``hold``."""
    held, got = [], 0
    quiet = time.monotonic() + 0.2
    while time.monotonic() < quiet:
        for q in range(len(eng.workers)):
            while (c := eng.next_chunk(q, timeout=0)) is not None:
                got += len(c)
                if q in hold:
                    held.append(c)
                else:
                    c.release()
                quiet = time.monotonic() + 0.2
        time.sleep(0.001)
    return got, held


def test_snapshot_adds_up_and_renders(engine):
    engine.nics[0].port.wire.send(TrafficProfile(count=300, flows=16))
    got, held = drain(engine, hold=(1,))
    snap = stats.snapshot(engine)
    assert [q["queue"] for q in snap.queues] == [0, 1]
    assert snap.totals["packets"] == sum(q["packets"] for q in snap.queues) == got
    assert snap.totals["packets"] + snap.totals["nic_dropped"] == 300
    assert snap.devices[0]["packets"] == got and snap.devices[0]["counters"]["GPRC"] == 300
    # queue 1's chunks are held by us: its pool shows them as captured, not free
    # (a flushed delivery can come from a chunk still armed on a filling segment)
    q1 = snap.queues[1]
    assert q1["armed"] + q1["captured"] >= len({c.index for c in held}) > 0
    assert snap.queues[0]["captured"] == 0
    df = snap.to_pandas()
    assert list(df.index) == [0, 1] and int(df["packets"].sum()) == got
    assert len(snap.to_pandas("devices")) == 1
    html = snap._repr_html_()
    assert html.count("<tr>") == 1 + 2 + 1 and "capture_queue_peak" in html
    assert "drop_%" in html and "<caption>&lt;Snapshot" in html
    text = str(snap).splitlines()
    assert text[0].split()[:5] == ["queue", "device", "packets", "nic_dropped", "drop_%"]
    assert len(text) == 5 and max(map(len, text)) <= 100
    wide = snap.table(wide=True).splitlines()
    assert wide[0].split() == ["queue", *stats.QUEUE_COLUMNS, "drop_%"]
    assert text[-1].split()[:3] == ["all", str(got), str(300 - got)]
    for c in held:
        c.release()
    with pytest.raises(ValueError, match="level"):
        snap.to_pandas("pools")


def test_sampler_records_occupancy_over_time(engine):
    with stats.Sampler(engine, interval=0.001) as s:
        engine.nics[0].port.wire.send(TrafficProfile(count=200, flows=16))
        got, held = drain(engine, hold=(0, 1))
        while len(s.samples) < 20:
            time.sleep(0.005)
    df = s.to_pandas()
    assert list(df.columns) == list(stats.SAMPLE_COLUMNS)
    assert set(df["queue"]) == {0, 1} and df["t"].is_monotonic_increasing
    last = df.groupby("queue").last()
    assert int(last["packets"].sum()) == got
    # nothing released yet: no chunk we hold is free
    assert int((last["captured"] + last["armed"]).sum()) >= len({(c.owner.index, c.index)
                                                                for c in held})
    assert (df[["free", "armed", "captured"]].sum(axis=1) == 12).all()  # R chunks per pool
    for c in held:
        c.release()
    with pytest.raises(ValueError, match="interval"):
        stats.Sampler(engine, interval=0)


def test_tables_fit_100_columns_with_thousands_separators_and_a_drop_share():
    q = {c: 0 for c in stats.QUEUE_COLUMNS}
    queues = [dict(q, queue=i, device="afpacket:a-long-interface-name", rx_queue=i,
                   packets=12_345_678 * (i + 1), bytes=790_123_456_789, nic_dropped=1_234_567,
                   capture_queue_peak=99) for i in range(4)]
    snap = stats.Snapshot(1_700_000_000.0, queues, [{"device": "afpacket:a-long-interface-name"}])
    text = snap.table().splitlines()
    assert max(map(len, text)) <= 100 and "12,345,678" in text[2] and "9.09" in text[2]
    assert set(text[0].split()) < set(snap.table(wide=True).splitlines()[0].split())
    assert snap.table(width=60) != snap.table() and max(map(len, snap.table(width=60)
                                                            .splitlines())) <= 60
    assert max(map(len, snap.table(wide=True).splitlines())) > 100
    html = snap._repr_html_()
    assert "790,123,456,789" in html and "<td" in html and "9.09" in html
    r = repr(snap)
    assert r.startswith("<Snapshot ") and "4 queues" in r and "123,456,780 packets" in r
    assert "4,938,268 dropped (3.85 %)" in r and "afpacket:a-long-interface-name" in r
