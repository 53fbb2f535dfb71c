"""Arguments of ``wirecap bench paper`` (apart from paper.py so that building the command line
does not import the engine)."""
import argparse


def _ps(text_):
    try:
        ps = [int(float(v)) for v in text_.split(",")]
    except ValueError:
        ps = []
    if not ps or any(p < 1 for p in ps):
        raise argparse.ArgumentTypeError(f"{text_!r}: give burst sizes P, comma-separated "
                                         f"(e.g. 1e3,1e4,1e5)")
    return ps


def add_arguments(p):
    p.add_argument("--figure", required=True, choices=["8", "9", "10", "imbalance"])
    p.add_argument("--p", type=_ps, help="burst sizes P (default 1e3..1e7 in 1-2-5 steps)")
    p.add_argument("--quick", action="store_true", help="P = 1e3, 1e4, 1e5 (imbalance: 1 s)")
    p.add_argument("--rate", type=float,
                   help="Pin, frames/s (default 14.88e6, line rate; figures 8-10)")
    p.add_argument("--repeats", type=int, help="runs per burst size, the table shows the median "
                                                "(default 3; 1 with --quick or --p)")
    p.add_argument("--x", type=int, help="the handler's load x instead of the paper's "
                                         "(0 for figure 8, 300 for 9 and 10)")
    p.add_argument("--seconds", type=float, help="imbalance: seconds of traffic (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--png", metavar="FILE", help="draw the figure into FILE")
