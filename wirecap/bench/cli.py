"""``wirecap bench ...``"""


def _queues(text):
    try:
        qs = [int(x) for x in text.split(",")]
    except ValueError:
        qs = []
    if not qs or any(not 1 <= q <= 16 for q in qs):
        import argparse
        raise argparse.ArgumentTypeError(f"{text!r}: give RSS queue counts from 1 to 16, "
                                         f"comma-separated (e.g. 1,4)")
    return qs


def add_commands(sub):
    bench = sub.add_parser("bench", help="run a benchmark (table, or --json)")
    which = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    m = which.add_parser("model", help="frames/s the 82599 model delivers into receive rings")
    m.add_argument("--frames", type=int, default=2_000_000, help="frames per repeat")
    m.add_argument("--repeats", type=int, default=5)
    m.add_argument("--queues", type=_queues, default=[1, 4], help="RSS queue counts, e.g. 1,4")
    m.add_argument("--ring", type=int, default=1024, help="descriptors per receive ring")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(func=_run_model)

    p = which.add_parser("pmd", help="driver cost per packet: capture+recycle and forwarding")
    p.add_argument("--segments", type=lambda t: [int(x) for x in t.split(",")],
                   default=[64, 256, 1024], help="segment sizes M, e.g. 64,256,1024")
    p.add_argument("--rounds", type=int, default=50, help="timed rounds per configuration")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_pmd)

    a = which.add_parser("afpacket", help="AF_PACKET capture vs tcpdump and pcapy-ng: CPU per "
                                          "packet, loss in bursts (veth + tcpreplay; root)")
    from . import afpacket
    afpacket.add_arguments(a)
    a.set_defaults(func=_run_afpacket)

    a = which.add_parser("api", help="packets/s delivered to Python: loop, chunk iterator, "
                                     "and pcapy-ng's loop as the reference")
    a.add_argument("--rounds", type=int, default=100, help="staged batches per repeat")
    a.add_argument("--repeats", type=int, default=5)
    a.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a.set_defaults(func=_run_api)

    h = which.add_parser("handler", help="pkt_handler / multi_pkt_handler: the processing "
                                         "rate Pp at load x, one handler thread per queue")
    h.add_argument("--x", type=int, default=300, help="units of work per packet")
    h.add_argument("--queues", type=int, default=1, help="receive queues, one handler each")
    h.add_argument("--rate", type=float, default=1e6, help="offered frames/s")
    h.add_argument("--seconds", type=float, default=1.0, help="seconds per repeat")
    h.add_argument("--repeats", type=int, default=3)
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    h.set_defaults(func=_run_handler)

    lr = which.add_parser("linerate", help="64-byte frames at 14.88 Mpps from the model, "
                                           "captured end to end: loss, CPU per frame")
    lr.add_argument("--frames", type=lambda t: int(float(t)), default=None,
                    help="frames per run (default 1e8; 1e7 with --quick)")
    lr.add_argument("--quick", action="store_true", help="10^7 frames per run")
    lr.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    lr.add_argument("--queues", type=_queues, default=[1, 4], help="RSS queue counts, e.g. 1,4")
    lr.add_argument("--consumers", type=lambda t: t.split(","),
                    default=["chunks", "pcap", "loop", "handler"],
                    help="comma-separated: chunks, pcap, loop, handler")
    # N: the most Linux's ixgbe takes (ethtool -G), 275 us at line rate on one queue; R: the
    # paper's larger pool (Fig. 9), 8.6 ms of line rate per queue, where R = 100 holds 1.7 ms
    # (less than an application core lost to a kernel thread's two ticks)
    lr.add_argument("--ndesc", type=int, default=4096,
                    help="descriptors per receive ring N (default 4096)")
    lr.add_argument("--segment", type=int, default=256, help="descriptor segment size M")
    lr.add_argument("--chunks", type=int, default=500,
                    help="WireCAP's pool size R (default 500)")
    lr.add_argument("--rt-priority", type=int, default=None, metavar="N",
                    help="capture threads under SCHED_FIFO at N (default: 10 as root, with "
                         "real-time throttling off while the runs last; 0: ordinary "
                         "scheduling)")
    lr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lr.set_defaults(func=_run_linerate)

    g = which.add_parser("gaps", help="how long this machine takes a polling CPU away: the "
                                      "floor under any capture thread's losses")
    g.add_argument("--seconds", type=float, default=5.0, help="seconds per CPU")
    g.add_argument("--cpus", type=lambda t: [int(c) for c in t.split(",")], default=None,
                   help="CPUs to probe, one after another, e.g. 0,1 (default: every one)")
    g.add_argument("--rt-priority", type=int, default=None, metavar="N",
                   help="probe under SCHED_FIFO at N (default: 10 as root, with real-time "
                        "throttling off; 0: ordinary scheduling)")
    g.add_argument("--json", action="store_true", help="print JSON instead of a table")
    g.set_defaults(func=_run_gaps)

    pp = which.add_parser("paper", help="the paper's experiments: --figure 8, 9, 10 or "
                                        "imbalance (table, --json, --png)")
    from .paper_args import add_arguments
    add_arguments(pp)
    pp.set_defaults(func=_run_paper)


def _run_linerate(args):
    from . import linerate
    linerate.run(args)


def _run_gaps(args):
    from . import gaps
    gaps.run(args)


def _run_handler(args):
    from . import handler
    handler.run(args)


def _run_paper(args):
    from . import paper
    paper.run(args)


def _run_api(args):
    from . import api
    api.run(args)


def _run_afpacket(args):
    from . import afpacket
    afpacket.run(args)


def _run_pmd(args):
    from . import pmd
    pmd.run(args)


def _run_model(args):
    from . import model
    model.run(args)
