"""``wirecap capture`` (in tcpdump's manner) and ``wirecap stats`` (its live counters).

A running capture publishes a stats snapshot every second to the run directory
(``/run/wirecap``, or ``$WIRECAP_RUN_DIR``); ``wirecap stats`` shows those of every capture
that is still alive, as a table refreshed in place or as JSON.
"""
from __future__ import annotations

import json
import os
import select
import signal
import struct
import sys
import time

from . import _engine, _pcap, stats
from .devices import parse as parse_device
from .dump import PcapWriter, open_writer
from .errors import WirecapError

FORMATS = ("pcap", "pcap-ns", "pcapng")


def run_dir():
    return os.environ.get("WIRECAP_RUN_DIR") or ("/run/wirecap" if os.geteuid() == 0 else
                                                 f"/tmp/wirecap-{os.geteuid()}")


def add_commands(sub):
    p = sub.add_parser("capture", help="capture packets (tcpdump's options), to a file or "
                                       "as one line each")
    p.add_argument("-i", dest="device", action="append",
                   help="device: sim:N (the 82599 model), pci:DOMAIN:BUS:DEV.FN (an 82599 bound "
                        "to vfio-pci), afpacket:IFACE; repeat for several (default sim:0)")
    p.add_argument("-c", dest="count", type=int, default=0, help="stop after COUNT packets")
    p.add_argument("-w", dest="write", metavar="FILE", help="write packets to FILE ('-': stdout)")
    p.add_argument("-s", dest="snaplen", type=int, default=262144,
                   help="bytes kept per packet (default 262144, as tcpdump)")
    p.add_argument("--format", choices=FORMATS, default="pcap",
                   help="file format for -w: pcap (µs), pcap-ns or pcapng (default pcap)")
    p.add_argument("--queues", type=int, default=1, help="receive queues per device (RSS)")
    p.add_argument("--mode", choices=("basic", "advanced"), default="basic",
                   help="advanced: offload chunks to buddy queues past the threshold")
    p.add_argument("--segment", type=int, default=256, help="descriptor segment size M")
    p.add_argument("--chunks", type=int, default=None,
                   help="ring buffer pool size R in chunks (default: 100 on 82599 devices, as "
                        "in the paper's runs; 32 blocks of 1 MiB on afpacket)")
    p.add_argument("--threshold", type=float, default=0.6,
                   help="advanced mode: offload when a capture queue exceeds T x R")
    p.add_argument("--inline", action="store_true",
                   help="capture in the reading thread (no capture threads; for small machines)")
    p.add_argument("--traffic", metavar="PROFILE",
                   help="for sim: devices, what the model's wire plays: a profile such as "
                        "count=1e6,size=64,flows=8 or a pcap file")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary at the end (instead of one line per packet)")
    p.add_argument("-q", dest="quiet", action="store_true", help="no progress line")
    p.add_argument("expression", nargs="*", help="a libpcap filter expression")
    p.set_defaults(func=capture)

    s = sub.add_parser("stats", help="live per-queue counters of running captures")
    s.add_argument("--json", action="store_true", help="print one JSON snapshot and exit")
    s.add_argument("--once", action="store_true", help="print the table once and exit")
    s.add_argument("--wide", action="store_true",
                   help="every column (by default the table fits 100 characters)")
    s.add_argument("--interval", type=float, default=1.0, help="refresh period in seconds")
    s.add_argument("--pid", type=int, help="only the capture of this process")
    s.set_defaults(func=show_stats)


# ----------------------------------------------------------------------------- capture
def _wire_source(text):
    from .sim import Pcap, TrafficProfile
    if os.path.isfile(text):
        return Pcap(text)
    return TrafficProfile.parse(text)


def _summary_line(hdr, data):
    """tcpdump's one line per packet, for the protocols the wire carries most."""
    sec, usec = hdr.getts()
    t = time.strftime("%H:%M:%S", time.localtime(sec)) + f".{usec:06d}"
    b = bytes(data[:54])
    if len(b) >= 34 and b[12:14] == b"\x08\x00":
        ihl = (b[14] & 0xF) * 4
        proto, src, dst = b[23], ".".join(map(str, b[26:30])), ".".join(map(str, b[30:34]))
        ip_len = struct.unpack(">H", b[16:18])[0]
        if proto == 17 and len(b) >= 14 + ihl + 8:
            sport, dport, udp_len = struct.unpack(">HHH", b[14 + ihl:20 + ihl])
            return f"{t} IP {src}.{sport} > {dst}.{dport}: UDP, length {udp_len - 8}"
        if proto == 6 and len(b) >= 14 + ihl + 13:
            sport, dport = struct.unpack(">HH", b[14 + ihl:18 + ihl])
            payload = ip_len - ihl - (b[14 + ihl + 12] >> 4) * 4
            return f"{t} IP {src}.{sport} > {dst}.{dport}: TCP, length {payload}"
        return f"{t} IP {src} > {dst}: ip-proto-{proto} {ip_len - ihl}"
    return f"{t} ethertype 0x{b[12:14].hex()}, length {hdr.len}"


class _Publisher:
    """Writes the engine's snapshot where `wirecap stats` finds it (atomically)."""

    def __init__(self, engine, interval=1.0):
        self.engine, self.interval, self.next = engine, interval, 0.0
        self.path = None
        try:
            os.makedirs(run_dir(), exist_ok=True)
            self.path = os.path.join(run_dir(), f"capture-{os.getpid()}.json")
        except OSError:
            pass                        # stats publishing is a convenience, never fatal

    def maybe(self, extra, force=False):
        now = time.monotonic()
        if self.path is None or (now < self.next and not force):
            return
        self.next = now + self.interval
        doc = stats.snapshot(self.engine).to_dict()
        doc.update(extra, pid=os.getpid())
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.path)

    def close(self):
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def capture(args):
    from .engine import Engine
    devices = args.device or ["sim:0"]
    if args.count < 0:
        raise WirecapError(f"-c {args.count}: give a packet count >= 1 (or none)")
    if args.duration is not None and args.duration <= 0:
        raise WirecapError(f"--duration {args.duration}: give seconds > 0")
    filt = None
    if args.expression:
        from ._bpf import Filter
        filt = Filter(" ".join(args.expression), snaplen=args.snaplen)
    source = None
    if args.traffic:
        if any(parse_device(d)[0] != "sim" for d in devices):
            raise WirecapError("--traffic plays frames on the model's wire: it needs sim:N "
                               "devices (real NICs get their traffic from the network)")
        source = _wire_source(args.traffic)
    writer = None
    if args.write:                      # before the device: a bad path costs no packets
        try:
            writer = open_writer("/dev/stdout" if args.write == "-" else args.write,
                                 args.format, snaplen=args.snaplen)
        except OSError as e:
            raise WirecapError(f"-w {args.write}: {e.strerror}") from None
    try:
        eng = Engine(devices, queues=args.queues, mode=args.mode, threshold=args.threshold,
                     segment=args.segment, chunks=args.chunks, threads=not args.inline)
        try:
            for nic in eng.nics:            # AF_PACKET: the kernel filters before the ring
                if filt is not None:
                    nic.set_filter(" ".join(args.expression))
            return _capture(args, eng, filt, source, writer)
        finally:
            eng.close()
    finally:
        if writer is not None:
            writer.close()


def _capture(args, eng, filt, source, writer):
    tty = sys.stderr.isatty() and not args.quiet
    pub = _Publisher(eng)
    stop = []
    old = signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    sink = _Sink(writer, args.count, args.snaplen, lines=not args.json)     # --json: stdout is the summary
    seen = 0
    eng.start()
    t0 = time.monotonic()
    deadline = None if args.duration is None else t0 + args.duration
    wires = [nic.port.wire for nic in eng.nics] if source is not None else []
    for w in wires:
        w.play(source)
    quiet_until = None
    next_progress = 0.0
    fds = [w.capture_q for w in eng.workers]
    try:
        while not stop:
            got = False
            for q in range(len(eng.workers)):
                c = eng.next_chunk(q, timeout=0)
                if c is None:
                    continue
                got = True
                seen += len(c)
                mask = _engine.filter_chunk(filt, c) if filt is not None else None
                sink.take(c, mask)
                c.release()
                if sink.full.requested:
                    stop.append(1)
                    break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if wires:                   # a played source ends the capture once drained
                if any(w.running for w in wires) or got:
                    quiet_until = None
                elif quiet_until is None:
                    quiet_until = now + 0.05 + max(w.rxq.flush_ns for w in eng.workers) / 1e9
                elif now >= quiet_until:
                    break
            pub.maybe({"seen": seen, "delivered": sink.n})
            if tty and now >= next_progress:    # the NIC's counters are register reads
                _progress(eng, seen, sink.n, now - t0)
                next_progress = now + 0.25
            if not got and eng.threads:
                select.select(fds, [], [], 0.02)
    except KeyboardInterrupt:           # ^C ends a capture as in tcpdump: summary, exit 0
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        for w in wires:
            w.stop()
        pub.close()
    delivered = sink.n
    elapsed = time.monotonic() - t0
    eng.stop()
    snap = stats.snapshot(eng)
    tot = snap.totals
    summary = {"devices": [n.name for n in eng.nics], "queues": len(eng.workers),
               "mode": eng.mode, "seen": seen, "delivered": delivered,
               "captured": tot["packets"], "nic_dropped": tot["nic_dropped"],
               "discarded_at_stop": eng.discarded, "elapsed_s": elapsed,
               "file": args.write, "filter": " ".join(args.expression) or None,
               "per_queue": snap.queues}
    if wires:
        summary["wire_sent"] = sum(w.stats()["sent"] for w in wires)
    if tty:
        sys.stderr.write("\r\033[K")
    if args.json:
        json.dump(summary, sys.stdout if args.write != "-" else sys.stderr, indent=2)
        print(file=sys.stdout if args.write != "-" else sys.stderr)
    else:
        err = sys.stderr
        print(f"{delivered} packets {'written' if writer else 'shown'}"
              f"{f' ({seen} seen before the filter)' if filt is not None else ''}", file=err)
        print(f"{tot['packets']} packets captured by wirecap", file=err)
        print(f"{tot['nic_dropped']} packets dropped by the NIC (no buffer)", file=err)
        if eng.discarded:
            print(f"{eng.discarded} packets captured but not read before the stop", file=err)
    return 0


class _Sink:
    """The per-packet callback: a file record or a summary line; raises its ``full`` flag
    once ``limit`` packets were taken (0: no limit)."""

    def __init__(self, writer, limit, snaplen, lines=True):
        self.writer, self.limit, self.snaplen, self.n = writer, limit, snaplen, 0
        self.full = _pcap.Break()
        self._line = sys.stdout.write if lines else None

    def take(self, chunk, mask):
        if isinstance(self.writer, PcapWriter):     # whole chunks, formatted in C
            left = self.limit - self.n if self.limit else 0xFFFFFFFF
            records, n = _pcap.pcap_records(chunk, self.writer.snaplen,
                                            self.writer.nanosecond, mask, left)
            self.writer.write_records(records)
            self.n += n
            self.full.requested = 0 < self.limit <= self.n
        else:
            _pcap.run_callbacks(chunk, 0, len(chunk), self, self.snaplen, mask, self.full)

    def __call__(self, hdr, data):
        if self.writer is not None:
            self.writer.write(hdr.ts_ns, data, hdr.len)
        elif self._line is not None:
            self._line(_summary_line(hdr, data) + "\n")
        self.n += 1
        self.full.requested = 0 < self.limit <= self.n


def _progress(eng, seen, delivered, elapsed):
    tot = stats.snapshot(eng).totals
    sys.stderr.write(f"\r\033[K{elapsed:7.1f} s  {seen:>12,} captured  {delivered:>12,} "
                     f"kept  {tot['nic_dropped']:>10,} NIC drops  "
                     f"{seen / elapsed / 1e6 if elapsed else 0:6.2f} Mpps")
    sys.stderr.flush()


# ----------------------------------------------------------------------------- stats
def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def published():
    """Snapshots of running captures, by pid (stale files of dead ones are removed)."""
    out = {}
    d = run_dir()
    if not os.path.isdir(d):
        return out
    for name in sorted(os.listdir(d)):
        if not (name.startswith("capture-") and name.endswith(".json")):
            continue
        pid = int(name[8:-5])
        path = os.path.join(d, name)
        if not _alive(pid):
            try:
                os.unlink(path)
            except OSError:
                pass
            continue
        try:
            with open(path) as f:
                out[pid] = json.load(f)
        except (OSError, ValueError):
            continue                    # being replaced right now: next refresh
    return out


def show_stats(args):
    if args.interval <= 0:
        raise WirecapError(f"--interval {args.interval}: give seconds > 0")
    while True:
        snaps = published()
        if args.pid is not None:
            snaps = {p: s for p, s in snaps.items() if p == args.pid}
        if not snaps:
            who = f"process {args.pid}" if args.pid is not None else "any process"
            raise WirecapError(f"no running capture of {who} publishes stats in {run_dir()}: "
                               f"start one with `wirecap capture -i DEVICE ...`")
        if args.json:
            json.dump(snaps, sys.stdout, indent=2)
            print()
            return 0
        text = []
        for pid, doc in snaps.items():
            snap = stats.Snapshot(doc["t"], doc["queues"], doc["devices"])
            text.append(f"capture pid {pid}  ({time.strftime('%H:%M:%S', time.localtime(doc['t']))}"
                        f", {doc.get('delivered', 0):,} packets kept)\n{snap.table(wide=args.wide)}\n")
        if args.once or not sys.stdout.isatty():
            print("\n".join(text))
            return 0
        sys.stdout.write("\033[H\033[J" + "\n".join(text))
        sys.stdout.flush()
        time.sleep(args.interval)
