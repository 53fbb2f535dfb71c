"""`wirecap bench gaps`: how long this machine takes a polling thread's CPU away.

A capture thread that polls loses frames on any NIC once it is kept from its ring longer
than the ring lasts (275 us for 4,096 descriptors at 10 GbE line rate), whatever the driver
does. This runs the loop a capture thread would (`_gaps.spin`, clock reads only) on each CPU in
turn, scheduled as usual or, as root, under SCHED_FIFO with real-time throttling off (as the
line-rate bench runs its capture threads), and counts the gaps: in a VM they include the time
the host gives the vCPU to others, which the guest sees as neither preemption nor steal.
"""
from __future__ import annotations

import os

from ..errors import WirecapError
from . import report
from ._gaps import LIMITS_US, spin
from .linerate import rt_priority, unthrottled


def probe(cpu, seconds, rt):
    """One CPU: the gap counts of `_gaps.spin` there, under SCHED_FIFO ``rt`` (or as usual)."""
    mask, policy = os.sched_getaffinity(0), os.sched_getscheduler(0)
    param = os.sched_getparam(0)
    os.sched_setaffinity(0, {cpu})
    try:
        if rt:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt))
        counts, longest, lost, ran = spin(seconds)
    finally:
        os.sched_setscheduler(0, policy, param)
        os.sched_setaffinity(0, mask)
    return {"cpu": cpu, "policy": f"SCHED_FIFO {rt}" if rt else "SCHED_OTHER",
            "seconds": ran / 1e9, "gaps": dict(zip(LIMITS_US, counts)),
            "longest_us": longest / 1000, "lost": lost / ran if ran else 0.0}


def text(result):
    rows = [[r["cpu"], r["policy"], f"{r['seconds']:.1f}",
             *(f"{r['gaps'][k]:,}" for k in LIMITS_US), f"{r['longest_us']:,.0f}",
             f"{100 * r['lost']:.2f}%"] for r in result["rows"]]
    t = report.table(["cpu", "scheduling", "s", *(f"> {k} us" for k in LIMITS_US),
                      "longest us", "time in gaps"], rows)
    return (t + "\n\ngaps: times the loop found the clock had moved more than that between "
            "two reads (nothing else runs in it); time in gaps: the share of the run spent "
            f"in gaps over {LIMITS_US[0]} us. A ring of N descriptors lasts N / 14.88 us at "
            "10 GbE line rate: 69 us for 1,024, 275 us for 4,096")


def run(args):
    if not 0 < args.seconds <= 3600:
        raise WirecapError(f"--seconds {args.seconds:g}: give more than 0 and at most 3600")
    allowed = sorted(os.sched_getaffinity(0))
    cpus = args.cpus if args.cpus is not None else allowed
    bad = [c for c in cpus if c not in allowed]
    if bad:
        raise WirecapError(f"--cpus: {bad[0]} is not a CPU this process may use "
                           f"({','.join(map(str, allowed))})")
    top = os.sched_get_priority_max(os.SCHED_FIFO)
    if args.rt_priority is not None and not 0 <= args.rt_priority <= top:
        raise WirecapError(f"--rt-priority {args.rt_priority}: a SCHED_FIFO priority from 1 "
                           f"to {top}, or 0")
    with unthrottled() as line:
        rt = rt_priority(args.rt_priority)          # the line-rate bench's rule
        if line and rt and not args.json:
            print(line)
        try:
            rows = [probe(c, args.seconds, rt) for c in cpus]
        except PermissionError:
            raise WirecapError(f"--rt-priority {rt}: SCHED_FIFO needs root (CAP_SYS_NICE); "
                               f"run as root or give --rt-priority 0") from None
    result = {"title": "wirecap bench gaps: how long the machine takes a polling CPU away",
              "machine": report.machine(), "rows": rows}
    report.emit(result, text(result), args.json)
    return result
