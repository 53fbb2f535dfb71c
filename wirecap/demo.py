"""``wirecap demo``: what wirecap is for, in two captures on the 82599 model.

1. Line rate: the model's wire plays 64-byte frames at 10 GbE line rate (14.88 Mpps) into RSS
   queues; the chunk iterator reads every one. Every frame is accounted for: delivered, or
   dropped and counted by the NIC.
2. A burst into a slow consumer: the same burst of P frames at line rate into one queue read
   by ``pkt_handler`` at a heavy load x, once with a ring-only pool (R = N/M + 1, what DPDK or
   netmap buffer) and once with WireCAP's ring buffer pool, side by side with the longest
   loss-free burst Pin*R*M/(Pin - Pp) computed from the measured rates.

Every number printed is measured in this run; nothing is a constant.
"""
from __future__ import annotations

from .errors import WirecapError

RING, SEGMENT = 1024, 256         # the paper's ring, for the burst
LINE_RATE_RING = 4096           # the line-rate capture's: 275 us of line rate per queue


def add_commands(sub):
    p = sub.add_parser("demo", help="capture 64-byte frames at line rate through the 82599 "
                                    "model, then a burst into a slow consumer, ring-only "
                                    "against WireCAP's pool")
    p.add_argument("--frames", type=lambda t: int(float(t)), default=10 ** 7,
                   help="frames of the line-rate capture (default 1e7)")
    p.add_argument("--queues", type=int, default=4, help="RSS receive queues (1-16)")
    p.add_argument("--ndesc", type=int, default=LINE_RATE_RING,
                   help="descriptors per ring of the line-rate capture (256-8192; default "
                        f"{LINE_RATE_RING}: a ring outlasts a scheduler hiccup on a shared "
                        "machine)")
    p.add_argument("--burst", type=lambda t: int(float(t)), default=100_000,
                   help="frames P of the burst into the slow consumer")
    p.add_argument("--x", type=int, default=300, help="the slow consumer's units of work per "
                                                      "packet (the paper's heavy load: 300)")
    p.add_argument("--chunks", type=int, default=500, help="WireCAP's pool size R for the burst")
    p.add_argument("--rt-priority", type=int, default=None, metavar="N",
                   help="line-rate capture thread under SCHED_FIFO at N (default: 10 as root; "
                        "0: ordinary scheduling)")
    p.set_defaults(func=demo)


def _n(v):
    return f"{v:,}"


def line_rate_part(frames, queues, ndesc=LINE_RATE_RING, rt_priority=None):
    """Run the line-rate capture; returns its row (see bench.linerate.run_once)."""
    from .bench import linerate
    return linerate.run_once(queues, "chunks", False, frames, ndesc, SEGMENT, 100,
                             snapshot=True, rt_priority=rt_priority)


def line_rate_lines(row):
    """What the line-rate capture says, every figure taken from ``row``."""
    lines = [f"sent {_n(row['sent'])} frames of 64 B at {row['rate_pps'] / 1e6:.2f} Mpps "
             f"into {row['queues']} RSS queue(s), {row['wall_s']:.2f} s",
             f"captured {_n(row['delivered'])}, dropped by the NIC {_n(row['lost'])}"
             f" ({_n(row['dropped_ring'])} for want of a descriptor, "
             f"{_n(row['dropped_packet_buffer'])} in the packet buffer)"
             + (f", taken back at stop {_n(row['discarded'])}" if row["discarded"] else ""),
             "every frame accounted for" if row["accounted"] else
             "MISMATCH: frames went missing"]
    if row["lost"] == 0:
        lines.append(f"=> {_n(row['sent'])} frames at line rate, 0 lost.")
    else:
        why = ("the pool ran dry (the reader held every chunk)" if row["pool_dry_events"] else
               "the capture thread came too late to re-arm the ring (the pool never ran dry)")
        lines.append(f"=> {_n(row['lost'])} of {_n(row['sent'])} frames lost "
                     f"({100 * row['loss']:.3f} %): {why}.")
    if row["capture_ns_per_frame"] is not None:
        lines.append(f"the capture threads spent {row['capture_ns_per_frame']:.1f} ns of CPU "
                     f"per frame"
                     + (f"; the model spent {row['model_ns_per_frame']:.1f} ns per frame "
                        f"catching up with the wire"
                        if row["model_ns_per_frame"] is not None else ""))
    return lines


def burst_part(P, x, chunks):
    """The same burst twice: ring-only and WireCAP's pool. Returns (ring-only, wirecap) runs."""
    from .bench import paper
    runs = []
    for cfg in (("ring-only", SEGMENT, RING // SEGMENT + 1), (None, SEGMENT, chunks)):
        runs.append(dict(paper.run_burst(cfg, P, None, x), label=paper.label(cfg),
                         capacity=cfg[1] * cfg[2], M=cfg[1], R=cfg[2]))
    return runs


def burst_lines(runs, x):
    from .bench import paper
    P = runs[0]["P"]
    lines = [f"a burst of {_n(P)} frames at line rate into one queue read by pkt_handler at "
             f"x={x}:", ""]
    head = ["", *(r["label"] for r in runs)]
    rows = [["buffers R*M", *(_n(r["capacity"]) for r in runs)],
            ["Pin measured (frames/s)", *(f"{r['pin_pps']:,.0f}" for r in runs)],
            ["Pp measured (frames/s)", *(f"{r['pp_pps']:,.0f}" if r["pp_pps"] else "-"
                                         for r in runs)]]
    bounds = [paper.bound(r["pin_pps"], r["pp_pps"], r["M"], r["R"]) for r in runs]
    rows += [["loss-free up to Pin*R*M/(Pin-Pp)", *(f"{b:,.0f}" if b else "any P"
                                                     for b in bounds)],
             ["processed + buffered", *(_n(r["processed"] + r["buffered"]) for r in runs)],
             ["lost", *(f"{_n(r['dropped'])} ({100 * r['drop_rate']:.1f} %)" for r in runs)],
             ["every frame accounted for", *("yes" if r["accounted"] else "NO" for r in runs)]]
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)][1:]
    for r in [head] + rows:
        lines.append(r[0].ljust(w0) + "  " + "  ".join(str(c).rjust(w)
                                                        for c, w in zip(r[1:], widths)))
    ring, wc = runs
    lines.append("")
    lines.append(f"=> ring-only lost {100 * ring['drop_rate']:.1f} % of the burst; WireCAP's "
                 f"pool lost {'nothing' if wc['dropped'] == 0 else _n(wc['dropped'])}.")
    return lines


ADVICE = [
    "wirecap bench linerate --quick --ndesc 4096  # every consumer, 1 and 4 queues",
    "wirecap bench paper --figure 9 --quick         # the paper's Figure 9 on the model",
    "wirecap capture -i sim:0 --queues 4 --ndesc 4096 --rt-priority 10 "
    "--traffic count=1e7,size=64 "
    "-w /dev/shm/x.pcap",
]


def demo(args):
    if not 1 <= args.queues <= 16:
        raise WirecapError(f"--queues {args.queues}: RSS spreads over 1 to 16 queues")
    if args.frames < 1 or args.burst < 1 or args.x < 0:
        raise WirecapError("--frames and --burst must be positive, --x at least 0")
    if not SEGMENT <= args.ndesc <= 8192 or args.ndesc % SEGMENT:
        raise WirecapError(f"--ndesc {args.ndesc}: {SEGMENT} to 8192 descriptors, a multiple of the "
                           f"segment M={SEGMENT}; give e.g. --ndesc 4096")
    from .bench import linerate
    with linerate.unthrottled() as unthrottling:
        _demo(args, linerate, unthrottling)


def _demo(args, linerate, unthrottling):
    rt = linerate.rt_priority(args.rt_priority)
    setup = linerate.prepare_hugepages(args.queues, args.ndesc, SEGMENT, 100)
    for line in (setup, unthrottling if rt else None):
        if line:
            print(line)
    print(f"1. line rate: sim:0, the 82599 model, {args.queues} RSS queue(s), rings of "
          f"{args.ndesc} descriptors, pools of R=100 chunks x M={SEGMENT}, capture thread "
          f"{f'under SCHED_FIFO {rt}' if rt else 'scheduled as usual'}\n")
    row = line_rate_part(args.frames, args.queues, args.ndesc, rt)
    print(row["snapshot"])
    print("\n" + "\n".join(line_rate_lines(row)))
    print(f"\n2. a burst into a slow consumer: ring-only (R = N/M + 1 = "
          f"{RING // SEGMENT + 1}, as DPDK or netmap buffer a ring's worth) against WireCAP's "
          f"pool (R = {args.chunks})\n")
    runs = burst_part(args.burst, args.x, args.chunks)
    print("\n".join(burst_lines(runs, args.x)))
    print("\nmore:\n  " + "\n  ".join(ADVICE))
    if not row["accounted"] or not all(r["accounted"] for r in runs):
        raise WirecapError("frames went missing: this is a bug, please report it")
