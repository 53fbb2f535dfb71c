"""Where ``wirecap capture`` sends what it took: savefiles (tcpdump's -w, -C, -G, -W, -U) and
packet lines, which tcpdump itself prints.

Lines: the records go down a pipe to ``tcpdump -r -`` with the user's print options, so every
protocol tcpdump decodes is printed exactly as tcpdump prints it. Without tcpdump a plain
line per packet says when, from which MAC to which, the EtherType and the length.
"""
from __future__ import annotations

import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

from .dump import MAGIC_NS, PcapngWriter, open_writer
from .errors import WirecapError

LIMIT = (1 << 63) - 1
_SUFFIX = {"": 1_000_000, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}     # tcpdump's -C units


def parse_size(text):
    """-C SIZE: millions of bytes, or a number with k, m or g (KiB, MiB, GiB) as tcpdump reads it."""
    m = re.fullmatch(r"([0-9]{1,12})([kKmMgG]?)", str(text).strip())
    if m is None or int(m.group(1)) == 0:
        raise WirecapError(f"-C {text}: a file size of 1 or more million bytes, or with k, m or g "
                           f"(KiB, MiB, GiB); give e.g. -C 100 or -C 512m")
    return int(m.group(1)) * _SUFFIX[m.group(2).lower()]


class Savefile:
    """-w FILE in ``fmt``, started anew as tcpdump does: with ``size`` (-C) when a file
    exceeds it (FILE, FILE1, FILE2, ...; with ``count`` (-W) a ring FILE0..FILE{count-1});
    with ``seconds`` (-G) every so many seconds, FILE read as a strftime pattern, stopping
    after ``count`` files. pcapng files carry an interface per device and, when closed, an
    interface statistics block for each. Every file is of link type ``linktype`` (DLT_*)."""

    def __init__(self, path, fmt, snaplen, interfaces, size=None, seconds=None, count=None,
                 flush=False, linktype=1):
        self.pattern, self.fmt, self.snaplen, self.linktype = path, fmt, snaplen, linktype
        self.interfaces = interfaces
        self.size, self.seconds, self.count, self.flush = size, seconds, count, flush
        self.digits = len(str(count - 1)) if size and count and count > 1 else 0
        self.index = 0                  # tcpdump's Cflag_count
        self.files = 0                  # files opened (tcpdump's Gflag_count + 1)
        self.names = []
        self.file = None
        self._open()

    def _name(self):
        if self.pattern == "-":
            return "/dev/stdout"
        base = time.strftime(self.pattern, time.localtime(self.opened)) if self.seconds \
            else self.pattern
        if self.index == 0 and self.digits == 0:
            return base
        return f"{base}{self.index:0{self.digits}d}"

    def _open(self):
        self.opened = time.time()
        name = self._name()
        kw = {"interfaces": self.interfaces} if self.fmt == "pcapng" else {}
        try:
            self.file = open_writer(name, self.fmt, snaplen=self.snaplen,
                                    linktype=self.linktype, **kw)
        except OSError as e:
            raise WirecapError(f"-w {name}: {e.strerror}: name a file in a directory you can "
                               f"write to") from None
        self.files += 1
        self.names.append(name)

    def _rotate(self):
        self._close_file(None)
        if self.seconds and self.count and self.files >= self.count:
            return False                # -G with -W: that many files, then stop
        if self.seconds and time.time() - self.opened >= self.seconds:
            self.index = 0
        else:
            self.index += 1
            if self.count and self.index >= self.count:
                self.index = 0
        self._open()
        return True

    def budget(self):
        """Bytes this file takes before the next one (the record that crosses it included)."""
        if not self.size:
            return LIMIT
        return max(1, self.size + 1 - self.file.tell())

    def _writable(self):
        """The file to append to now (the next one once -G says so); None once -G -W has
        made its files."""
        if self.file is not None and self.seconds and \
                time.time() - self.opened >= self.seconds:
            self._rotate()
        return self.file

    def _appended(self):
        if self.flush:
            self.file.flush()
        if self.size and self.file.tell() > self.size:
            self._rotate()

    @property
    def finished(self):
        """-G -W has made its files: nothing more is written."""
        return self.file is None

    def write(self, records, n):
        """Append ``n`` records (the merge stopped at budget()); False, with nothing written,
        once -G -W has made its files."""
        if self._writable() is None:
            return False
        self.file.write_records(records, n)
        self._appended()
        return True

    def put_chunk(self, chunk, mask, limit, interface):
        """Append at most ``limit`` packets of ``chunk`` that pass ``mask``, straight from
        the chunk into the file (and the next ones, as -C says); the records appended."""
        i = n = 0
        while i < len(chunk) and n < limit and self._writable() is not None:
            i, k = self.file.put_chunk(chunk, mask, i, limit - n, self.budget(), interface)
            n += k
            self._appended()
        return n

    def _close_file(self, stats):
        f, self.file = self.file, None
        if f is None:
            return
        if isinstance(f, PcapngWriter) and stats:
            for i, dev in enumerate(stats.get("per_device", [])):
                f.write_statistics(i, time.time_ns(), **dev)
        f.close()

    def close(self, stats=None):
        """Close the last file; ``stats`` (the capture's summary) gives pcapng its interface
        statistics blocks."""
        self._close_file(stats)


def epb_records(batch, interface=0):
    """Enhanced Packet Blocks (ns) for [(timestamp_ns, data, orig_len)], as _pcap builds them."""
    out = []
    for ts, data, orig in batch:
        pad = -len(data) % 4
        total = 32 + len(data) + pad
        out.append(struct.pack("<IIIIIII", 6, total, interface, ts >> 32, ts & 0xFFFFFFFF,
                               len(data), orig) + bytes(data) + bytes(pad) +
                   struct.pack("<I", total))
    return b"".join(out)


def print_flags(args):
    """tcpdump's options for how to print, as the user gave them."""
    flags = ["-n"] * args.numeric + ["-v"] * args.verbose + ["-t"] * args.time_format + \
        ["-x"] * args.hex + ["-X"] * args.hex_ascii
    flags += [f for f, on in (("-e", args.link), ("-q", args.quick), ("-A", args.ascii),
                              ("-l", args.line_buffered)) if on]
    if args.time_stamp_precision == "nano":
        flags.append("--time-stamp-precision=nano")
    return flags


class Printer:
    """Packet lines on ``out``, printed by tcpdump when it is installed."""
    fmt = "pcap-ns"

    def __init__(self, args, out, source="-"):
        self.args, self.out, self.source = args, out, source
        self.proc = None
        tcpdump = shutil.which("tcpdump")
        header = struct.pack("<IHHiIII", MAGIC_NS, 2, 4, 0, 0, args.snaplen,
                             getattr(args, "linktype", 1))
        out.flush()
        if tcpdump is None:
            self._first = None
            self._prev = None
            return
        self.proc = subprocess.Popen(
            [tcpdump, "-r", "-", *print_flags(args)], stdin=subprocess.PIPE, stdout=out,
            stderr=subprocess.PIPE, preexec_fn=_ignore_interrupts)
        self._errors = threading.Thread(target=self._forward_errors, daemon=True)
        self._errors.start()
        self._send(header)

    def _forward_errors(self):
        # tcpdump names the pipe it reads: "reading from file -, link-type ..." is ours to say
        for line in self.proc.stderr:
            text = line.decode(errors="replace")
            if not text.startswith("reading from file -,"):
                sys.stderr.write("tcpdump: " + text if not text.startswith("tcpdump") else text)
                sys.stderr.flush()

    def _send(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()     # lines as the packets come, not when a buffer fills
            return True
        except BrokenPipeError:         # `| head`: tcpdump's reader left, and so did tcpdump
            return False

    def budget(self):
        return LIMIT

    def write(self, records, n):
        if self.proc is not None:
            return self._send(records)
        self._plain(records)
        return True

    def _plain(self, records):
        off, lines = 0, []
        mv = memoryview(records)
        while off < len(mv):
            sec, nsec, caplen, length = struct.unpack_from("<IIII", mv, off)
            data = bytes(mv[off + 16:off + 16 + min(caplen, 14)])
            off += 16 + caplen
            ts = sec * 1_000_000_000 + nsec
            lines.append(f"{self._stamp(ts)}{_ethernet(data)}, length {length}")
        self.out.write("".join(ln + "\n" for ln in lines))
        if self.args.line_buffered:
            self.out.flush()

    def _stamp(self, ts):
        t, nano = self.args.time_format, self.args.time_stamp_precision == "nano"
        first, prev = self._first, self._prev
        self._first = ts if first is None else first
        self._prev = ts
        frac = (lambda v: f"{v // 10**9}.{v % 10**9:09d}") if nano else \
            (lambda v: f"{v // 10**9}.{v % 10**9 // 1000:06d}")
        if t == 1:
            return ""
        if t == 2:
            return frac(ts) + " "
        if t in (3, 5):
            base = prev if t == 3 else self._first
            return frac(ts - (ts if base is None else base)) + " "
        clock = time.strftime("%Y-%m-%d %H:%M:%S" if t == 4 else "%H:%M:%S",
                              time.localtime(ts // 10**9))
        sub = f"{ts % 10**9:09d}" if nano else f"{ts % 10**9 // 1000:06d}"
        return f"{clock}.{sub} "

    def close(self, stats=None):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            self.proc.wait()
            self._errors.join(timeout=5)
            self.proc = None
        else:
            self.out.flush()


def _ethernet(data):
    if len(data) < 14:
        return "[|ether]"
    mac = lambda b: ":".join(f"{x:02x}" for x in b)     # noqa: E731
    return f"{mac(data[6:12])} > {mac(data[0:6])}, ethertype 0x{data[12] << 8 | data[13]:04x}"


def _ignore_interrupts():
    # ^C reaches the whole process group: tcpdump must outlive it to print what is still in
    # the pipe; it ends when we close the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
