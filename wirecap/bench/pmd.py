"""``wirecap bench pmd``: what the driver costs per packet.

capture: the model fills whole segments (not timed); then the driver's capture and recycle
run over them without the GIL (timed), for segment sizes M of 64, 256 and 1024.
forward: captured packets are sent zero copy from a transmit queue and their completions
reaped; the model's own transmit work happens between the timed parts (tx_deferred).
"""
import time

from .. import sim
from .._dma import Domain
from ..devices import open_device
from ..sim import TrafficProfile
from . import report

RING = 4096


def capture_cost(segment, rounds):
    """ns per packet of capture + recycle, one sample per round."""
    sim.reset()
    nic = open_device("sim:0")
    q = nic.rx_queue(0, ndesc=RING, segment=segment, chunks=RING // segment + 1, flush_us=None)
    nic.start()
    wire = nic.port.wire
    wire.send(TrafficProfile(count=1 << 40, flows=16), count=0)
    per_round = RING - segment                  # whole segments the NIC can fill in one go
    samples = []
    for _ in range(rounds + 1):
        wire.send(count=per_round)              # staged outside the timed part
        t0 = time.perf_counter_ns()
        n = q.discard()
        t1 = time.perf_counter_ns()
        if n:
            samples.append((t1 - t0) / n)
    memory = q.memory
    nic.close()
    return samples[1:], memory


def forward_cost(rounds):
    """ns per packet of capture + zero-copy send + push + recycle, and of reaping."""
    sim.reset()
    a, b = sim.pair(0, 1)
    dom = Domain(a.iommu)
    na, nb = open_device("sim:0", domain=dom), open_device("sim:1", domain=dom)
    rx = na.rx_queue(0, ndesc=RING, segment=256, chunks=RING // 256 + 8, flush_us=None)
    tx = na.tx_queue(0, ndesc=RING)
    na.start()
    a.tx_deferred = True                        # the model sends between the timed parts
    a.wire.send(TrafficProfile(count=1 << 40, flows=16), count=0)
    samples = []
    for _ in range(rounds + 1):
        a.wire.send(count=RING // 2)
        t0 = time.perf_counter_ns()
        n = rx.forward_all(tx)
        t1 = time.perf_counter_ns()
        a.process_tx()                          # the model's DMA and wire: not the driver's
        t2 = time.perf_counter_ns()
        done = tx.collect()
        rx.accounting()                         # chunks whose sends completed go home
        t3 = time.perf_counter_ns()
        if n and done == n:
            samples.append(((t1 - t0) + (t3 - t2)) / n)
    if rx.accounting()[2]:
        raise RuntimeError("forwarding benchmark: chunks did not come home")
    na.close()
    nb.close()
    return samples[1:]


def run(args):
    rows, results = [], []
    for m in args.segments:
        samples, memory = capture_cost(m, args.rounds)
        s = report.spread(samples)
        results.append({"path": "capture+recycle", "segment": m, "ns_per_packet": s,
                        "memory": memory})
        rows.append([f"capture+recycle M={m}", f"{s['min']:.2f}", f"{s['median']:.2f}",
                     f"{s['max']:.2f}", f"{1e3 / s['median']:.0f}",
                     f"{memory['metadata_per_buffer']:.0f}"])
    s = report.spread(forward_cost(args.rounds))
    results.append({"path": "forward", "segment": 256, "ns_per_packet": s})
    rows.append(["rx -> zero-copy tx -> completion", f"{s['min']:.2f}", f"{s['median']:.2f}",
                 f"{s['max']:.2f}", f"{1e3 / s['median']:.0f}", ""])
    result = {"title": "driver cost per packet (the model's work excluded)",
              "machine": report.machine(), "ring": RING, "rounds": args.rounds,
              "results": results}
    text = report.table(["path", "min ns", "median ns", "max ns", "Mpps/core",
                         "metadata B/buffer"], rows)
    m = results[0]["memory"]
    text += (f"\n\nring {RING} descriptors; a pool is R*M*B bytes of DMA memory "
             f"(e.g. {m['pool']:,} bytes at M={args.segments[0]}, {m['pool_backing']}) plus "
             f"{m['metadata_per_buffer']:.0f} bytes of metadata per packet buffer")
    report.emit(result, text, args.json)
    return result
