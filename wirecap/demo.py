"""``wirecap demo``: a capture on the 82599 model with traffic, and the statistics it kept.

The model's wire plays a burst at 10 GbE line rate into RSS queues; capture threads fill the
ring buffer pools; this thread reads every chunk through the chunk API and releases it. At
the end every frame is accounted for: delivered to us, or dropped and counted by the NIC.
"""
import os
import select
import time

from . import stats
from .errors import WirecapError


def add_commands(sub):
    p = sub.add_parser("demo", help="capture traffic played through the 82599 model and show "
                                    "the per-queue statistics")
    p.add_argument("--traffic", default="count=2000000,size=64,flows=64",
                   help="traffic profile, e.g. count=1e6,size=64,flows=8,weights=8:1:1:1:1:1:1:1")
    p.add_argument("--queues", type=int, default=4, help="RSS receive queues (1-16)")
    p.add_argument("--mode", choices=("basic", "advanced"), default="advanced")
    p.add_argument("--segment", type=int, default=256, help="descriptor segment size M")
    p.add_argument("--chunks", type=int, default=100, help="chunks per pool R")
    p.set_defaults(func=demo)


def demo(args):
    from .engine import Engine
    from .sim import TrafficProfile, line_rate_pps
    profile = TrafficProfile.parse(args.traffic)
    with Engine("sim:0", queues=args.queues, mode=args.mode, segment=args.segment,
                chunks=args.chunks) as eng:
        wire = eng.nics[0].port.wire
        print(f"sim:0  82599 model, {args.queues} RSS queue(s), {args.mode} mode, "
              f"pools of R={args.chunks} chunks x M={args.segment} buffers per queue")
        print(f"wire:  {profile.count:,} frames of {profile.mean_size:g} B in {profile.flows} "
              f"flow(s) at {profile.pps / 1e6:.2f} Mpps (line rate "
              f"{line_rate_pps(profile.mean_size) / 1e6:.2f})\n")
        read = 0
        with stats.Sampler(eng, interval=0.005) as sampler:
            wire.play(profile)
            quiet = time.monotonic() + 0.2
            queues = [w.capture_q for w in eng.workers]
            while wire.running or time.monotonic() < quiet:
                for q in range(len(eng.workers)):
                    while (c := eng.next_chunk(q, timeout=0)) is not None:
                        read += len(c)
                        c.release()
                        quiet = time.monotonic() + 0.2
                select.select(queues, [], [], 0.01)     # wakes as soon as a chunk waits
        st = wire.stats()
        snap = stats.snapshot(eng)
        print(f"played {st['sent']:,} frames in {st['elapsed_s']:.3f} s "
              f"({st['rate_pps'] / 1e6:.2f} Mpps)\n")
        print(snap)
        occupancy = sampler.to_pandas().groupby("queue")[["capture_queue", "captured"]].max()
        print("\npeak chunks waiting for the reader per queue: "
              + ", ".join(f"q{q} {int(v)}" for q, v in occupancy["captured"].items()))
        tot = snap.totals
        hw = snap.devices[0]["counters"]
        missed = sum(hw.get(f"MPC{i}", 0) for i in range(8))    # packet buffer overflow
        pending = eng.nics[0].port.pending()
        ok = read + tot["nic_dropped"] + missed + pending == st["sent"]
        print(f"\nsent {st['sent']:,} = read by this demo {read:,} + dropped and counted by "
              f"the NIC {tot['nic_dropped'] + missed:,} + waiting on chip {pending:,}: "
              f"{'every frame accounted for' if ok else 'MISMATCH'}")
        if not ok:
            raise WirecapError("frames went missing: this is a bug, please report it")
        if tot["nic_dropped"] and not any(q["pool_empty"] for q in snap.queues):
            threads = len(eng.workers) + 2          # capture threads, the wire, this reader
            print(f"\nThe pools never ran dry: the NIC dropped while a capture thread waited "
                  f"for a core\n({threads} busy threads on {os.cpu_count()} cores here) and "
                  f"its ring of {eng.workers[0].rxq.ndesc} descriptors filled up. A core per "
                  f"capture thread\n(Engine(cpus=...)), as on the paper's testbed, or a "
                  f"longer ring (ndesc=4096) makes them rare.")
