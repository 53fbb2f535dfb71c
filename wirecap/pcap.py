"""A libpcap-compatible handle on one receive queue, shaped like pcapy and pypcap.

    import wirecap.pcap as pcap
    p = pcap.open_live("sim:0", 65535, True, 100)     # device, snaplen, promisc, to_ms
    p.setfilter("udp and port 5001")
    p.loop(1000, lambda hdr, data: print(hdr.getlen(), bytes(data[:14]).hex()))

Callbacks get a Header (getts(), getcaplen(), getlen()) and a zero-copy Packet view of the
packet that is valid during the call only; next() and iteration return copies.
"""
from __future__ import annotations


from . import _engine, _pcap
from .dump import PcapWriter
from .engine import Engine
from .errors import WirecapError

DLT_EN10MB = 1
Header = _pcap.Header
Packet = _pcap.Packet


class PcapStats(tuple):
    """(recv, drop, ifdrop) as pcapy returns them; the other counters as attributes."""

    def __new__(cls, recv, drop, ifdrop, **extra):
        self = super().__new__(cls, (recv, drop, ifdrop))
        self.__dict__.update(extra, recv=recv, drop=drop, ifdrop=ifdrop)
        return self


def open_live(device, snaplen=65535, promisc=True, to_ms=1000, **engine_options):
    """Open one receive queue of ``device`` (pcapy's signature); the handle owns its engine."""
    engine = Engine(device, queues=1, promiscuous=bool(promisc), **engine_options).start()
    return Handle(engine, 0, snaplen=snaplen, timeout_ms=to_ms, owns_engine=True)


class Handle:
    """pcap-style reading from receive queue ``queue`` of a running Engine."""

    def __init__(self, engine, queue=0, snaplen=65535, timeout_ms=1000, nonblock=False,
                 owns_engine=False):
        if not 0 < snaplen <= 262144:
            raise WirecapError(f"snaplen {snaplen}: valid range is 1..262144")
        self.engine, self.queue = engine, queue
        self._worker = engine._worker(queue)
        self._snaplen, self._timeout = snaplen, timeout_ms / 1000.0
        self._nonblock, self._owns = nonblock, owns_engine
        self._filter = None
        self._mask = None
        self._chunk, self._pos = None, 0
        self._brk = _pcap.Break()
        self.recv = 0                   # packets seen by this handle (before the filter)
        self.delivered = 0              # packets handed to the application

    # ------------------------------------------------------------------ configuration
    def setfilter(self, expression):
        """Compile ``expression`` with libpcap; on error raise and keep the old filter (and
        every packet waiting): nothing is lost by a bad filter."""
        from ._bpf import Filter
        new = Filter(expression, linktype=DLT_EN10MB, snaplen=self._snaplen) \
            if expression else None
        rxq = self._worker.rxq
        # a device that filters (AF_PACKET: the kernel) drops what fails before it takes ring
        # space; the filter still runs here for what the ring already holds and for buddies'
        # chunks
        rxq.device.set_filter(expression or None, queue=rxq.index)
        self._filter = new
        if self._chunk is not None:
            self._mask = self._compute_mask(self._chunk)

    def setnonblock(self, nonblock):
        self._nonblock = bool(nonblock)

    def getnonblock(self):
        return self._nonblock

    def datalink(self):
        return DLT_EN10MB

    def snapshot(self):
        return self._snaplen

    def fileno(self):
        """Readable while captured chunks wait for this handle (for select/poll/epoll)."""
        return self._worker.capture_q.fileno()

    getfd = fileno

    def breakloop(self):
        self._brk.requested = True

    # ------------------------------------------------------------------ reading
    def _next_chunk(self, wait):
        if self._chunk is not None and self._pos < len(self._chunk):
            return True
        if self._chunk is not None:
            self._chunk.release()
            self._chunk = None
        c = self.engine.next_chunk(self.queue, 0 if (self._nonblock or not wait)
                                   else self._timeout)
        if c is None:
            return False
        self._chunk, self._pos = c, 0
        self.recv += len(c)
        self._mask = self._compute_mask(c)
        return True

    def _compute_mask(self, chunk):
        if self._filter is None:
            return None
        return _engine.filter_chunk(self._filter, chunk)

    def dispatch(self, cnt, callback):
        """Process packets from one captured chunk (at most ``cnt``; -1 or 0: all of it),
        waiting up to the read timeout for it unless non-blocking. Returns how many."""
        self._brk.requested = False
        if not self._next_chunk(True):
            return 0
        end = len(self._chunk) if cnt <= 0 else min(len(self._chunk), self._pos + cnt)
        self._pos, n = _pcap.run_callbacks(self._chunk, self._pos, end, callback,
                                             self._snaplen, self._mask, self._brk)
        self.delivered += n
        return n

    def loop(self, cnt, callback):
        """Call ``callback`` for ``cnt`` packets (<= 0: until breakloop()). Returns how many."""
        self._brk.requested = False
        done = 0
        while (cnt <= 0 or done < cnt) and not self._brk.requested:
            if not self._next_chunk(True):
                if self._nonblock:
                    break
                continue
            end = len(self._chunk)
            if cnt > 0:
                end = min(end, self._pos + cnt - done)
            self._pos, n = _pcap.run_callbacks(self._chunk, self._pos, end, callback,
                                                 self._snaplen, self._mask, self._brk)
            done += n
        self.delivered += done
        return done

    def next(self):
        """(Header, bytes) of the next packet, or (None, b'') after the read timeout."""
        got = []
        while not got:
            if self.dispatch(1, lambda h, d: got.append((h, bytes(d)))) == 0 and \
                    (self._chunk is None or self._pos >= len(self._chunk)):
                return None, b""
        return got[0]

    def __iter__(self):
        while True:
            h, data = self.next()
            if h is None:
                if self._nonblock:
                    return
                continue
            yield h, data

    def chunks(self, timeout=None):
        """The chunk-level API: captured chunks with numpy views; release() each one."""
        return self.engine.chunks(self.queue, timeout)

    # ------------------------------------------------------------------ files and stats
    def dump_open(self, path, nanosecond=False):
        """A dumper: dump(header, data) appends to a pcap file (µs, or ns timestamps)."""
        return Dumper(path, nanosecond=nanosecond, snaplen=self._snaplen)

    def stats(self):
        """(recv, drop, ifdrop): packets seen, dropped for lack of buffers (the NIC counted
        them on this queue), dropped by the interface (missed, packet buffer full). Our own
        counters are attributes."""
        counters = [nic.counters() for nic in self.engine.nics]
        s = self.engine.stats(counters)[self.queue]
        hw = counters[[n.name for n in self.engine.nics].index(s["device"])]
        return PcapStats(self.recv, s["nic_dropped"], hw.get("MPC0", 0),
                         delivered=self.delivered, **{k: v for k, v in s.items()
                                                      if k not in ("recv", "drop", "ifdrop")})

    def close(self):
        if self._chunk is not None and not self._chunk.released:
            self._chunk.release()
        self._chunk = None
        if self._owns:
            self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Dumper(PcapWriter):
    """pcapy's dumper: dump(header, data) appends one packet."""

    def dump(self, header, data):
        self.write(header.ts_ns, data, header.len)
