"""``wirecap capture``: tcpdump's command on wirecap's public API, as tcpdump sits on libpcap.

Every receive queue is read through a ``pcap.Handle`` (which installs the filter, in the kernel
too where the device filters); chunks are turned into file records in C, merged across queues
into time order, and go to a savefile (``-w``, rotated with ``-C/-G/-W``), to tcpdump for
printing, or are only counted. No Python runs per packet unless tcpdump is missing and the
plain built-in line is printed. ``-r FILE`` takes the same filter and output path.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pwd
import signal
import sys
import time

from . import _pcap, stats
from .devices import parse as parse_device
from .dump import MAX_SNAPLEN
from .errors import WirecapError
from .livestats import Publisher
from .output import Printer, Savefile, parse_size

FORMATS = ("pcap", "pcap-ns", "pcapng")
LIMIT = (1 << 63) - 1               # -c, -C, -G, -W and -B above this are not counts of anything
MERGE_SLACK_NS = 20_000_000         # how late a queue's packet may reach us after its timestamp,
                                    # on top of the flush timeout (capture thread scheduling)


def add_commands(sub):
    p = sub.add_parser("capture", help="capture packets with tcpdump's options: print them, "
                                       "write them to files, or count them")
    t = p.add_argument_group("tcpdump's options")
    t.add_argument("-i", dest="device", action="append", metavar="DEVICE",
                   help="an interface (eth0, lo: AF_PACKET), sim:N (the 82599 model), "
                        "pci:DOMAIN:BUS:DEV.FN (an 82599 bound to vfio-pci), afpacket:IFACE; "
                        "repeat for several (default sim:0)")
    t.add_argument("-D", dest="list", action="store_true", help="list the capture sources")
    t.add_argument("-r", dest="read", metavar="FILE", help="read packets from a pcap file")
    t.add_argument("-w", dest="write", metavar="FILE", help="write packets to FILE ('-': stdout)")
    t.add_argument("-c", dest="count", type=int, default=None, help="stop after COUNT packets")
    t.add_argument("-s", dest="snaplen", type=int, default=None,
                   help=f"bytes kept per packet (0 or default: {MAX_SNAPLEN}, as tcpdump)")
    t.add_argument("-F", dest="filter_file", metavar="FILE",
                   help="read the filter expression from FILE")
    t.add_argument("-p", dest="promiscuous", action="store_false",
                   help="do not put the interface into promiscuous mode")
    t.add_argument("-B", dest="buffer_kib", type=int, metavar="KiB",
                   help="capture buffer per queue in KiB (sets the pool size R)")
    t.add_argument("-Q", dest="direction", choices=("in", "out", "inout"),
                   help="AF_PACKET: received frames only (in), sent ones only (out) or both "
                        "(inout, the default)")
    t.add_argument("-y", dest="datalink", metavar="TYPE",
                   help="the link type to capture in (-L lists them): EN10MB; on any "
                        "LINUX_SLL2 (the default there) or LINUX_SLL")
    t.add_argument("-L", dest="list_datalinks", action="store_true",
                   help="list the link types of the -i devices, then exit")
    t.add_argument("-Z", dest="user", help="after opening devices, run as USER (root only)")
    t.add_argument("-C", dest="file_size", metavar="SIZE",
                   help="start a new file when one exceeds SIZE million bytes (or 100k, 10m, 1g)")
    t.add_argument("-G", dest="rotate_seconds", type=int, metavar="SECONDS",
                   help="start a new file every SECONDS (the -w name may hold strftime codes)")
    t.add_argument("-W", dest="file_count", type=int, metavar="COUNT",
                   help="with -C: a ring of COUNT files; with -G: stop after COUNT files")
    t.add_argument("-U", dest="packet_buffered", action="store_true",
                   help="write to the file as each chunk of packets is taken, not when the "
                        "buffer fills")
    t.add_argument("-l", dest="line_buffered", action="store_true", help="line-buffered output")
    t.add_argument("-n", dest="numeric", action="count", default=0,
                   help="do not resolve addresses (and, as -nn, ports)")
    t.add_argument("-e", dest="link", action="store_true", help="print link-level headers")
    t.add_argument("-q", dest="quick", action="store_true", help="quick (shorter) lines")
    t.add_argument("-v", dest="verbose", action="count", default=0, help="more detail (-vv, -vvv)")
    t.add_argument("-t", dest="time_format", action="count", default=0,
                   help="-t no time, -tt epoch seconds, -ttt delta, -tttt date, -ttttt since "
                        "the first packet")
    t.add_argument("-x", dest="hex", action="count", default=0,
                   help="hex of each packet (-xx: with the link header)")
    t.add_argument("-X", dest="hex_ascii", action="count", default=0,
                   help="hex and ASCII (-XX: with the link header)")
    t.add_argument("-A", dest="ascii", action="store_true", help="each packet in ASCII")
    t.add_argument("--time-stamp-precision", choices=("micro", "nano"), default="micro",
                   help="time stamps printed (and written with -w, pcap) in µs or ns")
    w = p.add_argument_group("wirecap's options")
    w.add_argument("--format", choices=FORMATS, default=None,
                   help="file format for -w: pcap (default; ns with --time-stamp-precision "
                        "nano), pcap-ns or pcapng (an interface per device, drop statistics)")
    w.add_argument("--queues", type=int, default=1, help="receive queues per device (RSS)")
    w.add_argument("--mode", choices=("basic", "advanced"), default="basic",
                   help="advanced: offload chunks to buddy queues past the threshold")
    w.add_argument("--segment", type=int, default=256, help="descriptor segment size M")
    w.add_argument("--ndesc", type=int, default=1024,
                   help="82599: descriptors per receive ring N (a power of two, 64 to 8192)")
    w.add_argument("--chunks", type=int, default=None,
                   help="ring buffer pool size R in chunks (default: 100 on 82599 devices, as "
                        "in the paper's runs; 32 blocks of 1 MiB on AF_PACKET)")
    w.add_argument("--threshold", type=float, default=0.6,
                   help="advanced mode: offload when a capture queue exceeds T x R")
    w.add_argument("--inline", action="store_true",
                   help="capture in the reading thread (no capture threads; for small machines)")
    w.add_argument("--capture-cpus", metavar="LIST", default=None,
                   help="CPUs for the capture threads, one thread per CPU, each serving its "
                        "share of the queues, e.g. 1 or 0,1 or 2-3 (default: every CPU but "
                        "one, at most one thread per queue)")
    w.add_argument("--rt-priority", metavar="N", type=int, default=None,
                   help="run the capture threads under SCHED_FIFO at priority N (1-99, as "
                        "chrt -f N; root): nothing ordinary preempts them")
    w.add_argument("--wire-thread", action="store_true",
                   help="for sim: devices, pace --traffic from a thread of the model's own (a "
                        "core of its own, as silicon's MAC) instead of the driver's clock")
    w.add_argument("--traffic", metavar="PROFILE",
                   help="for sim: devices, what the model's wire plays: a profile such as "
                        "count=1e6,size=64,flows=8 or a pcap file")
    w.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    w.add_argument("--json", action="store_true",
                   help="print a JSON summary at the end (instead of one line per packet)")
    w.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress line on stderr (default: on a terminal, when packets are "
                        "not printed there)")
    p.add_argument("expression", nargs="*", help="a libpcap filter expression (pcap-filter(7))")
    p.set_defaults(func=capture, parser=p)


# ----------------------------------------------------------------------------- checks
def parse_cpu_list(flag, text):
    """'0,2-3' -> [0, 2, 3] (taskset's list syntax), in the order given."""
    cpus = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
            if first < 0 or last < first or last > 4095:
                raise ValueError
            cpus += range(first, last + 1)
    except ValueError:
        raise WirecapError(f"{flag} {text}: a list of CPU numbers such as 1 or 0,1 or 2-3") \
            from None
    if len(set(cpus)) != len(cpus):
        raise WirecapError(f"{flag} {text}: CPU listed twice; give each CPU once")
    return cpus


def _int_range(flag, value, lo, hi, what, fix):
    if value is not None and not lo <= value <= hi:
        raise WirecapError(f"{flag} {value}: {what} is {lo} to {hi}; {fix}")


def check(args):
    """Every value, before anything is opened: one line naming the option, its range and the
    fix (exit status 2)."""
    if args.count is not None:
        _int_range("-c", args.count, 1, LIMIT, "a packet count", "give -c 1 or more, or none")
    _int_range("-s", args.snaplen, 0, MAX_SNAPLEN, "the snapshot length in bytes (0: "
               f"{MAX_SNAPLEN})", "give e.g. -s 96, or -s 0 for whole packets")
    args.snap_given = bool(args.snaplen)
    args.snaplen = args.snaplen or MAX_SNAPLEN
    _int_range("--queues", args.queues, 1, 16, "RSS queues per device", "give e.g. --queues 4")
    _int_range("--ndesc", args.ndesc, 64, 8192, "descriptors per ring",
               "give a power of two, e.g. 4096")
    _int_range("--segment", args.segment, 8, min(4096, args.ndesc), "descriptors per segment",
               "give a divisor of --ndesc, e.g. 256")
    _int_range("--chunks", args.chunks, 1, 1 << 20, "chunks per pool", "give e.g. --chunks 100")
    _int_range("-B", args.buffer_kib, 1, 1 << 30, "KiB of buffer per queue",
               "give e.g. -B 65536 (64 MiB)")
    _int_range("-G", args.rotate_seconds, 1, LIMIT, "seconds per file", "give e.g. -G 3600")
    _int_range("-W", args.file_count, 1, 1 << 31, "a number of files", "give e.g. -W 10")
    if not (math.isfinite(args.threshold) and 0 < args.threshold <= 1):
        raise WirecapError(f"--threshold {args.threshold}: a fraction 0 < T <= 1 of the capture "
                           f"queue's capacity; give e.g. --threshold 0.6")
    if args.capture_cpus is not None:
        if args.inline:
            raise WirecapError("--capture-cpus places capture threads; --inline has none: "
                               "give one of them")
        args.capture_cpus = parse_cpu_list("--capture-cpus", args.capture_cpus)
    if args.rt_priority is not None and args.inline:
        raise WirecapError("--rt-priority schedules capture threads; --inline has none: "
                           "give one of them")
    if args.wire_thread and not args.traffic:
        raise WirecapError("--wire-thread paces --traffic: give --traffic PROFILE too")
    if args.duration is not None and not (math.isfinite(args.duration) and
                                          0 < args.duration <= 1e9):
        raise WirecapError(f"--duration {args.duration}: seconds, more than 0 and finite; "
                           f"give e.g. --duration 10")
    if args.file_size is not None:
        args.file_size = parse_size(args.file_size)
    if (args.file_size or args.rotate_seconds) and not args.write or \
            args.write == "-" and (args.file_size or args.rotate_seconds):
        raise WirecapError("-C and -G start new files: give -w FILE (not -w -)")
    if args.file_count and not (args.file_size or args.rotate_seconds):
        raise WirecapError(f"-W {args.file_count}: counts the files of -C or -G; give one of "
                           f"them too")
    if args.format is None:
        args.format = "pcap-ns" if args.time_stamp_precision == "nano" else "pcap"
    if args.filter_file:
        try:
            with open(args.filter_file) as f:       # tcpdump: '#' starts a comment
                text = " ".join(ln.split("#", 1)[0] for ln in f)
        except OSError as e:
            raise WirecapError(f"-F {args.filter_file}: {e.strerror}") from None
        args.expression = text.split()
    args.filter = " ".join(args.expression) or None
    if args.filter:                     # libpcap's verdict on the syntax, before any device
        from ._bpf import Filter
        Filter(args.filter, snaplen=args.snaplen)
    if args.user is not None:
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            raise WirecapError(f"-Z {args.user}: no such user (give a user of `getent "
                               f"passwd`)") from None
        if os.geteuid() != 0 and pwd.getpwnam(args.user).pw_uid != os.geteuid():
            raise WirecapError(f"-Z {args.user}: changing the user needs root; run without -Z "
                               f"(you are already uid {os.geteuid()})")
    if args.read is not None:
        live = [f for f, v in (("-i", args.device), ("--traffic", args.traffic),
                               ("-Q", args.direction), ("-B", args.buffer_kib),
                               ("-y", args.datalink), ("-L", args.list_datalinks),
                               ("--chunks", args.chunks), ("--duration", args.duration)) if v]
        if live:
            raise WirecapError(f"-r reads a file: {', '.join(live)} applies to live captures; "
                               f"drop it")
    devices = args.device or ["sim:0"]
    named = {}
    for d in devices:
        if parse_device(d) in named:
            raise WirecapError(f"-i {d}: the same device as -i {named[parse_device(d)]}; name "
                               f"each device once")
        named[parse_device(d)] = d
    args.linktype = _linktype(args, devices)
    if args.traffic and any(parse_device(d)[0] != "sim" for d in devices):
        raise WirecapError("--traffic plays frames on the model's wire: it needs sim:N devices "
                           "(real NICs get their traffic from the network)")
    return devices


def _linktype(args, devices):
    """The link type every device hands out: -y's, or each device's default (one file and
    one printer take one link type)."""
    from .pcap import datalinks, default_datalink
    if args.datalink is None:
        types = {default_datalink(d) for d in devices}
        if len(types) > 1 and not args.read and not args.list_datalinks:
            names = ", ".join(sorted(map(_pcap.datalink_name, types)))
            raise WirecapError(f"-i {' -i '.join(devices)}: these devices hand out different "
                               f"link types ({names}) and one capture writes one; capture "
                               f"them in separate runs")
        return types.pop()
    value = _pcap.datalink_value(args.datalink)
    if value < 0:
        raise WirecapError(f"-y {args.datalink}: not a link type libpcap knows; `wirecap "
                           f"capture -L -i DEVICE` lists a device's")
    for d in devices:
        if value not in datalinks(d):
            names = ", ".join(map(_pcap.datalink_name, datalinks(d)))
            raise WirecapError(f"-y {args.datalink}: {d} does not hand it out; it takes "
                               f"{names} (-L lists them)")
    return value


def _link(linktype):
    """tcpdump's words for a link type: "EN10MB (Ethernet)"."""
    description = _pcap.datalink_description(linktype) or "unknown"
    return f"{_pcap.datalink_name(linktype)} ({description})"


def list_datalinks(devices):
    """-L: each device's link types, as tcpdump prints them (on stderr)."""
    from .pcap import datalinks
    for d in devices:
        print(f"Data link types for {d} (use option -y to set):", file=sys.stderr)
        for t in datalinks(d):
            print(f"  {_link(t)}", file=sys.stderr)
    return 0


def _pool_chunks(args, kinds):
    """R from -B (KiB per queue) or --chunks, checked against this machine's memory."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    chunks = args.chunks
    if args.buffer_kib is not None:
        if chunks is not None:
            raise WirecapError("-B and --chunks both size the pool: give one")
        per_chunk = args.segment * 2048 if "82599" in kinds else 1 << 20
        chunks = max(2, -(-args.buffer_kib * 1024 // per_chunk))
    if chunks is not None:
        per_chunk = max(args.segment * 2048 if "82599" in kinds else 0,
                        1 << 20 if "afpacket" in kinds else 0)
        need = chunks * per_chunk * args.queues * len(args.device or ["sim:0"])
        if need > ram // 2:
            most = max(1, ram // 2 // (per_chunk * args.queues * len(args.device or [0])))
            raise WirecapError(f"--chunks {chunks}: pools of {need / 2**30:.1f} GiB in all, "
                               f"more than half of this machine's {ram / 2**30:.1f} GiB; give "
                               f"at most --chunks {most}")
    return chunks


# ----------------------------------------------------------------------------- capture
def capture(args):
    devices = check(args)
    if args.list:
        return list_sources()
    if args.list_datalinks:
        return list_datalinks(devices)
    if args.read is not None:
        return _offline(args)
    kinds = {"82599" if k in ("sim", "pci") else k for k, _ in map(parse_device, devices)}
    chunks = _pool_chunks(args, kinds)
    if args.direction and kinds != {"afpacket"}:
        raise WirecapError(f"-Q {args.direction}: the 82599 (and its model) only receives; -Q "
                           f"chooses directions on AF_PACKET interfaces")
    source = _wire_source(args.traffic) if args.traffic else None
    options = {}
    # a file that cannot be written fails before any device opens; with -Z, tcpdump's order:
    # files are opened by the user we become (one interface name per device either way)
    sink = None if args.user is not None else _open_sink(args, devices)
    try:
        return _open_and_capture(args, devices, source, chunks, options, sink)
    finally:
        if sink is not None:
            sink.close()


def _open_and_capture(args, devices, source, chunks, options, sink):
    from .engine import Engine
    eng = Engine(devices, queues=args.queues, mode=args.mode, threshold=args.threshold,
                 segment=args.segment, ndesc=args.ndesc, chunks=chunks,
                 threads=not args.inline, promiscuous=args.promiscuous,
                 capture_cpus=args.capture_cpus, rt_priority=args.rt_priority, **options)
    try:
        from .pcap import Handle
        handles = [Handle(eng, q, snaplen=args.snaplen) for q in range(len(eng.workers))]
        for h in handles:               # libpcap compiles it; the kernel runs it where it can
            if h.datalink() != args.linktype:
                h.set_datalink(args.linktype)
            h.setfilter(args.filter)
            if args.direction:
                _set_direction(h, args.direction)
        if args.user is not None:
            drop_privileges(args.user)
            sink = _open_sink(args, [n.name for n in eng.nics])
        try:
            return _live(args, eng, handles, source, sink)
        finally:
            sink.close()
    finally:
        eng.close()


def _set_direction(handle, direction):
    from . import pcap
    if not hasattr(handle, "setdirection"):
        raise WirecapError(f"-Q {direction}: this wirecap's pcap.Handle has no setdirection()")
    handle.setdirection({"in": pcap.PCAP_D_IN, "out": pcap.PCAP_D_OUT,
                         "inout": pcap.PCAP_D_INOUT}[direction])


def _wire_source(text):
    from .sim import Pcap, TrafficProfile
    if os.path.isfile(text):
        return Pcap(text)
    if "=" not in text:
        raise WirecapError(f"--traffic {text}: no such file, and not a profile "
                           f"(KEY=VALUE,...; e.g. count=1e6,size=64)")
    return TrafficProfile.parse(text)


def drop_privileges(user):
    """tcpdump's -Z: become ``user`` (its groups too); leaving root drops every capability."""
    pw = pwd.getpwnam(user)
    if os.geteuid() != 0:
        return                          # check() made sure it is us already
    os.setgroups(os.getgrouplist(pw.pw_name, pw.pw_gid))
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.environ.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)


def _open_sink(args, interfaces):
    """Where taken packets go: a savefile, tcpdump's printer, or nowhere (--json counts)."""
    if args.write:
        return Savefile(args.write, args.format, args.snaplen, interfaces,
                        size=args.file_size, seconds=args.rotate_seconds, count=args.file_count,
                        flush=args.packet_buffered, linktype=args.linktype)
    if args.json:
        return _Count()
    return Printer(args, sys.stdout)


class _Count:
    """--json without -w: nothing is written, packets are only counted."""
    fmt = None

    def budget(self):
        return LIMIT

    def close(self, totals=None):
        pass


class _Merge:
    """Records of every queue, in time order. A queue's records come in time order; a record
    stamped T can be let out once no queue can still deliver one stamped before T: a queue we
    just found empty can only deliver what it stamps from now (minus the flush timeout and
    scheduling slack); one that had data can deliver nothing older than its last record."""

    def __init__(self, queues, window_ns):
        self.blobs, self.pos = [], []
        self.last = [0] * queues
        self.bound = [0] * queues
        self.window = window_ns

    def add(self, q, blob, last):
        if blob:
            self.blobs.append(blob)
            self.pos.append(0)
            self.last[q] = max(self.last[q], last)
        self.bound[q] = self.last[q]

    def empty(self, q, now_ns):
        self.bound[q] = max(self.last[q], now_ns - self.window)

    def take(self, fmt, records, size, final=False):
        """(records of ``fmt``, count) that may go out now, at most ``records`` of them and
        ending with the one that reaches ``size`` bytes."""
        if not self.blobs:
            return b"", 0
        cutoff = LIMIT if final else min(self.bound)
        out, self.pos, n = _pcap.merge_records(self.blobs, self.pos, cutoff, fmt, records,
                                               size)
        keep = [i for i, (b, p) in enumerate(zip(self.blobs, self.pos)) if p < len(b)]
        self.blobs = [self.blobs[i] for i in keep]
        self.pos = [self.pos[i] for i in keep]
        return out, n


class _Run:
    """What a capture has taken so far and where it goes."""

    def __init__(self, args, sink, queues, window_ns, iface=None):
        self.args, self.sink = args, sink
        self.iface = iface or [0] * queues          # pcapng interface of each queue
        self.seen = self.delivered = 0
        self.limit = args.count or LIMIT
        self.merge = _Merge(queues, window_ns)
        # one queue into a file: its records are in time order already, so they go from the
        # chunk straight into the file's buffer, with no merge between
        self.direct = queues == 1 and isinstance(sink, Savefile)
        self.done = False

    def take(self, q, chunk, mask):
        """One chunk of queue ``q``: its records into the merge, the chunk back to its pool."""
        self.seen += len(chunk)
        if self.sink.fmt is None:       # counting only: no record is built
            n = len(chunk) if mask is None else int(mask.sum())
            self.delivered += min(n, self.limit - self.delivered)
            chunk.release()
            self.done = self.delivered >= self.limit
            return
        if self.direct:
            self.delivered += self.sink.put_chunk(chunk, mask, self.limit - self.delivered,
                                                  self.iface[q])
            chunk.release()
            self.done = self.delivered >= self.limit or self.sink.finished
            return
        blob, _, last = _pcap.pcap_records(chunk, self.args.snaplen, _pcap.FORMATS["pcapng"],
                                           mask, min(self.limit - self.delivered, 0xFFFFFFFF),
                                           self.iface[q])      # the merge reads pcapng blocks
        chunk.release()
        self.merge.add(q, blob, last)

    def flush(self, final=False):
        """Let out what the merge allows, file by file; False once the sink wants no more."""
        if self.sink.fmt is None:
            return not self.done
        while self.delivered < self.limit:
            out, n = self.merge.take(_pcap.FORMATS[self.sink.fmt], self.limit - self.delivered,
                                     self.sink.budget(), final)
            if not n:
                break
            if not self.sink.write(out, n):     # -G -W made its files, or the reader left
                self.done = True
                break
            self.delivered += n
        if self.delivered >= self.limit:
            self.done = True
        return not self.done


def _live(args, eng, handles, source, sink):
    stop = []
    old = {s: signal.signal(s, lambda *a: stop.append(1))      # ^C ends it as in tcpdump, even
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}  # when started with it ignored
    flush_ns = max(_flush_ns(eng.rx_queue(q)) for q in range(len(handles)))
    run = _Run(args, sink, len(handles), flush_ns + MERGE_SLACK_NS,
               [q // args.queues for q in range(len(handles))])    # the engine's queue order
    pub = Publisher(eng)
    tty = args.progress if args.progress is not None else \
        sys.stderr.isatty() and (args.write not in (None, "-") or args.json)
    eng.start()
    _listening(args, eng, sink)         # after start(), as tcpdump: packets are let in now
    t0 = time.monotonic()
    deadline = None if args.duration is None else t0 + args.duration
    wires = [nic.port.wire for nic in eng.nics] if source is not None else []
    for w in wires:
        w.play(source, concurrent=args.wire_thread)
    quiet_until = None
    next_progress = 0.0
    try:
        while not stop and not run.done:
            got = False
            for q, h in enumerate(handles):
                r = h.next_chunk(0)
                if r is None:
                    run.merge.empty(q, time.time_ns())
                    continue
                got = True
                run.take(q, *r)
                if run.done:
                    break
            if not run.flush():
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if wires:                   # a played source ends the capture once drained
                if any(w.running for w in wires) or got:
                    quiet_until = None
                elif quiet_until is None:
                    quiet_until = now + 0.05 + flush_ns / 1e9
                elif now >= quiet_until:
                    break
            pub.maybe({"seen": run.seen, "delivered": run.delivered})
            if tty and now >= next_progress:
                _progress(eng, run, now - t0)
                next_progress = now + 0.25
            if not got and eng.threads:
                eng.wait(timeout=0.02)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for w in wires:
            w.stop()
        pub.close()
    run.flush(final=True)
    elapsed = time.monotonic() - t0
    eng.stop()
    snap = stats.snapshot(eng)
    if tty:
        sys.stderr.write("\r\033[K")
    summary = _summary(args, eng, snap, run, elapsed)
    if wires:
        played = [w.stats() for w in wires]
        summary["wire_sent"] = sum(p["sent"] for p in played)
        if getattr(source, "max_gap", None) is not None:   # a pcap: its long pauses are cut
            summary["wire_max_gap_s"] = source.max_gap
            summary["wire_gaps_shortened"] = sum(p["gaps_shortened"] for p in played)
    sink.close(summary)
    _report(args, summary)
    return 0


def _flush_ns(rxq):
    """How long a queue may hold a packet before delivering it (its flush timeout)."""
    return getattr(rxq, "flush_ns", None) or getattr(rxq, "tov_ms", 1) * 1_000_000


def _listening(args, eng, sink):
    names = ", ".join(n.name for n in eng.nics)
    queues = f" ({len(eng.workers)} queues)" if len(eng.workers) > 1 else ""
    if isinstance(sink, Printer) and not args.verbose and not args.quick:
        print("wirecap capture: verbose output suppressed, use -v[v]... for full protocol "
              "decode", file=sys.stderr)
    print(f"wirecap capture: listening on {names}{queues}, link-type {_link(args.linktype)}, "
          f"snapshot length {args.snaplen} bytes", file=sys.stderr)


def _drops(eng, snap):
    """Per device: (its kind, [(count, where)] for every place it drops frames)."""
    out = []
    for nic, dev in zip(eng.nics, snap.devices):
        kind = nic.kind
        empty = sum(q.get("pool_empty", 0) for q in snap.queues if q["device"] == nic.name)
        if kind == "afpacket":
            out.append((kind, [(dev["nic_dropped"], f"by the kernel on {nic.name} (AF_PACKET "
                                                    f"ring full)")]))
            continue
        out.append((kind, [
            (dev["nic_dropped"], f"at {nic.name}'s receive ring (no free descriptor" +
                                 (f"; its pools ran out of chunks {empty:,} times)" if empty
                                  else ": the capture threads fell behind)")),
            (dev["buffer_dropped"], f"in {nic.name}'s packet buffer"),
            (dev["mac_dropped"], f"by {nic.name}'s MAC (too long or short, or a bad CRC)")]))
    return out


def _summary(args, eng, snap, run, elapsed):
    tot = snap.totals
    per_device, drops = [], {}
    for (kind, where), dev in zip(_drops(eng, snap), snap.devices):
        lost = sum(n for n, _ in where)
        drops.update({w: n for n, w in where})
        # pcapng's statistics: the kernel's drops are the OS's, the NIC's the interface's
        per_device.append({"received": dev["packets"] + lost,
                           ("os_dropped" if kind == "afpacket" else "dropped"): lost})
    dropped = sum(drops.values())
    return {"devices": [n.name for n in eng.nics], "queues": len(eng.workers),
            "mode": eng.mode, "seen": run.seen, "delivered": run.delivered,
            "received_by_filter": run.seen + dropped, "dropped": dropped, "drops": drops,
            "captured": tot["packets"], "nic_dropped": tot["nic_dropped"],
            "buffer_dropped": tot["buffer_dropped"], "mac_dropped": tot["mac_dropped"],
            "discarded_at_stop": tot["discarded"], "elapsed_s": elapsed, "file": args.write,
            "filter": args.filter, "per_device": per_device, "per_queue": snap.queues}


def _report(args, summary):
    if args.json:
        out = sys.stdout if args.write != "-" else sys.stderr
        json.dump(summary, out, indent=2)
        print(file=out)
        return
    err = sys.stderr
    print(f"{summary['delivered']} packets captured", file=err)
    print(f"{summary['received_by_filter']} packets received by filter", file=err)
    print(f"{summary['dropped']} packets dropped by kernel", file=err)
    for where, n in summary["drops"].items():
        if n:
            print(f"  {n} dropped {where}", file=err)
    if summary["discarded_at_stop"]:
        print(f"  {summary['discarded_at_stop']} captured but not read before the stop",
              file=err)
    if summary.get("wire_gaps_shortened"):
        n, gap = summary["wire_gaps_shortened"], summary["wire_max_gap_s"]
        print(f"  {n} pause{'s' if n > 1 else ''} of the --traffic file longer than {gap:g} s "
              f"{'were' if n > 1 else 'was'} played as {gap:g} s", file=err)


def _rate(pps):
    for unit, scale in (("Mpps", 1e6), ("kpps", 1e3)):
        if pps >= scale:
            return f"{pps / scale:6.2f} {unit}"
    return f"{pps:6.0f} pps"


def _progress(eng, run, elapsed):
    tot = stats.snapshot(eng).totals
    sys.stderr.write(f"\r\033[K{elapsed:7.1f} s  {run.seen:>12,} captured  {run.delivered:>12,} "
                     f"kept  {tot['dropped']:>10,} dropped  "
                     f"{_rate(run.seen / elapsed if elapsed else 0)}")
    sys.stderr.flush()


# ----------------------------------------------------------------------------- -r FILE
def _offline(args):
    """-r FILE: the file's packets (pcap or pcapng, read by libpcap a batch at a time), their
    original timestamps, through the same filter and sink."""
    from ._bpf import Filter
    try:
        src = _pcap.Savefile(args.read)
    except OSError as e:
        raise WirecapError(f"-r {args.read}: {e.strerror}") from None
    with src:
        if not args.snap_given and 0 < src.snaplen <= MAX_SNAPLEN:
            args.snaplen = src.snaplen      # tcpdump keeps the file's snapshot length
        args.linktype = src.linktype
        filt = Filter(args.filter, linktype=src.linktype, snaplen=args.snaplen) \
            if args.filter else None
        if args.user is not None:
            drop_privileges(args.user)
        sink = _open_sink(args, [args.read])
        print(f"reading from file {args.read}, link-type {_link(src.linktype)}, snapshot "
              f"length {args.snaplen}", file=sys.stderr)
        run = _Run(args, sink, 1, 0)
        stop = []
        old = signal.signal(signal.SIGINT, lambda *a: stop.append(1))
        try:
            while not stop and not run.done:
                blob, n, last = src.records(filt, args.snaplen, run.limit - run.delivered)
                if not n:
                    break
                run.seen = src.seen
                if sink.fmt is None:        # counting only
                    run.delivered += n
                    run.done = run.delivered >= run.limit
                    continue
                run.merge.add(0, blob, last)
                if not run.flush(final=True):
                    break
        finally:
            signal.signal(signal.SIGINT, old)
            sink.close({"delivered": run.delivered, "received_by_filter": src.seen,
                        "dropped": 0, "drops": {}})
    if args.json:
        json.dump({"file": args.read, "seen": src.seen, "delivered": run.delivered,
                   "filter": args.filter}, sys.stdout, indent=2)
        print()
    return 0


# ----------------------------------------------------------------------------- -D
_STATES = (("up", "Up"), ("running", "Running"), ("loopback", "Loopback"))


def list_sources():
    """-D: pcap.findalldevs(), numbered and flagged as tcpdump prints them."""
    from .pcap import findalldevs
    for i, dev in enumerate(findalldevs(), 1):
        states = [word for flag, word in _STATES if flag in dev.flags]
        print(f"{i}.{dev.name}" + (f" ({dev.description})" if dev.description else "") +
              (f" [{', '.join(states)}]" if states else ""))
    return 0
