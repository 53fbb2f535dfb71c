"""``wirecap bench paper``: the paper's §4 experiments against the 82599 model.

Figures 8, 9 and 10: one receive queue (N = 1024 descriptors) captured by a ``pkt_handler``
while the model's wire plays a burst of P 64-byte frames at rate Pin; the drop rate is what
the NIC counted (QPRDC) over P. Configurations are WireCAP-B-(M,R) and a ring-only baseline
whose buffering is the NIC ring (the driver needs one spare chunk: R = N/M + 1, M = 64).
``imbalance``: four queues, one of them receiving most of the flows, a handler per queue at a
fixed x; basic mode against advanced mode at several offloading thresholds T.

How a burst is played. The model runs on the driver's clock: the wire holds each frame's
arrival time at Pin (line rate by default), and the model delivers every frame due whenever
the capture thread touches the device, each meeting the ring as silicon would have at its
arrival time. Nothing waits for the capture thread: if it comes too late to re-arm a segment,
the NIC drops and counts, as it would on the paper's testbed.

Rates. Pin defaults to 14.88 Mpps, the paper's; the handler runs at the paper's x (0 for
Figure 8, 300 for Figures 9 and 10) and its processing rate Pp is measured in every run and
reported, as is Pin; the loss-free bound Pin*R*M/(Pin - Pp) is computed from the measured
medians. One unit of work costs about as much here as the paper's (see ``_handler``), so Pp
lands near the paper's 38,844 frames/s.

Accounting is exact per run: when the burst has been played (drops are final then) the handler
stops; the packets still buffered (ring, capture queue, the handler's unfinished chunk) are
read out and counted, and sent = processed + buffered + dropped is checked.
"""
from __future__ import annotations

import sys
import time

from .. import _pmd, sim
from ..engine import Engine
from ..errors import WirecapError
from ..sim import TrafficProfile, line_rate_pps
from . import handler, report
from .linerate import rt_priority, unthrottled

N = 1024
PAPER_PIN = 14_880_000
PAPER_PP = 38_844                       # pkt_handler at x = 300 on 2.4 GHz (§4)
PAPER_RATIO = PAPER_PP / PAPER_PIN
RING_ONLY = ("ring-only", 64, N // 64 + 1)
FIGURES = {
    "8": {"title": "Figure 8: basic mode, no processing load (x = 0)", "x": 0,
          "configs": [(None, 64, 100), (None, 128, 100), (None, 256, 100), (None, 256, 500),
                      RING_ONLY]},
    "9": {"title": "Figure 9: basic mode, heavy processing load (x = 300)", "x": 300,
          "configs": [(None, 256, 100), (None, 256, 500), RING_ONLY]},
    "10": {"title": "Figure 10: R*M fixed, heavy processing load (x = 300)", "x": 300,
           "configs": [(None, 64, 400), (None, 128, 200), (None, 256, 100)]},
}
FULL_P = [m * 10 ** e for e in range(3, 7) for m in (1, 2, 5)] + [10 ** 7]
QUICK_P = [1000, 10_000, 100_000]
RATE_MIN_P = 10_000                     # shorter bursts are over before a rate settles
PAPER_NOTES = {
    "8": "no drops for any WireCAP-B configuration, nor for NETMAP and DNA (ring-only)",
    "9": "WireCAP-B-(256,500) no drops at P=100,000; WireCAP-B-(256,100) 71% drops there; "
         "DNA (ring-only) 15% drops at P=6,000",
    "10": "(64,400), (128,200), (256,100) have approximately the same drop rates at every P",
    "imbalance": "basic mode drops under long-term imbalance; advanced mode offloads to "
                 "buddies and avoids the drops",
}


def label(cfg):
    name, m, r = cfg
    return f"{name} ({m},{r})" if name else f"WireCAP-B-({m},{r})"


class Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total, enabled=None, out=None):
        self.out = out or sys.stderr
        self.enabled = self.out.isatty() if enabled is None else enabled
        self.total, self.done, self.what, self._shown = max(total, 1), 0, "", 0.0

    def show(self, extra=0, what=None, force=False):
        if what is not None:
            self.what = what
        now = time.monotonic()
        if not self.enabled or (not force and now - self._shown < 0.1):
            return
        self._shown = now
        f = min(1.0, (self.done + extra) / self.total)
        bar = "#" * int(30 * f)
        self.out.write(f"\r[{bar:<30}] {f:6.1%} {self.what[:60]:<60}")
        self.out.flush()

    def close(self):
        if self.enabled:
            self.out.write("\r" + " " * 104 + "\r")
            self.out.flush()


# ----------------------------------------------------------------------------- playing
def play(eng, profile, progress=None):
    """Play ``profile`` on the wire of ``eng``'s model port and wait until it is played out
    (its last frame due, delivered or dropped: drops are final then). Returns the wire's
    measurements."""
    wire = eng.nics[0].port.wire
    wire.play(profile)
    while wire.running or wire.sent < profile.count:
        if progress is not None:
            progress.show(wire.sent)
        time.sleep(0.002)
    st = wire.stats()
    return {"sent": st["sent"], "elapsed_s": st["elapsed_s"], "pin_pps": st["rate_pps"]}


def settle(eng, handlers, timeout=10.0):
    """Stop the handlers and read out what is still buffered; returns (processed, buffered,
    dropped, delivered) summed over the engine's queues, and whether it all added up."""
    handlers.stop()
    buffered = sum(h.left_over for h in handlers)
    processed = handlers.processed
    deadline = time.monotonic() + timeout
    while True:
        st = eng.stats()
        delivered = sum(s["nic_delivered"] for s in st)
        dropped = sum(s["nic_dropped"] for s in st)
        if processed + buffered >= delivered or time.monotonic() > deadline:
            break
        got = 0
        for q in range(len(eng.workers)):
            while (c := eng.next_chunk(q, timeout=0.002)) is not None:
                got += len(c)
                c.release()
        buffered += got
    return processed, buffered, dropped, delivered, processed + buffered == delivered


def run_burst(cfg, P, pin, x, max_pps=0, flows=16, progress=None):
    """One burst of P 64-byte frames at ``pin`` frames/s (None: line rate) into a single queue
    of geometry ``cfg``, processed by a handler at load ``x`` (capped at ``max_pps`` if
    given)."""
    _, m, r = cfg
    sim.reset()                         # every run starts from a power-on model port
    t0 = time.monotonic()
    eng = Engine("sim:0", queues=1, segment=m, chunks=r, ndesc=N, flush_us=1000,
                 rt_priority=rt_priority())
    try:
        eng.start()
        hs = handler.MultiHandler([handler.PktHandler(eng, 0, x, max_pps).start()])
        sent = play(eng, TrafficProfile(count=P, sizes=(64,), flows=flows, rate=pin), progress)
        processed, buffered, dropped, delivered, settled = settle(eng, hs)
        h = hs[0].stats()
    finally:
        eng.close()
    return {"P": P, "sent": sent["sent"], "processed": processed, "buffered": buffered,
            "dropped": dropped, "drop_rate": dropped / sent["sent"],
            "accounted": settled and sent["sent"] == processed + buffered + dropped,
            "pin_pps": sent["pin_pps"], "pp_pps": h["rate_pps"] if x else None,
            "wall_s": time.monotonic() - t0}


def bound(pin, pp, m, r):
    """The longest loss-free burst, Pin*R*M/(Pin - Pp) (None: no bound, Pp >= Pin)."""
    return pin * r * m / (pin - pp) if pp is not None and pin > pp else None


def figure(fig, ps=None, pin=None, x=None, repeats=1, progress=True):
    """Run one of Figures 8, 9 and 10, each burst ``repeats`` times, at ``pin`` frames/s
    (None: line rate) with the handler at the paper's x (or ``x``); returns the result
    (``text`` and ``png`` render it)."""
    spec = FIGURES[str(fig)]
    ps = list(ps or FULL_P)
    unit = handler.calibrate()
    load_x = spec["x"] if x is None else x
    bar = Progress(len(spec["configs"]) * sum(ps) * repeats,
                   enabled=None if progress else False)
    t0 = time.monotonic()
    out = []
    try:
        for cfg in spec["configs"]:
            rows, drops = [], []
            for p in ps:
                for k in range(repeats):
                    bar.show(what=f"fig {fig}: {label(cfg)} P={p:,}" +
                             (f" ({k + 1}/{repeats})" if repeats > 1 else ""), force=True)
                    rows.append(dict(run_burst(cfg, p, pin, load_x, progress=bar),
                                     repeat=k))
                    bar.done += p
                drops.append({"P": p, **report.spread([r["drop_rate"] for r in rows[-repeats:]])})
            # rates from bursts long enough to mean something (P >= 10,000 when there are any)
            long_ = [row for row in rows if row["P"] >= RATE_MIN_P] or rows
            pins = [row["pin_pps"] for row in long_]
            pps = [row["pp_pps"] for row in long_ if row["pp_pps"]] or \
                [row["pp_pps"] for row in rows if row["pp_pps"]]
            pin_med = report.spread(pins)["median"]
            pp_med = report.spread(pps)["median"] if pps else None
            out.append({"label": label(cfg), "M": cfg[1], "R": cfg[2],
                        "capacity": cfg[1] * cfg[2], "ring_only": cfg[0] is not None,
                        "pin_pps": report.spread(pins),
                        "pp_pps": report.spread(pps) if pps else None,
                        "loss_free_bound": bound(pin_med, pp_med, cfg[1], cfg[2]),
                        "drop_rate": drops, "runs": rows})
    finally:
        bar.close()
    return {"title": f"wirecap bench paper: {spec['title']}", "figure": str(fig),
            "machine": report.machine(), "ndesc": N, "frame_size": 64,
            "rate_target_pps": pin or line_rate_pps(64), "line_rate_pps": line_rate_pps(64),
            "repeats": repeats, "x": load_x, "unit_ns": unit,
            "paper": {"pin_pps": PAPER_PIN, "pp_pps": PAPER_PP if spec["x"] else None,
                      "x": spec["x"], "result": PAPER_NOTES[str(fig)]},
            "wall_s": time.monotonic() - t0, "configs": out}


# ----------------------------------------------------------------------------- imbalance
def flow_queues(flows, queues, key=_pmd.DATASHEET_RSS_KEY):
    """Which RSS queue each flow of a profile lands on (Toeplitz hash, round-robin RETA)."""
    p = TrafficProfile(flows=flows)
    out = []
    for f in range(flows):
        src, dst, sport, dport = p.flow_tuple(f)
        data = bytes(map(int, src.split("."))) + bytes(map(int, dst.split("."))) + \
            sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
        out.append((sim.toeplitz(key, data) & 0x7F) % queues)
    return out


def skewed_weights(flows, queues, heavy_share):
    """Flow weights giving queue 0 ``heavy_share`` of the frames, the others equal parts."""
    fq = flow_queues(flows, queues)
    per_q = [fq.count(q) for q in range(queues)]
    if 0 in per_q:
        raise WirecapError(f"{flows} flows leave a queue without traffic: use more flows")
    share = [heavy_share] + [(1 - heavy_share) / (queues - 1)] * (queues - 1)
    return tuple(share[q] / per_q[q] for q in fq)


IMBALANCE = {"queues": 4, "heavy_share": 0.9, "M": 64, "R": 64, "flows": 32, "x": 30,
             "handler_pps": 20_000,             # each handler's rate: a core of its own
             "overload": 1.5,                   # queue 0's mean rate / one handler's rate
             "burst": 1000,                     # frames per burst at line rate
             "modes": [("basic", None), ("advanced", 0.2), ("advanced", 0.5),
                       ("advanced", 0.8)]}


def run_imbalance(mode, threshold, frames, rate, spec=IMBALANCE, progress=None):
    sim.reset()                         # every run starts from a power-on model port
    t0 = time.monotonic()
    q = spec["queues"]
    eng = Engine("sim:0", queues=q, mode=mode, threshold=threshold or 0.6, segment=spec["M"],
                 chunks=spec["R"], ndesc=N, flush_us=1000, rt_priority=rt_priority())
    weights = skewed_weights(spec["flows"], q, spec["heavy_share"])
    try:
        eng.start()
        hs = handler.multi_pkt_handler(eng, spec["x"], max_pps=spec["handler_pps"])
        sent = play(eng, TrafficProfile(count=frames, sizes=(64,), flows=spec["flows"],
                                        weights=weights, rate=rate,
                                        burst=min(spec["burst"], frames)), progress)
        processed, buffered, dropped, delivered, settled = settle(eng, hs)
        st = eng.stats()
    finally:
        eng.close()
    return {"mode": mode, "threshold": threshold,
            "label": "WireCAP-B" if mode == "basic" else f"WireCAP-A (T={threshold})",
            "sent": sent["sent"], "processed": processed, "buffered": buffered,
            "dropped": dropped, "drop_rate": dropped / sent["sent"],
            "accounted": settled and sent["sent"] == processed + buffered + dropped,
            "rate_pps": sent["pin_pps"],
            "queues": [{"queue": i, "packets": s["nic_delivered"] + s["nic_dropped"],
                        "dropped": s["nic_dropped"], "offloaded_out": s["offloaded_out"],
                        "offloaded_in": s["offloaded_in"],
                        "capture_queue_peak": s["capture_queue_peak"],
                        "processed": hs[i].processed, "pp_pps": hs[i].rate_pps}
                       for i, s in enumerate(st)],
            "wall_s": time.monotonic() - t0}


def imbalance(seconds=3.0, progress=True, spec=IMBALANCE):
    """Basic vs advanced mode under long-term imbalance. Four handlers cannot each have a
    core on a small machine, so each stands for one: it does x units of work per packet and
    is capped at ``handler_pps`` (the cap, not CPU contention, sets its rate). Queue 0 gets
    ``overload`` times what its handler processes; the four together have room to spare.
    Frames come in bursts of ``burst`` at line rate (Pin = 14.88 Mpps), spaced to keep the
    mean rate."""
    rate = spec["handler_pps"] * spec["overload"] / spec["heavy_share"]
    frames = int(rate * seconds)
    bar = Progress(frames * len(spec["modes"]), enabled=None if progress else False)
    t0 = time.monotonic()
    rows = []
    try:
        for mode, t in spec["modes"]:
            bar.show(what=f"imbalance: {mode}" + (f" T={t}" if t else ""), force=True)
            rows.append(run_imbalance(mode, t, frames, rate, spec, bar))
            bar.done += frames
    finally:
        bar.close()
    return {"title": "wirecap bench paper: long-term load imbalance, basic vs advanced mode",
            "figure": "imbalance", "machine": report.machine(), "ndesc": N, "frame_size": 64,
            "rate_target_pps": rate, "line_rate_pps": line_rate_pps(64), "x": spec["x"],
            "handler_pps": spec["handler_pps"],
            "spec": {k: v for k, v in spec.items() if k != "modes"}, "seconds": seconds,
            "paper": {"result": PAPER_NOTES["imbalance"]},
            "wall_s": time.monotonic() - t0, "runs": rows}


# ----------------------------------------------------------------------------- output
def _pct(v):
    return f"{100 * v:.1f}%" if v >= 0.001 or v == 0 else f"{100 * v:.3f}%"


def text(result):
    if result["figure"] == "imbalance":
        return _imbalance_text(result)
    ps = [d["P"] for d in result["configs"][0]["drop_rate"]]
    rows = []
    for c in result["configs"]:
        b = c["loss_free_bound"]
        rows.append([c["label"], f"{c['capacity']:,}", f"{b:,.0f}" if b else "none"] +
                    [_pct(d["median"]) for d in c["drop_rate"]])
    t = report.table(["configuration", "R*M", "bound P"] + [f"P={p:g}" for p in ps], rows)
    rates = []
    for c in result["configs"]:
        pin, pp = c["pin_pps"], c["pp_pps"]
        rates.append([c["label"], f"{pin['min']:,.0f}", f"{pin['median']:,.0f}",
                      f"{pin['max']:,.0f}"] +
                     ([f"{pp['min']:,.0f}", f"{pp['median']:,.0f}", f"{pp['max']:,.0f}",
                       f"{pp['median'] / pin['median']:.5f}"] if pp else ["-"] * 4) +
                     ["yes" if all(row["accounted"] for row in c["runs"]) else "NO"])
    if result["repeats"] > 1:
        t += (f"\n(median of {result['repeats']} runs per cell; min..max where they differ: " +
              "; ".join(f"{c['label']} P={d['P']:g} {_pct(d['min'])}..{_pct(d['max'])}"
                        for c in result["configs"] for d in c["drop_rate"]
                        if d["max"] - d["min"] >= 0.001) + ")")
    t += ("\n\nmeasured rates (frames/s; min/median/max over the runs with P >= "
          f"{RATE_MIN_P:,} where there are any)\n")
    t += report.table(["configuration", "Pin min", "Pin median", "Pin max", "Pp min",
                       "Pp median", "Pp max", "Pp/Pin", "exact"], rates)
    u = result["unit_ns"]
    t += (f"\n\nring N={result['ndesc']}, 64-byte frames, target Pin "
          f"{result['rate_target_pps']:,.0f} frames/s (line rate "
          f"{result['line_rate_pps']:,.0f}); handler x={result['x']} "
          f"(one unit {u['median']:.1f} ns, {u['min']:.1f}..{u['max']:.1f}); the paper: "
          f"x={result['paper']['x']}" + (f", Pp {PAPER_PP:,} frames/s, Pp/Pin "
                                           f"{PAPER_RATIO:.5f}" if result['paper']['x'] else ""))
    t += (f"\nexact: sent = processed + buffered + NIC-counted drops in every run; bound P = "
          f"Pin*R*M/(Pin-Pp) from the measured medians\npaper: {result['paper']['result']}"
          f"\nwall time {result['wall_s']:.1f} s")
    return t


def _imbalance_text(result):
    rows = []
    for r in result["runs"]:
        qs = r["queues"]
        rows.append([r["label"], _pct(r["drop_rate"]), f"{r['dropped']:,}",
                     " ".join(f"{q['packets'] / r['sent']:.2f}" for q in qs),
                     " ".join(_pct(q["dropped"] / max(q["packets"], 1)) for q in qs),
                     f"{sum(q['offloaded_out'] for q in qs):,}",
                     " ".join(str(q["capture_queue_peak"]) for q in qs),
                     f"{r['rate_pps']:,.0f}",
                     " ".join(f"{q['pp_pps']:,.0f}" for q in qs),
                     "yes" if r["accounted"] else "NO"])
    s = result["spec"]
    t = report.table(["mode", "drop rate", "dropped", "share per queue", "drops per queue",
                      "offloaded", "capture-queue peak", "mean rate", "Pp per handler",
                      "exact"], rows)
    t += (f"\n\n{s['queues']} queues, R={s['R']} chunks of M={s['M']}, {s['flows']} flows, queue 0"
          f" gets {s['heavy_share']:.0%} of {result['seconds']:g} s at a mean "
          f"{result['rate_target_pps']:,.0f} frames/s, in bursts of {s['burst']:,} at line "
          f"rate ({result['line_rate_pps']:,.0f} frames/s); every handler x={result['x']}, capped "
          f"at {result['handler_pps']:,} frames/s (queue 0's load is {s['overload']}x that)"
          f"\npaper: {result['paper']['result']}\nwall time {result['wall_s']:.1f} s")
    return t


def png(result, path):
    """Draw the result in the paper's style: drop rate (%) against log-scale P."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if result["figure"] == "imbalance":
        runs = result["runs"]
        bars = ax.bar([r["label"] for r in runs], [100 * r["drop_rate"] for r in runs],
                      color=["#c44e52"] + ["#4c72b0"] * (len(runs) - 1))
        ax.bar_label(bars, labels=[_pct(r["drop_rate"]) for r in runs], fontsize=8)
        ax.set_ylabel("Packet drop rate (%)")
        ax.set_title("Long-term load imbalance: basic vs advanced mode", fontsize=10)
    else:
        for i, c in enumerate(result["configs"]):
            color = f"C{i}"
            d = c["drop_rate"]
            xs = [v["P"] for v in d]
            med = [100 * v["median"] for v in d]
            err = [[m - 100 * v["min"] for m, v in zip(med, d)],
                   [100 * v["max"] - m for m, v in zip(med, d)]]
            # distinct markers of shrinking size: curves that coincide (Figure 10) stay visible
            ax.errorbar(xs, med, yerr=err if result["repeats"] > 1 else None, marker="osD^v"[i],
                        ms=8 - 1.5 * i, mfc="none" if i % 2 == 0 else color, capsize=2,
                        color=color, label=c["label"], ls="--" if c["ring_only"] else "-")
            b = c["loss_free_bound"]
            if b and xs[0] <= b <= xs[-1] * 10:
                ax.axvline(b, color=color, ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(-3, 103)
        ax.set_xlabel("Number of packets P (log scale)")
        ax.set_ylabel("Packet drop rate (%)")
        bounds = any(c["loss_free_bound"] for c in result["configs"])
        ax.set_title(f"{result['title'].split(': ', 1)[1]}\nPin {result['rate_target_pps']:,.0f}"
                     f" frames/s, x={result['x']}" +
                     ("; dotted: loss-free bound Pin·R·M/(Pin−Pp)" if bounds else ""),
                     fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args):
    if args.repeats is not None and args.repeats < 1:
        raise WirecapError(f"--repeats {args.repeats}: run each burst at least once")
    if args.rate is not None and not 0 < args.rate <= line_rate_pps(64) * 1.000001:
        raise WirecapError(f"--rate {args.rate:g}: give 0 < Pin <= {line_rate_pps(64):,.0f} "
                           f"frames/s (10 GbE line rate for 64-byte frames)")
    with unthrottled():                 # SCHED_FIFO capture threads as root, never throttled
        if args.figure == "imbalance":
            result = imbalance(args.seconds or (1.0 if args.quick else 3.0))
        else:
            ps = args.p or (QUICK_P if args.quick else None)
            repeats = args.repeats or (1 if args.quick or args.p else 3)
            result = figure(args.figure, ps, args.rate, args.x, repeats)
    if args.png:
        png(result, args.png)
    report.emit(result, text(result), args.json)
    return result
