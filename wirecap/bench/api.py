"""``wirecap bench api``: packets per second the Python API hands to an application.

Each round the model's wire puts a batch of 64-byte frames into the receive ring (not timed,
as a NIC's DMA costs the host nothing); then the timed part captures them inline (no capture
thread, so two busy threads do not share this machine's cores) and delivers them:

  loop     Handle.loop(n, callback) with a callback that does nothing
  chunks   the chunk iterator: for c in engine.chunks(): n += len(c); c.release()
  pcapy-ng pcapy's loop over the same frames read from a pcap file (libpcap, C), the reference
"""
import os
import tempfile
import time

from .. import sim
from ..dump import PcapWriter
from ..engine import Engine
from ..pcap import Handle
from ..sim import TrafficProfile
from . import report

RING, SEGMENT = 4096, 256
BATCH = RING - SEGMENT          # whole segments the ring holds with one withheld


def _engine():
    sim.reset()
    eng = Engine("sim:0", queues=1, threads=False, ndesc=RING, segment=SEGMENT,
                 chunks=RING // SEGMENT + 4, flush_us=1000)
    eng.start()
    wire = eng.nics[0].port.wire
    wire.send(TrafficProfile(count=1 << 40, flows=16), count=0)     # load, send nothing
    return eng, wire


def _rounds(eng, wire, rounds, deliver):
    """Total seconds and packets of ``deliver(n)`` over ``rounds`` staged batches."""
    spent, packets = 0, 0
    w = eng.workers[0]
    for _ in range(rounds):
        w.poll_inline()                 # recycle the last batch and re-arm every segment
        wire.send(count=BATCH)
        dropped = eng.nics[0].queue_counters(0)["nic_dropped"]
        if dropped:
            raise RuntimeError(f"the ring dropped {dropped} frames: the batch was staged "
                               f"before the ring was re-armed (a bug in this benchmark)")
        t0 = time.perf_counter_ns()
        packets += deliver(BATCH)
        spent += time.perf_counter_ns() - t0
    return spent / 1e9, packets


def loop_rate(rounds):
    eng, wire = _engine()
    h = Handle(eng, 0)
    try:
        return _rounds(eng, wire, rounds, lambda n: h.loop(n, _nothing))
    finally:
        h.close()
        eng.close()


def chunk_rate(rounds):
    eng, wire = _engine()

    def deliver(n):
        got = 0
        while got < n:
            c = eng.next_chunk(0, timeout=0)
            if c is None:
                continue
            got += len(c)
            c.release()
        return got
    try:
        return _rounds(eng, wire, rounds, deliver)
    finally:
        eng.close()


def _nothing(hdr, data):
    pass


def pcapy_rate(path):
    import pcapy
    p = pcapy.open_offline(path)
    t0 = time.perf_counter_ns()
    n = p.loop(0, _nothing)
    spent = (time.perf_counter_ns() - t0) / 1e9
    return spent, n if n else _count(path)


def _count(path):
    import pcapy
    p, n = pcapy.open_offline(path), 0
    while p.next()[0] is not None:
        n += 1
    return n


def _frames_pcap(count):
    p = TrafficProfile(count=count, flows=16)
    mac = bytes.fromhex("025743000000")
    fd, path = tempfile.mkstemp(suffix=".pcap", prefix="wirecap-bench-")
    os.close(fd)
    with PcapWriter(path) as w:
        for i in range(count):
            w.write(1_700_000_000_000_000_000 + i * 68, p.frame(i, mac))
    return path


def run(args):
    try:
        import pcapy  # noqa: F401
        have_pcapy = True
    except ImportError:
        have_pcapy = False
    # the paths take turns within each repeat, so that the machine's noise hits them alike;
    # the ratio to pcapy-ng is taken per repeat
    paths = [("loop", lambda: loop_rate(args.rounds)), ("chunks", lambda: chunk_rate(args.rounds))]
    path = None
    if have_pcapy:
        path = _frames_pcap(args.rounds * BATCH)
        paths.append(("pcapy-ng", lambda: pcapy_rate(path)))
    results = {name: [] for name, _ in paths}
    try:
        for _ in range(args.repeats):
            for name, fn in paths:
                s, n = fn()
                results[name].append(n / s / 1e6)
    finally:
        if path:
            os.unlink(path)
    ratios = {name: report.spread([a / b for a, b in zip(v, results["pcapy-ng"])])
              for name, v in results.items() if have_pcapy and name != "pcapy-ng"}
    spreads = {k: report.spread(v) for k, v in results.items()}
    rows = []
    for name, sp in spreads.items():
        r = ratios.get(name)
        rows.append([name, f"{sp['median']:.2f}", f"{sp['min']:.2f}", f"{sp['max']:.2f}",
                     f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})" if r else "-"])
    goals = {"loop >= 2x pcapy-ng": "loop" in ratios and ratios["loop"]["median"] >= 2,
             "chunks >= 14.88 Mpps": spreads["chunks"]["median"] >= 14.88}
    text = report.table(["path", "Mpps median", "min", "max", "x pcapy-ng median (min-max)"],
                        rows)
    text += (f"\n\n{args.repeats} repeats of {args.rounds} batches of {BATCH} 64-byte frames"
             f" (ring {RING}, segment {SEGMENT}); capture inline, trivial callback."
             + ("" if have_pcapy else "\npcapy-ng is not installed: no reference column "
                "(pip install pcapy-ng)") + "\n"
             + "\n".join(f"goal {g}: {'met' if ok else 'NOT met'}" for g, ok in goals.items()))
    result = {"title": "wirecap bench api: packets/s delivered to Python",
              "machine": report.machine(), "batch": BATCH, "rounds": args.rounds,
              "repeats": args.repeats, "mpps": spreads, "ratio_to_pcapy": ratios,
              "goals": goals}
    report.emit(result, text, args.json)
