"""``wirecap bench linerate``: 64-byte frames at 10 GbE line rate from the 82599 model,
captured end to end.

Each run opens sim:0 with 1 or 4 RSS queues, lets the model's wire play ``frames`` 64-byte
frames in 64 flows at 14.88 Mpps, and reads them with one consumer:

  chunks    the chunk iterator: count each chunk's packets, release it
  pcap      the waiting chunks' packets formatted as pcap records in C straight into
            the writer's buffer and the chunks released, no Python object per chunk
            (``PcapWriter.put_waiting``; ``wirecap capture -w`` puts a chunk at a time the
            same way), written to a file on tmpfs 128 KiB at a time, into a spool written
            through once before the first run; the file starts over every GiB, in the same
            space (as ``tcpdump -C`` would, keeping one file)
  loop      ``Handle.loop`` with a callback that does nothing, one handle per queue
  handler   ``multi_pkt_handler`` at x = 0: one pkt_handler thread per queue

each with WireCAP's ring buffer pool (R chunks) and with a ring-only pool, R = N/M + 1 (one
spare chunk, the least the driver runs with): what DPDK or netmap buffer, a ring's worth.

Every frame is accounted for per run: sent = delivered to the consumer + taken back by stop()
+ dropped by the NIC for want of a descriptor (QPRDC) + dropped in the packet buffer (MPC) +
still on chip. A NIC drop happens when the ring has no armed descriptor: because the capture
thread came too late to re-arm a segment, or because the pool had no free chunk to arm it with
("pool dry", counted by the driver as events). The capture threads' CPU time per frame is
read from their thread CPU clocks; the model's share of it (catching up with the wire at the
driver's sync points) is reported apart when the model says how long that took.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time

from .. import pcap, sim, stats
from .._pmd import pool_bytes
from ..dump import PcapWriter
from ..engine import Engine, RT_RUNTIME, rt_throttling
from ..errors import WirecapError
from ..sim import TrafficProfile, line_rate_pps
from . import handler, report

CONSUMERS = ("chunks", "pcap", "loop", "handler")
RT_PRIORITY = 10                # the capture threads' SCHED_FIFO priority, run as root
HUGE_PAGE = 2 << 20
FULL_FRAMES, QUICK_FRAMES = 10 ** 8, 10 ** 7
FLOWS = 64
ROTATE_BYTES = 1 << 30          # the pcap file starts over past this size
SETTLE_S = 2.0                  # after the wire is done: how long frames may stay unaccounted


def geometry(ring_only, ndesc, segment, chunks):
    """The receive queue geometry of a run: WireCAP's pool of ``chunks``, or ring-only."""
    if ndesc % segment:
        raise WirecapError(f"--segment {segment} must divide --ndesc {ndesc}")
    return {"ndesc": ndesc, "segment": segment,
            "chunks": ndesc // segment + 1 if ring_only else chunks}


def rt_priority(option=None):
    """The capture threads' SCHED_FIFO priority for a run, from an ``--rt-priority`` value
    (0: ordinary scheduling). By default RT_PRIORITY when this process may (root), a CPU
    stays with the application and the kernel does not throttle real-time threads: a
    line-rate run then measures capture, not the kernel's other tasks taking the capture core.
    Throttled (the kernel's default), a polling SCHED_FIFO thread stops 50 ms each second:
    10^8 frames lost 4.9 % so against 0.25 % with ordinary scheduling (README, "Line rate,
    end to end")."""
    if option is not None:
        return option or None
    return RT_PRIORITY if (os.geteuid() == 0 and len(os.sched_getaffinity(0)) > 1 and
                           rt_throttling() is None) else None


@contextlib.contextmanager
def unthrottled():
    """As root, turn the kernel's real-time throttling off for what runs inside, and back on
    after: a SCHED_FIFO capture thread polls without ever stopping, and throttled it loses
    the CPU for 50 ms each second, which no ring outlasts. Yields what was done, one line, or
    None. The capture threads leave the application a CPU (rt_priority refuses otherwise)."""
    throttle = rt_throttling()
    if os.geteuid() != 0 or throttle is None or len(os.sched_getaffinity(0)) < 2:
        yield None
        return
    try:
        with open(RT_RUNTIME, "w") as f:
            f.write("-1")
    except OSError:
        yield None
        return
    try:
        yield (f"real-time throttling off while the runs last (kernel.sched_rt_runtime_us "
               f"-1, was {throttle[0]}; set back after)")
    finally:
        with open(RT_RUNTIME, "w") as f:
            f.write(str(throttle[0]))


def prepare_hugepages(queues, ndesc, segment, chunks, bufsize=2048):
    """As root, reserve the 2 MiB hugepages the receive pools need if too few are free (what
    ``wirecap hugepages --reserve`` does): in 4 KiB pages every frame's buffer costs the model
    a TLB miss. Returns what was done, one line, or None."""
    from vfio_setup import hugepages
    from vfio_setup.host import Host
    need = queues * (-(-pool_bytes(chunks, segment, bufsize) // HUGE_PAGE) + 1)   # + its ring
    host = Host(out=lambda line: None)
    pool = next((p for p in hugepages.pools(host) if p.node is None and
                 p.size_kb == HUGE_PAGE >> 10), None)
    if os.geteuid() != 0 or pool is None or pool.free >= need:
        return None
    total = pool.total + need - pool.free
    hugepages.reserve(host, total, "2M", do_mount=False)
    got = next(p for p in hugepages.pools(host) if p.node is None and
               p.size_kb == HUGE_PAGE >> 10)
    return (f"reserved {got.total - pool.total} more 2 MiB hugepages for the receive pools "
            f"(now {got.total}, as `wirecap hugepages --reserve {total}`)")


# ----------------------------------------------------------------------------- consumers
class _Reader:
    """One thread reading every queue in turn, as ``wirecap capture`` does."""

    def __init__(self, eng):
        self.eng = eng
        self.read = 0

    def pass_(self):
        """Take what waits on every queue; packets taken."""
        n = 0
        for q in range(len(self.eng.workers)):
            n += self.take(q)
        self.read += n
        return n

    def wait(self, timeout):
        self.eng.wait(timeout=timeout)

    def close(self):
        pass


class _Chunks(_Reader):
    def take(self, q):
        n = 0
        while (c := self.eng.next_chunk(q, timeout=0)) is not None:
            n += len(c)
            c.release()
        return n


class Spool:
    """The pcap consumer's file on tmpfs, as a capture box keeps its spool: ``size`` bytes
    written through once before the first run, then written over by every run. A tmpfs page
    is zeroed when first written, and on our VM the host backs a guest page only when it is
    touched (and takes it back once the guest frees it): runs writing pages for the first
    time ran the writer at 200 ns per record instead of 35, and the pool dry."""

    def __init__(self, directory=None, size=ROTATE_BYTES):
        base = directory or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
        fd, self.path = tempfile.mkstemp(prefix="wirecap-linerate-", suffix=".pcap", dir=base)
        os.close(fd)
        self.size = size            # a run starts the file over past this size
        try:
            self.writer = PcapWriter(self.path)
            zeros = bytes(1 << 20)
            while self.writer.tell() < size + (1 << 20):
                self.writer.write_records(zeros)
            self.writer.flush()
        except BaseException:
            os.unlink(self.path)
            raise

    def start(self):
        """The writer, from the file's first byte again."""
        self.writer.start_over()
        return self.writer

    def close(self):
        self.writer.close()
        os.unlink(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Pcap(_Reader):
    def __init__(self, eng, spool):
        super().__init__(eng)
        self.size = spool.size
        self.writer = spool.start()

    def take(self, q):
        n = self.writer.put_waiting(self.eng, q)
        if self.writer.tell() > self.size:
            self.writer.start_over()
        return n


def _nothing(hdr, data):
    pass


class _Loop(_Reader):
    def __init__(self, eng):
        super().__init__(eng)
        self.handles = [pcap.Handle(eng, q) for q in range(len(eng.workers))]
        for h in self.handles:
            h.setnonblock(True)

    def take(self, q):
        return self.handles[q].loop(-1, _nothing)      # non-blocking: what waits, then back

    def close(self):
        for h in self.handles:
            h.close()


class _Handlers:
    """multi_pkt_handler at x = 0: the handler threads read; this thread only watches."""

    def __init__(self, eng):
        self.hs = handler.multi_pkt_handler(eng, x=0)

    @property
    def read(self):
        return self.hs.processed

    def pass_(self):
        return 0

    def wait(self, timeout):
        time.sleep(timeout)

    def close(self):
        self.hs.stop()
        self.read_at_stop = self.hs.processed + sum(h.left_over for h in self.hs)


READERS = {"chunks": _Chunks, "pcap": _Pcap, "loop": _Loop, "handler": _Handlers}


# ----------------------------------------------------------------------------- one run
def _thread_cpu_ns(eng):
    """CPU time of the engine's capture threads so far, in ns (None when capture is inline)."""
    total = 0
    for t in eng._threads:
        try:
            total += time.clock_gettime_ns(time.pthread_getcpuclockid(t.ident))
        except (OSError, TypeError):        # a thread that has ended has no clock any more
            return None
    return total if eng._threads else None


def _preemptions(eng):
    """Involuntary context switches of the capture threads so far (None when inline): how
    often the kernel took their core away, which no ring of this size outlasts at line rate."""
    total = 0
    for t in eng._threads:
        try:
            with open(f"/proc/self/task/{t.native_id}/status") as f:
                total += next(int(line.split()[1]) for line in f
                              if line.startswith("nonvoluntary_ctxt_switches"))
        except (OSError, TypeError, StopIteration):
            return None
    return total if eng._threads else None


def _model_catchup_ns(dev):
    """Time the model spent delivering due frames at the driver's sync points (nearly all of
    it on the capture threads, which touch the port most), if the model says."""
    clock = getattr(dev, "clock_stats", None)
    return clock()["catchup_ns"] if clock is not None else None


def _drops(eng):
    """(NIC ring drops, packet buffer drops, frames on chip) from one counter reading."""
    totals = [nic.counters() for nic in eng.nics]
    st = eng.stats(totals)
    ring = sum(s["nic_dropped"] for s in st)
    missed = sum(t.get(f"MPC{i}", 0) for t in totals for i in range(8))
    pending = sum(nic.port.pending() for nic in eng.nics)
    return ring, missed, pending, st


def run_once(queues, consumer, ring_only, frames, ndesc, segment, chunks, snapshot=False,
             rt_priority=None, spool=None):
    """One run: returns its row (counts, drops by place, capture-thread cost, wall time; and
    with ``snapshot`` the engine's per-queue statistics table at the end). The pcap consumer
    writes into ``spool`` (a Spool), or into one of its own made before the run."""
    if consumer == "pcap" and spool is None:
        with Spool() as spool:
            return run_once(queues, consumer, ring_only, frames, ndesc, segment, chunks,
                            snapshot, rt_priority, spool)
    sim.reset()                         # every run starts from a power-on model port
    geo = geometry(ring_only, ndesc, segment, chunks)
    eng = Engine("sim:0", queues=queues, flush_us=1000, rt_priority=rt_priority, **geo)
    profile = TrafficProfile(count=frames, sizes=(64,), flows=FLOWS)
    reader = None
    try:
        eng.start()
        dev = eng.nics[0].port
        wire = dev.wire
        reader = _Pcap(eng, spool) if consumer == "pcap" else READERS[consumer](eng)
        model0 = _model_catchup_ns(dev)
        preempt0 = _preemptions(eng)
        cpu0 = _thread_cpu_ns(eng)          # what setting up the reader cost is not the run's
        t0 = time.perf_counter()
        wire.play(profile)
        settle_end = played = None
        while True:
            got = reader.pass_()
            if got:
                settle_end = None
                continue
            if wire.running or wire.sent < frames:
                reader.wait(0.002)
                continue
            played = played or wire.stats()         # the rate it played at, taken at its end
            ring, missed, pending, _ = _drops(eng)
            if reader.read + ring + missed + pending >= frames:
                break
            now = time.perf_counter()
            if settle_end is None:
                settle_end = now + SETTLE_S
            elif now > settle_end:          # frames that never came: stop() counts them
                break
            reader.wait(0.005)
        wall = time.perf_counter() - t0
        cpu_ns = _thread_cpu_ns(eng)
        model1 = _model_catchup_ns(dev)
        preempt1 = _preemptions(eng)
        rounds = [ct.max_round_ns for ct in eng.capture_threads] if eng._threads else []
    finally:
        if reader is not None:
            reader.close()
        eng.stop()
    delivered = getattr(reader, "read_at_stop", reader.read)
    ring, missed, pending, st = _drops(eng)
    discarded = eng.discarded
    table = stats.snapshot(eng) if snapshot else None
    eng.close()
    sent = played["sent"]
    model_ns = (model1 - model0) if model0 is not None and model1 is not None else None
    lost = ring + missed
    return {"queues": queues, "consumer": consumer, "pool": "ring-only" if ring_only else
            "wirecap", **geo, "frames": frames, "sent": sent, "delivered": delivered,
            "discarded": discarded, "dropped_ring": ring, "dropped_packet_buffer": missed,
            "on_chip": pending, "pool_dry_events": sum(s["pool_empty"] for s in st),
            "lost": lost, "loss": lost / sent if sent else 0.0,
            "accounted": sent == delivered + discarded + ring + missed + pending,
            "rate_pps": played["rate_pps"], "wall_s": wall,
            "capture_ns_per_frame": (cpu_ns - cpu0) / sent if cpu_ns is not None and
            cpu0 is not None and sent else None,
            "model_ns_per_frame": model_ns / sent if model_ns is not None and sent else None,
            "capture_queue_peak": max(s["capture_queue_peak"] for s in st),
            "preempted": preempt1 - preempt0 if None not in (preempt0, preempt1) else None,
            "max_gap_us": played["max_lag_ns"] / 1000, "max_gap_frame": played["max_lag_frame"],
            "max_round_us": max(rounds) / 1000 if rounds else None,
            **({"snapshot": table} if snapshot else {})}


# ----------------------------------------------------------------------------- the table
def _spread(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return report.spread(vals) if vals else None


def summarize(runs):
    """Rows of runs grouped by (queues, consumer, pool), with min/median/max over repeats."""
    groups = {}
    for r in runs:
        groups.setdefault((r["queues"], r["consumer"], r["pool"]), []).append(r)
    out = []
    for (q, consumer, pool), rows in groups.items():
        cap = _spread(rows, "capture_ns_per_frame")
        model = _spread(rows, "model_ns_per_frame")
        out.append({"queues": q, "consumer": consumer, "pool": pool,
                    "ndesc": rows[0]["ndesc"], "segment": rows[0]["segment"],
                    "chunks": rows[0]["chunks"], "repeats": len(rows),
                    **{k: report.spread([r[k] for r in rows]) for k in
                       ("sent", "delivered", "dropped_ring", "pool_dry_events",
                        "dropped_packet_buffer", "lost", "loss", "wall_s", "rate_pps")},
                    "capture_ns_per_frame": cap, "model_ns_per_frame": model,
                    "preempted": _spread(rows, "preempted"),
                    "max_gap_us": _spread(rows, "max_gap_us"),
                    "max_round_us": _spread(rows, "max_round_us"),
                    # runs in which neither the port nor a capture thread's queues were left
                    # longer than the ring lasts
                    "short_gaps": [r["lost"] for r in rows if max(
                        r["max_gap_us"], r.get("max_round_us") or 0) <
                        ring_us(rows[0]["ndesc"])],
                    # the model counts catch-up on every thread that touches the port: the
                    # difference is the driver's only while the capture threads did it all
                    "driver_ns_per_frame": report.spread(
                        [r["capture_ns_per_frame"] - r["model_ns_per_frame"] for r in rows])
                    if cap and model and model["max"] <= cap["min"] else None,
                    "accounted": all(r["accounted"] for r in rows)})
    return out


def ring_us(ndesc):
    """How long a ring of ``ndesc`` descriptors holds line rate, in us."""
    return ndesc / line_rate_pps(64) * 1e6


def _pct(v):
    return "0" if v == 0 else f"{100 * v:.3g}%"


def _ns(s):
    return f"{s['median']:.1f}" if s else "-"


def goals(rows):
    """0 lost at line rate for the chunk iterator and the pcap writer, 1 and 4 queues."""
    want = [r for r in rows if r["pool"] == "wirecap" and r["consumer"] in ("chunks", "pcap")]
    return {"met": bool(want) and all(r["lost"]["max"] == 0 for r in want),
            "rows": [(r["queues"], r["consumer"], r["lost"]["max"]) for r in want]}


def text(result):
    rows = []
    for r in result["rows"]:
        loss = r["loss"]
        rows.append([r["queues"], r["consumer"], f"{r['pool']} R={r['chunks']}",
                     f"{r['sent']['median']:,.0f}", f"{r['delivered']['median']:,.0f}",
                     f"{r['dropped_ring']['median']:,.0f}",
                     f"{r['pool_dry_events']['median']:,.0f}",
                     f"{r['dropped_packet_buffer']['median']:,.0f}",
                     f"{_pct(loss['min'])} / {_pct(loss['median'])} / {_pct(loss['max'])}",
                     _ns(r["capture_ns_per_frame"]), _ns(r["model_ns_per_frame"]),
                     _ns(r["driver_ns_per_frame"]),
                     f"{r['preempted']['median']:,.0f}" if r["preempted"] else "-",
                     f"{r['max_gap_us']['median']:,.0f} / {r['max_gap_us']['max']:,.0f}",
                     f"{r['max_round_us']['median']:,.0f} / {r['max_round_us']['max']:,.0f}"
                     if r.get("max_round_us") else "-",
                     f"{len(r['short_gaps'])}: {sum(1 for x in r['short_gaps'] if x == 0)}",
                     f"{r['wall_s']['median']:.2f}", "yes" if r["accounted"] else "NO"])
    rt = result.get("rt_priority")
    t = report.table(["queues", "consumer", "pool", "sent", "delivered", "NIC drops",
                      "pool dry", "pkt buf", "loss min / median / max", "capture ns/frame",
                      "model", "driver", "preempted", "max gap us", "round us", "short: 0 lost",
                      "wall s", "exact"], rows)
    g = result["goal"]
    t += (f"\n\n{result['frames']:,} frames of 64 B per run at "
          f"{result['rate_pps']:,.0f} frames/s (10 GbE line rate), {FLOWS} flows, "
          f"{result['repeats']} repeats; ring N={result['ndesc']}, segment M="
          f"{result['segment']}; capture threads "
          f"{f'SCHED_FIFO {rt}' if rt else 'SCHED_OTHER'}"
          f"; medians unless min / median / max"
          f"\nNIC drops: frames the NIC dropped for want of an armed descriptor (QPRDC); pool "
          f"dry: times the driver had no free chunk to re-arm a segment; pkt buf: packet "
          f"buffer overflow (MPC)\ncapture ns/frame: the capture threads' CPU time per frame "
          f"sent; model: time the model spent catching up with the wire, on whichever thread "
          f"touched the port (mostly the capture threads); driver: capture minus model, shown "
          f"only when that is positive in every repeat\npreempted: the capture threads' "
          f"involuntary context switches during the run (the kernel gave their core to "
          f"something else)\nmax gap: the longest a frame waited for the port to be polled "
          f"(median / max over repeats), the capture thread away: preempted, or its CPU "
          f"taken by the host; the ring lasts {ring_us(result['ndesc']):,.0f} us at line "
          f"rate, and a longer gap drops frames on silicon too\nround: a capture thread's "
          f"longest round over its queues (median / max): while it is away no ring is "
          f"re-armed, even when another thread's register accesses keep the port's "
          f"deliveries on time (a small max gap)\nshort: 0 lost: the runs with no gap "
          f"and no round longer than the ring, and how many of them lost nothing\nexact: sent = delivered + taken back at stop + NIC drops + packet buffer "
          f"drops + on chip, in every run\ngoal (0 lost for chunks and pcap, WireCAP pool, "
          f"every repeat): {'met' if g['met'] else 'NOT met'}")
    return t


def run(args):
    frames = args.frames or (QUICK_FRAMES if args.quick else FULL_FRAMES)
    if frames < 1:
        raise WirecapError(f"--frames {frames}: give at least one frame")
    if args.repeats < 1:
        raise WirecapError(f"--repeats {args.repeats}: run each configuration at least once")
    for c in args.consumers:
        if c not in CONSUMERS:
            raise WirecapError(f"--consumers: {c!r} is not one of {', '.join(CONSUMERS)}")
    geometry(False, args.ndesc, args.segment, args.chunks)      # refuses a bad geometry now
    with unthrottled() as unthrottling, \
            (Spool() if "pcap" in args.consumers else contextlib.nullcontext()) as spool:
        rt = rt_priority(args.rt_priority)
        setup = prepare_hugepages(max(args.queues), args.ndesc, args.segment, args.chunks)
        for line in (setup, unthrottling if rt else None):
            if line and not args.json:
                print(line)
        runs = []
        t0 = time.monotonic()
        for rep in range(args.repeats):     # configurations take turns: noise hits them alike
            for q in args.queues:
                for consumer in args.consumers:
                    for ring_only in (False, True):
                        runs.append(dict(run_once(q, consumer, ring_only, frames, args.ndesc,
                                                  args.segment, args.chunks, rt_priority=rt,
                                                  spool=spool),
                                         repeat=rep))
    rows = summarize(runs)
    result = {"title": "wirecap bench linerate: 64-byte frames at 14.88 Mpps from the 82599 "
                       "model, captured end to end",
              "machine": report.machine(), "frames": frames, "repeats": args.repeats,
              "rate_pps": line_rate_pps(64), "ndesc": args.ndesc, "segment": args.segment,
              "chunks": args.chunks, "rt_priority": rt, "rows": rows, "goal": goals(rows),
              "runs": runs,
              "wall_s": time.monotonic() - t0}
    report.emit(result, text(result), args.json)
    return result
