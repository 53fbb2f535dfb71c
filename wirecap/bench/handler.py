"""The paper's tools: ``pkt_handler`` and ``multi_pkt_handler`` (§2.2 and §4).

``pkt_handler`` captures one queue of an engine and applies x units of work to every packet
(a unit is one FNV-1a pass over the packet's bytes, see ``_handler``); it reports the rate Pp
it achieves. ``multi_pkt_handler`` runs one such handler thread per queue in one process.

    with Engine("sim:0", queues=4) as eng:
        with multi_pkt_handler(eng, x=300) as hs:
            ...                                   # traffic
        print([h.rate_pps for h in hs])

``wirecap bench handler --x 300 --queues 4`` measures the rates against the model.
"""
from __future__ import annotations

import threading
import time

from ..errors import WirecapError
from . import _handler, report

unit_cost_ns = _handler.unit_cost_ns


def calibrate(repeats=5, length=60):
    """min/median/max wall ns of one unit of work over a ``length``-byte packet."""
    _handler.unit_cost_ns(length, 20000)                 # warm caches and the frequency
    return report.spread([_handler.unit_cost_ns(length) for _ in range(repeats)])


def x_for_rate(pps, unit_ns, length=60):
    """The x at which a handler would process ``pps`` packets/s given ``unit_ns`` per unit
    (each packet also costs one chunk-level share of overhead, ignored here)."""
    if pps <= 0:
        raise WirecapError(f"processing rate {pps!r}: must be positive")
    return max(1, round(1e9 / (pps * unit_ns)))


class PktHandler:
    """Capture queue ``queue`` of ``engine`` (chunks offloaded to it by buddies included) and
    apply ``x`` units of work to every packet, in a thread of its own until stop().

    processed       packets whose work was completed
    by_owner        processed packets per owner queue (advanced mode moves chunks)
    left_over       packets of the chunk that was interrupted by stop() (not processed)
    rate_pps        processed / busy time: the processing rate Pp while it had work
    max_pps         optional cap on the rate (the handler then stands for a core of its own)
    """

    def __init__(self, engine, queue=0, x=0, max_pps=0, poll_s=0.005):
        engine._worker(queue)                             # refuses a queue it does not have
        self.engine, self.queue, self.x, self.poll_s = engine, queue, x, poll_s
        self.work = _handler.Worker(x, max_pps)
        self.by_owner = {}
        self.left_over = 0
        self.first_ns = self.last_ns = None
        self.error = None
        self._thread = None

    def start(self):
        if self._thread is not None:
            raise WirecapError("this handler was started already: make a new one")
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"pkt_handler-{self.queue}")
        self._thread.start()
        return self

    def _run(self):
        try:
            while not self.work.stopped:
                c = self.engine.next_chunk(self.queue, timeout=self.poll_s)
                if c is None:
                    continue
                if self.first_ns is None:
                    self.first_ns = time.monotonic_ns()
                done = self.work.process(c)
                owner = c.owner.index
                self.by_owner[owner] = self.by_owner.get(owner, 0) + done
                self.left_over += len(c) - done
                self.last_ns = time.monotonic_ns()
                c.release()
        except BaseException as exc:    # reported by stop(): a thread cannot raise to anyone
            self.error = exc

    def stop(self, timeout=10.0):
        """Stop between two packets; returns once the thread has ended."""
        self.work.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise WirecapError(f"pkt_handler on queue {self.queue} did not stop within "
                                   f"{timeout} s")
        if self.error is not None:
            raise self.error

    @property
    def processed(self):
        return self.work.processed

    @property
    def busy_s(self):
        return self.work.busy_ns / 1e9

    @property
    def rate_pps(self):
        return self.work.processed / self.busy_s if self.work.busy_ns else 0.0

    def stats(self):
        return {"queue": self.queue, "x": self.x, "processed": self.processed,
                "by_owner": dict(sorted(self.by_owner.items())), "left_over": self.left_over,
                "chunks": self.work.chunks, "busy_s": self.busy_s, "rate_pps": self.rate_pps,
                "digest": f"{self.work.digest:016x}"}

    def __enter__(self):
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc):
        self.stop()


def pkt_handler(engine, queue=0, x=0, max_pps=0):
    """A started handler on one queue."""
    return PktHandler(engine, queue, x, max_pps).start()


class MultiHandler(list):
    """One ``PktHandler`` thread per queue, sharing this process (the paper's
    multi_pkt_handler). A list of the handlers; stop() stops them all."""

    def stop(self, timeout=10.0):
        for h in self:
            h.work.stop()                   # all at once: none waits for the others' joins
        errors = []
        for h in self:
            try:
                h.stop(timeout)
            except BaseException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    @property
    def processed(self):
        return sum(h.processed for h in self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def multi_pkt_handler(engine, x=0, queues=None, max_pps=0):
    """Started handlers, one per queue of ``engine`` (or per queue in ``queues``); ``x`` is one
    load for all or a list with one per queue; ``max_pps`` caps each handler's rate."""
    queues = list(range(len(engine.workers))) if queues is None else list(queues)
    xs = list(x) if isinstance(x, (list, tuple)) else [x] * len(queues)
    if len(xs) != len(queues):
        raise WirecapError(f"x: give one load or one per queue ({len(queues)})")
    return MultiHandler(PktHandler(engine, q, xq, max_pps).start() for q, xq in zip(queues, xs))


def measure(queues=1, x=300, rate=1e6, seconds=1.0, flows=64):
    """Per-queue processing rates of ``multi_pkt_handler`` at ``x`` while the model offers
    ``rate`` frames/s spread over ``queues`` by RSS (drops do not matter here)."""
    from .. import sim
    from ..engine import Engine
    from ..sim import TrafficProfile
    sim.reset()                                             # a power-on model port
    with Engine("sim:0", queues=queues) as eng:
        with multi_pkt_handler(eng, x) as hs:
            wire = eng.nics[0].port.wire
            wire.play(TrafficProfile(count=max(1, int(rate * seconds)), sizes=(64,),
                                     flows=flows, rate=rate))
            wire.wait()
    return [h.stats() for h in hs]


def run(args):
    if not 1 <= args.queues <= 16:
        raise WirecapError(f"--queues {args.queues}: RSS spreads over 1 to 16 queues")
    if args.x < 0 or args.repeats < 1 or args.seconds <= 0 or args.rate <= 0:
        raise WirecapError("--x must be >= 0; --repeats, --seconds and --rate positive")
    unit = calibrate()
    reps = [measure(args.queues, args.x, args.rate, args.seconds) for _ in range(args.repeats)]
    rows, results = [], []
    for q in range(args.queues):
        rates = [r[q]["rate_pps"] for r in reps if r[q]["processed"]]
        s = report.spread(rates) if rates else None
        results.append({"queue": q, "pp_pps": s,
                        "processed": [r[q]["processed"] for r in reps]})
        rows.append([q] + ([f"{s['min']:,.0f}", f"{s['median']:,.0f}", f"{s['max']:,.0f}",
                            f"{1e9 / s['median'] / max(args.x, 1):.1f}"] if s else ["-"] * 4) +
                     [f"{sum(r[q]['processed'] for r in reps) / args.repeats:,.0f}"])
    result = {"title": f"pkt_handler at x={args.x}: processing rate Pp per handler thread",
              "machine": report.machine(), "x": args.x, "queues": args.queues,
              "rate_offered_pps": args.rate, "seconds": args.seconds,
              "repeats": args.repeats, "unit_ns": unit, "results": results}
    text = report.table(["queue", "Pp min", "Pp median", "Pp max", "ns/unit in use",
                         "packets/repeat"], rows)
    text += (f"\n\none unit (FNV-1a over a 60-byte frame) alone: {unit['median']:.1f} ns "
             f"(min {unit['min']:.1f}, max {unit['max']:.1f}); the paper's 38,844 packets/s at "
             f"x=300 is 85.8 ns per unit\n{args.rate:,.0f} frames/s offered for "
             f"{args.seconds:g} s x {args.repeats} repeats; Pp = packets processed / time spent "
             f"processing")
    report.emit(result, text, args.json)
    return result
