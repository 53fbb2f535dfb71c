"""``wirecap demo``: traffic through the 82599 model, and the counters it kept."""
from ..errors import WirecapError
from . import Device, TrafficProfile, Wire, line_rate_pps


def add_commands(sub):
    p = sub.add_parser("demo", help="play traffic through the 82599 model and show its counters")
    p.add_argument("--traffic", default="count=2000000,size=64,flows=64",
                   help="traffic profile, e.g. count=1e6,size=64,flows=8,weights=8:1:1:1:1:1:1:1")
    p.add_argument("--queues", type=int, default=4, help="RSS receive queues (1-16)")
    p.set_defaults(func=demo)


def demo(args):
    from ..bench.model import RingKeeper
    if not 1 <= args.queues <= 16:
        raise WirecapError(f"--queues {args.queues}: the 82599 spreads RSS over 1 to 16 queues")
    profile = TrafficProfile.parse(args.traffic)
    dev = Device(0)
    wire = Wire(dev)
    keeper = RingKeeper(dev, queues=args.queues)
    print(f"sim:0  82599 model, {args.queues} RSS queue(s), rings of {keeper.ndesc} descriptors")
    print(f"wire:  {profile.count:,} frames of {profile.mean_size:g} B in {profile.flows} flow(s) "
          f"at {profile.pps / 1e6:.2f} Mpps (line rate {line_rate_pps(profile.mean_size) / 1e6:.2f})")
    wire.play(profile)
    while wire.running:                 # the host side: re-arm what the model filled
        keeper.refill()
    keeper.refill()
    st, c = wire.stats(), keeper.counters()
    print(f"\nplayed {st['sent']:,} frames in {st['elapsed_s']:.3f} s "
          f"({st['rate_pps'] / 1e6:.2f} Mpps; worst lag behind schedule "
          f"{st['max_lag_ns'] / 1e6:.2f} ms)\n")
    print(f"{'counter':<10}{'value':>14}   meaning")
    rows = [("GPRC", c["GPRC"], "good frames received"),
            ("GORC", c["GORC"], "good octets received"),
            ("MPC", c["MPC"], "missed: on-chip packet buffer full"),
            ("RNBC", c["RNBC"], "no host descriptor (frame waited on chip)")]
    for q in range(args.queues):
        rows += [(f"QPRC({q})", c[f"QPRC{q}"], f"frames DMA'd to queue {q}"),
                 (f"QPRDC({q})", c[f"QPRDC{q}"], f"dropped at queue {q}: no descriptor")]
    for name, value, meaning in rows:
        print(f"{name:<10}{value:>14,}   {meaning}")
    delivered = sum(c[f"QPRC{q}"] for q in range(args.queues))
    dropped = sum(c[f"QPRDC{q}"] for q in range(args.queues)) + c["MPC"]
    print(f"\nsent {st['sent']:,} = delivered {delivered:,} + dropped and counted by the NIC "
          f"{dropped:,} + waiting on chip {dev.pending():,}: "
          f"{'every frame accounted for' if delivered + dropped + dev.pending() == st['sent'] else 'MISMATCH'}")
    if dropped:
        print("The host here is a plain Python loop re-arming rings of "
              f"{keeper.ndesc} descriptors; it falls behind\nthe wire, and the NIC counts every "
              "frame it had no descriptor for. Ring buffer pools (the driver)\nare what absorb "
              "such bursts.")
