"""``wirecap bench model``: what the 82599 model costs the host.

(a) Frames per second the model delivers into receive rings: it must play 64-byte frames at
10 GbE line rate (14.88 Mpps) on one core. The wire floods it (no pacing) in this thread;
between chunks a minimal host re-arms exactly the descriptors the model used, so the timed
part is the model's receive path plus that refill.

(b) On the driver's clock (the default), the cost of catching up: line-rate traffic is due
on a schedule and the driver's polls (its sync hook, RDT writes) deliver it; the model counts
the ns it spends delivering at those sync points. Reported per frame delivered, with the
frames each catch-up delivered, at 1 and 4 queues, and the share of frames the host dropped
(counted, as on silicon) because it fell behind.
"""
import mmap
import time

import numpy as np

from .. import ixgbe as r
from ..sim import Device, TrafficProfile, Wire, line_rate_pps
from . import report

MS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
                       "6a42b73bbeac01fa")


def _wait(dev, off, bit, what, timeout=1.0):
    end = time.monotonic() + timeout
    while not dev.read32(off) & bit:
        if time.monotonic() > end:
            raise TimeoutError(f"model: {what} did not come up in {timeout} s")
        time.sleep(0.0005)


HUGE = 2 << 20
MAP_HUGETLB = 0x40000


def dma_memory(nbytes, dtype=np.uint8):
    """Zeroed memory for rings and buffers: 2 MiB hugepages when reserved (as the driver's DMA
    memory is), else 4 KiB pages. With 4 KiB pages the model's speed depends on TLB misses
    and varies from run to run. Returns (array, 'hugepages' | '4k pages')."""
    size = -(-nbytes // HUGE) * HUGE
    try:
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_HUGETLB)
        kind = "hugepages"
    except OSError:                              # none reserved: `wirecap hugepages --reserve`
        m = mmap.mmap(-1, size)
        kind = "4k pages"
    return np.frombuffer(m, dtype=np.uint8)[:nbytes].view(dtype), kind


class RingKeeper:
    """The least a host does to keep a model port receiving: per queue a ring of ``ndesc``
    one-buffer descriptors, re-armed from a saved image as the model consumes them.
    (The demo and this benchmark use it until the poll-mode driver replaces it.)"""

    def __init__(self, dev, queues=1, ndesc=1024, bufsize=2048):
        self.dev, self.queues, self.ndesc, self.bufsize = dev, queues, ndesc, bufsize
        self.totals = {}
        dev.write32(r.EIMC, r.EIMS_ALL)                                  # 4.6.3.1
        dev.write32(r.CTRL, r.CTRL_RST)                                  # 4.6.3.2
        _wait(dev, r.EEC, r.EEC_ARD, "EEC.ARD")
        _wait(dev, r.RDRXCTL, r.RDRXCTL_DMAIDONE, "RDRXCTL.DMAIDONE")
        dev.write32(r.AUTOC, r.AUTOC_LMS_10G_SERIAL | r.AUTOC_AN_RESTART)    # 4.6.4
        dev.write32(r.FCTRL, r.FCTRL_BAM | r.FCTRL_UPE | r.FCTRL_MPE)        # capture: promisc
        if queues > 1:                                                   # 7.1.2.8 RSS
            for i in range(10):
                dev.write32(r.RSSRK(i), int.from_bytes(MS_KEY[4 * i:4 * i + 4], "little"))
            for i in range(32):
                dev.write32(r.RETA(i), sum(((4 * i + k) % queues) << (8 * k) for k in range(4)))
            dev.write32(r.MRQC, r.MRQC_RSSEN | r.MRQC_RSS_FIELD_IPV4 |
                        r.MRQC_RSS_FIELD_IPV4_TCP | r.MRQC_RSS_FIELD_IPV4_UDP)
        for i in range(4):                                               # queue i -> QPRC(i)
            dev.write32(r.RQSMR(i), sum((4 * i + k) << (8 * k) for k in range(4)))
        self.desc, self.image, self.bufs, self.last, kinds = [], [], [], [], set()
        iova = 1 << 32
        for q in range(queues):                                          # 4.6.7
            desc, k1 = dma_memory(ndesc * 16, np.uint64)                 # (pkt_addr, hdr_addr)
            bufs, k2 = dma_memory(ndesc * bufsize)
            kinds |= {k1, k2}
            dev.iommu.map(desc, iova)
            dev.iommu.map(bufs, iova + desc.nbytes)
            desc[0::2] = iova + desc.nbytes + np.arange(ndesc, dtype=np.uint64) * bufsize
            self.image.append(desc.copy())
            dev.write32(r.RDBAL(q), iova & 0xFFFFFFFF)
            dev.write32(r.RDBAH(q), iova >> 32)
            dev.write32(r.RDLEN(q), ndesc * 16)
            dev.write32(r.SRRCTL(q), (bufsize >> 10) | r.SRRCTL_DESCTYPE_ADV_ONEBUF |
                        r.SRRCTL_DROP_EN)
            dev.write32(r.RXDCTL(q), r.RXDCTL_ENABLE)
            dev.write32(r.RDT(q), ndesc - 1)
            self.desc.append(desc)
            self.bufs.append(bufs)
            self.last.append(0)
            iova += desc.nbytes + bufs.nbytes + (1 << 20)
        self.memory = " + ".join(sorted(kinds))
        dev.write32(r.RXCTRL, r.RXCTRL_RXEN)
        _wait(dev, r.LINKS, r.LINKS_UP, "LINKS.UP")

    def refill(self):
        """Re-arm the descriptors each queue's model head has passed; move RDT behind it."""
        for q in range(self.queues):
            head, last = self.dev.read32(r.RDH(q)), self.last[q]
            d, img = self.desc[q], self.image[q]
            if head >= last:
                d[2 * last:2 * head] = img[2 * last:2 * head]
            else:
                d[2 * last:] = img[2 * last:]
                d[:2 * head] = img[:2 * head]
            self.last[q] = head
            self.dev.write32(r.RDT(q), (head - 1) % self.ndesc)

    def counters(self):
        """The port's counters, clear-on-read registers accumulated into running totals."""
        regs = {"GPRC": r.GPRC, "MPC": r.MPC(0), "RNBC": r.RNBC(0)}
        for q in range(self.queues):
            regs.update({f"QPRC{q}": r.QPRC(q), f"QPRDC{q}": r.QPRDC(q)})
        for name, off in regs.items():
            self.totals[name] = self.totals.get(name, 0) + self.dev.read32(off)
        gorc = self.dev.read32(r.GORCL)
        self.totals["GORC"] = self.totals.get("GORC", 0) + (self.dev.read32(r.GORCH) << 32 | gorc)
        return dict(self.totals)


def measure(queues, frames, repeats, ring):
    """Delivered frames per second, one sample per repeat; and the memory the rings used."""
    dev = Device(0)
    wire = Wire(dev)
    keeper = RingKeeper(dev, queues=queues, ndesc=ring)
    profile = TrafficProfile(count=frames * (repeats + 1), sizes=(64,), flows=64)
    chunk = keeper.ndesc - 1            # at most one ring's worth between refills: never short
    wire.send(profile, count=0)
    samples = []
    for rep in range(repeats + 1):      # repeat 0 warms caches and page tables, not reported
        start = time.perf_counter_ns()
        end = wire.sent + frames
        while wire.sent < end:
            wire.send(count=min(chunk, end - wire.sent))
            keeper.refill()
        elapsed = time.perf_counter_ns() - start
        if rep:
            samples.append(frames / (elapsed / 1e9))
    totals = keeper.counters()
    delivered = sum(totals[f"QPRC{q}"] for q in range(queues))
    if delivered != frames * (repeats + 1):
        raise RuntimeError(f"model benchmark lost frames: {delivered} delivered of "
                           f"{frames * (repeats + 1)} ({totals})")
    return samples, keeper.memory


def measure_catch_up(queues, frames, repeats, ring):
    """On the driver's clock: catch-up ns per frame and frames per catch-up, one sample per
    repeat. The host is wirecap's driver capturing and recycling at once (RxRing.discard), its
    polls the sync points; every frame is accounted for (captured, or counted dropped)."""
    from .. import sim
    from ..devices import open_device
    sim.reset()
    nic = open_device("sim:0")
    try:
        nic.set_rss(queues)
        qs = [nic.rx_queue(q, ndesc=ring, segment=min(256, ring // 4), chunks=ring // 16)
              for q in range(queues)]
        nic.start()
        dev, ns, per_round, captured = nic.port, [], [], 0
        for rep in range(repeats + 1):  # repeat 0 warms up, not reported
            before = dev.clock_stats()
            dev.wire.play(TrafficProfile(count=frames, sizes=(64,), flows=64))
            while dev.wire.running:
                for q in qs:
                    captured += q.discard()
            after = dev.clock_stats()
            n = after["catchup_frames"] - before["catchup_frames"]
            if rep:
                ns.append((after["catchup_ns"] - before["catchup_ns"]) / n)
                per_round.append(n / max(after["catchups"] - before["catchups"], 1))
        quiet = time.monotonic() + 0.01             # past the flush timeout: the last parts
        while time.monotonic() < quiet:
            captured += sum(q.discard() for q in qs)
        c = nic.counters()
        dropped = sum(c[f"QPRDC{q}"] for q in range(queues)) + c["MPC0"]
        if captured + dropped != frames * (repeats + 1):
            raise RuntimeError(f"model benchmark lost frames on the driver's clock: {captured} "
                               f"captured + {dropped} dropped of {frames * (repeats + 1)}")
        return ns, per_round, dropped / (frames * (repeats + 1))
    finally:
        nic.close()
        sim.reset()


def run(args):
    line = line_rate_pps(64)
    rows, results, clock_rows = [], [], []
    for q in args.queues:
        samples, memory = measure(q, args.frames, args.repeats, args.ring)
        s = report.spread(samples)
        ns, per_round, drop = measure_catch_up(q, args.frames, args.repeats, args.ring)
        c, k = report.spread(ns), report.spread(per_round)
        results.append({"queues": q, "frame_size": 64, "ring": args.ring, "memory": memory,
                        "pps": s, "vs_line_rate": s["median"] / line,
                        "catch_up_ns_per_frame": c,
                        "frames_per_catch_up": k,
                        "host_drop_fraction": drop})
        rows.append([q, f"{s['min'] / 1e6:.2f}", f"{s['median'] / 1e6:.2f}",
                     f"{s['max'] / 1e6:.2f}", f"{s['median'] / line:.2f}x", memory])
        clock_rows.append([q, f"{c['min']:.1f}", f"{c['median']:.1f}", f"{c['max']:.1f}",
                           f"{k['median']:.0f}", f"{1e9 / line:.1f}", f"{drop:.2%}"])
    result = {"title": "82599 model: 64-byte frames delivered into receive rings, one core",
              "machine": report.machine(), "line_rate_pps": line, "frames": args.frames,
              "repeats": args.repeats, "results": results}
    text = "(a) flooded: frames delivered per second\n"
    text += report.table(["queues", "min Mpps", "median Mpps", "max Mpps", "vs 14.88 Mpps",
                          "ring memory"], rows)
    text += "\n\n(b) on the driver's clock at line rate: the polling thread's catch-up cost\n"
    text += report.table(["queues", "min ns/frame", "median", "max", "frames per catch-up",
                          "frame time ns", "host drops"], clock_rows)
    text += (f"\n\nrings of {args.ring} descriptors x 2 KB buffers per queue (the paper's ring "
             f"size); {args.frames:,} frames per repeat, {args.repeats} repeats after a warm-up")
    report.emit(result, text, args.json)
    return result
