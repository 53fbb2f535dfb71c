"""pcapy-ng's API (and pypcap's shape) on wirecap's receive queues and on pcap files.

    import wirecap.pcap as pcapy                      # a pcapy-ng script's only change
    p = pcapy.open_live("eth0", 65535, True, 100)     # device, snaplen, promisc, to_ms
    p.setfilter("udp and port 5001")
    p.loop(1000, lambda hdr, data: print(hdr.getlen(), bytes(data[:14]).hex()))

Devices are named as everywhere in wirecap (``sim:0``, ``pci:0000:03:00.0``, ``afpacket:eth0``,
or a bare interface name, which means AF_PACKET); ``findalldevs()`` lists them. Callbacks get a
Header (getts(), getcaplen(), getlen()) and a zero-copy Packet view of the packet that is valid
during the call only; next() and iteration return copies. ``open_offline(path)`` reads a pcap
or pcapng file (read by libpcap, as it is asked for) with the same filters and the same
loop/dispatch/next semantics; ``any`` captures every interface, in libpcap's cooked link
types (``datalink()``, ``list_datalinks()``, ``set_datalink()``). pypcap's
shape: ``pcap(name)``, whose loops and iteration hand out a float timestamp.
"""
from __future__ import annotations

import fcntl
import inspect
import math
import os
import socket
import struct

import numpy as np

from . import _engine, _pcap, devices
from ._bpf import Filter, FilterError
from .afpacket import BLOCK_SIZE as AF_PACKET_BLOCK
from .dump import PcapWriter
from .engine import Engine
from .errors import WirecapError

Header = _pcap.Header
Packet = _pcap.Packet
PcapError = WirecapError        # pcapy.PcapError: every wirecap error is one
BPFError = FilterError          # pcapy.BPFError: a filter libpcap refused

# link types (DLT_*) and capture directions (pcap_direction_t), as pcapy exports them
DLT_NULL, DLT_EN10MB, DLT_RAW, DLT_LINUX_SLL, DLT_LINUX_SLL2 = 0, 1, 12, 113, 276
PCAP_D_INOUT, PCAP_D_IN, PCAP_D_OUT = 0, 1, 2
# pcap_set_*()'s status codes after activation, and pcap_set_rfmon's "not supported"
PCAP_ERROR_ACTIVATED, PCAP_ERROR_RFMON_NOTSUP = -4, -6
_SIOCGIFADDR, _SIOCGIFNETMASK = 0x8915, 0x891B          # <linux/sockios.h>
_SOL_PACKET, _PACKET_FANOUT, _PACKET_IGNORE_OUTGOING = 263, 18, 23     # <linux/if_packet.h>
PACKET_FANOUT_HASH, PACKET_FANOUT_LB, PACKET_FANOUT_CPU, PACKET_FANOUT_ROLLOVER, \
    PACKET_FANOUT_RND = 0, 1, 2, 3, 4
_IFF_UP, _IFF_LOOPBACK, _IFF_RUNNING = 0x1, 0x8, 0x40   # <linux/if.h>
_LINK_HEADER = {DLT_NULL: 4, DLT_RAW: 0, DLT_LINUX_SLL: 16, DLT_LINUX_SLL2: 20}  # pypcap's dloff
_PACKET_OUTGOING = 4                                    # sll_pkttype, <linux/if_packet.h>


class PcapStats(tuple):
    """(recv, drop, ifdrop) as pcapy returns them; the other counters as attributes."""

    def __new__(cls, recv, drop, ifdrop, **extra):
        self = super().__new__(cls, (recv, drop, ifdrop))
        self.__dict__.update(extra, recv=recv, drop=drop, ifdrop=ifdrop)
        return self


class Interface(str):
    """One entry of findalldevs(): the device name (a str, as pcapy lists them) with
    ``description``, ``flags`` (a set of "up", "running", "loopback") and ``addresses``
    (IPv4 (address, netmask) pairs)."""

    def __new__(cls, name, description, flags=(), addresses=()):
        self = super().__new__(cls, name)
        self.name, self.description = name, description
        self.flags, self.addresses = frozenset(flags), tuple(addresses)
        return self


def _ipv4(iface):
    """(address, netmask) of ``iface`` as dotted quads, or None when it has no IPv4 address."""
    req = struct.pack("256s", iface.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            addr = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, req)[20:24]
            mask = fcntl.ioctl(s.fileno(), _SIOCGIFNETMASK, req)[20:24]
        except OSError:
            return None
    return socket.inet_ntoa(addr), socket.inet_ntoa(mask)


def _iface_flags(iface):
    try:
        with open(f"/sys/class/net/{iface}/flags") as f:
            bits = int(f.read(), 16)
    except (OSError, ValueError):
        return set()
    return {n for n, b in (("up", _IFF_UP), ("running", _IFF_RUNNING),
                           ("loopback", _IFF_LOOPBACK)) if bits & b}


def _bound_82599s(sysfs="/sys"):
    """pci:BDF names of the 82599 ports bound to vfio-pci."""
    from vfio_setup.pci import INTEL, IXGBE_82599
    top = os.path.join(sysfs, "bus/pci/drivers/vfio-pci")
    out = []
    for bdf in sorted(os.listdir(top)) if os.path.isdir(top) else ():
        try:
            with open(os.path.join(top, bdf, "vendor")) as v, \
                    open(os.path.join(top, bdf, "device")) as d:
                ids = v.read().strip()[2:], d.read().strip()[2:]
        except OSError:
            continue                    # not a device link (bind, new_id, ...)
        if ids[0] == INTEL and ids[1] in IXGBE_82599:
            out.append((f"pci:{bdf}", f"Intel {IXGBE_82599[ids[1]]}, bound to vfio-pci"))
    return out


def findalldevs():
    """Every device wirecap can open, as pcapy lists them (a list of names) and each with a
    description: this namespace's interfaces (AF_PACKET; up and running ones first, loopback
    last, as libpcap orders them), the 82599 ports bound to vfio-pci, and the model's port 0
    (``sim:N`` opens any port N)."""
    ifaces = []
    for _, name in socket.if_nameindex():
        flags = _iface_flags(name)
        addr = _ipv4(name)
        ifaces.append(Interface(name, f"{name}: Linux interface, through AF_PACKET"
                                      + ("" if "up" in flags else " (down)"),
                                flags, [addr] if addr else []))
    ifaces.append(Interface("any", "every interface, through AF_PACKET, in cooked link types",
                            {"up", "running"}))
    # libpcap's order: up, running, then "any" after the other interfaces but before loopback
    ifaces.sort(key=lambda i: ("up" not in i.flags, "running" not in i.flags,
                               2 if "loopback" in i.flags else i.name == "any"))
    devs = ifaces + [Interface(n, d, {"up"}) for n, d in _bound_82599s()]
    devs.append(Interface("sim:0", "the Intel 82599 model (software), port 0; sim:N for others",
                          {"up", "running"}))
    return devs


def lookupdev():
    """The first interface findalldevs() lists that is up and not loopback (as libpcap
    picks; never ``any``)."""
    for dev in findalldevs():
        if "up" in dev.flags and "loopback" not in dev.flags and dev != "any":
            return str(dev)
    raise PcapError("no interface is up here (`ip link` lists them); name a device, e.g. sim:0")


def open_live(device, snaplen=65535, promisc=True, to_ms=1000, **engine_options):
    """Open one receive queue of ``device`` (pcapy's signature); the handle owns its engine.
    ``engine_options`` go to Engine (geometry, threads, ...)."""
    h = create(device, **engine_options)
    h.set_snaplen(snaplen)
    h.set_promisc(promisc)
    h.set_timeout(to_ms)
    h.activate()
    return h


def create(device, **engine_options):
    """A handle on ``device`` that is not capturing yet (pcap_create): set_snaplen(),
    set_promisc(), set_timeout(), set_buffer_size(), set_immediate_mode(), then activate()."""
    if not isinstance(device, str) or not device:
        raise PcapError(f"device {device!r}: name one, e.g. sim:0 or eth0 (findalldevs() "
                        f"lists them)")
    h = Handle(None, 0, owns_engine=True)
    h._device, h._options = device, dict(engine_options)
    return h


def open_offline(path):
    """Read the pcap or pcapng file ``path`` through a handle: setfilter, loop, dispatch, next
    and iteration as on a live handle, with the file's own timestamps."""
    return OfflineHandle(path)


def datalinks(device):
    """The link types (DLT_*) a capture on ``device`` can hand out, as tcpdump -L lists them:
    DLT_EN10MB everywhere but on ``any``: DLT_LINUX_SLL and DLT_LINUX_SLL2."""
    _, where = devices.parse(device)
    link_types = getattr(devices.device_class(device), "link_types", None)
    return tuple(link_types(where)) if link_types else (DLT_EN10MB,)


def default_datalink(device):
    """The link type a capture on ``device`` hands out unless set_datalink() chooses."""
    _, where = devices.parse(device)
    default = getattr(devices.device_class(device), "default_link_type", None)
    return default(where) if default else DLT_EN10MB


def compile(linktype, snaplen, filter, optimize, netmask):
    """pcapy's compile(): a BPFProgram of ``filter`` for link type ``linktype``."""
    return BPFProgram(Filter(filter, linktype=linktype, snaplen=snaplen,
                             optimize=bool(optimize), netmask=netmask & 0xFFFFFFFF))


class BPFProgram:
    """A compiled filter as pcapy hands it out: filter(packet) and get_bpf()."""

    def __init__(self, compiled):
        self._filter = compiled

    def filter(self, packet):
        """The snapshot length libpcap's bpf_filter returns: nonzero when ``packet`` passes."""
        return self._filter.snaplen if self._filter.matches(bytes(packet)) else 0

    def get_bpf(self):
        """The instructions as (code, jt, jf, k) tuples."""
        return self._filter.program

    def __repr__(self):
        return f"<BPFProgram {self._filter.expression!r}, {len(self._filter)} instructions>"


class Handle:
    """pcap-style reading from receive queue ``queue`` of a running Engine (``engine`` None:
    a handle create() made, which opens its own engine at activate())."""

    def __init__(self, engine, queue=0, snaplen=65535, timeout_ms=1000, nonblock=False,
                 owns_engine=False):
        self._check_snaplen(snaplen)
        self.engine, self.queue = None, queue
        self._rxq = None
        self._snaplen, self._timeout = snaplen, timeout_ms / 1000.0
        self._nonblock, self._owns = nonblock, owns_engine
        self._filter = None
        self._direction = PCAP_D_INOUT
        self._mask = None
        self._chunk, self._pos = None, 0
        self._brk = _pcap.Break()
        self._device, self._options, self._promisc = None, {}, True
        self._tx = None
        self.recv = 0                   # packets seen by this handle (before the filter)
        self.delivered = 0              # packets handed to the application
        if engine is not None:
            self._attach(engine)

    @staticmethod
    def _check_snaplen(snaplen):
        if not 0 < snaplen <= 262144:
            raise WirecapError(f"snaplen {snaplen}: valid range is 1..262144")

    def _attach(self, engine):
        self.engine = engine
        self._rxq = engine.rx_queue(self.queue)

    def _live(self):
        if self.engine is None:
            raise PcapError(f"{self._device}: this handle is not activated yet: call "
                            f"activate() first (create() makes it inactive)")

    # ------------------------------------------------------------------ pcap_create, pcap_set_*
    def _setting(self):
        """0 while the handle is inactive, PCAP_ERROR_ACTIVATED after (as libpcap returns)."""
        return 0 if self.engine is None else PCAP_ERROR_ACTIVATED

    def set_snaplen(self, snaplen):
        self._check_snaplen(snaplen)
        if self.engine is None:
            self._snaplen = snaplen
        return self._setting()

    def set_promisc(self, promisc):
        if self.engine is None:
            self._promisc = bool(promisc)
        return self._setting()

    def set_timeout(self, to_ms):
        """The read timeout in ms; 0 (or less) waits for packets without a timeout, as in
        libpcap."""
        if self.engine is None:
            self._timeout = to_ms / 1000.0 if to_ms > 0 else None
        return self._setting()

    def set_immediate_mode(self, immediate):
        """Deliver each packet at once: a partly filled segment is flushed without waiting."""
        if self.engine is None and immediate:
            self._options["flush_us"] = 0
        return self._setting()

    def set_buffer_size(self, size):
        """The pool's size in bytes: R = as many chunks as ``size`` needs (at least 2), a
        chunk being M buffers of B bytes on an 82599, or one ring block on AF_PACKET."""
        if self.engine is None:
            geometry = {k: p.default for k, p in inspect.signature(Engine).parameters.items()}
            geometry.update(self._options)
            if "block_size" in devices.device_class(self._device).rx_options:
                chunk = geometry["block_size"] or AF_PACKET_BLOCK
            else:
                chunk = geometry["segment"] * geometry["bufsize"]
            self._options["chunks"] = max(2, math.ceil(size / chunk))
        return self._setting()

    def set_rfmon(self, rfmon):
        return PCAP_ERROR_RFMON_NOTSUP if rfmon else self._setting()

    def activate(self):
        """Open the device and start capturing (pcap_activate); 0 on success."""
        if self.engine is not None:
            return PCAP_ERROR_ACTIVATED
        engine = Engine(self._device, queues=1, promiscuous=self._promisc, **self._options)
        try:
            engine.start()
            self._attach(engine)
        except BaseException:
            engine.close()
            raise
        return 0

    # ------------------------------------------------------------------ configuration
    def setfilter(self, expression):
        """Compile ``expression`` with libpcap; on error raise and keep the old filter (and
        every packet waiting): nothing is lost by a bad filter."""
        self._live()
        if isinstance(expression, BPFProgram):
            expression = expression._filter.expression
        new = Filter(expression, linktype=self.datalink(), snaplen=self._snaplen) \
            if expression else None
        rxq = self._rxq
        # a device that filters (AF_PACKET: the kernel) drops what fails before it takes ring
        # space; the filter still runs here for what the ring already holds and for buddies'
        # chunks
        rxq.device.set_filter(expression or None, queue=rxq.index, snaplen=self._snaplen)
        self._filter = new
        if self._chunk is not None:
            self._mask = self._compute_mask(self._chunk)

    def setnonblock(self, nonblock):
        self._nonblock = bool(nonblock)

    def getnonblock(self):
        return self._nonblock

    def datalink(self):
        """The link type of the packets handed out: DLT_EN10MB, or on ``any`` a cooked one
        (DLT_LINUX_SLL2 unless set_datalink() chose DLT_LINUX_SLL)."""
        return getattr(self._rxq, "linktype", DLT_EN10MB)

    def list_datalinks(self):
        """The link types set_datalink() takes here (pcap_list_datalinks)."""
        self._live()
        return list(datalinks(self._rxq.device.name))

    def set_datalink(self, linktype):
        """Hand out packets of ``linktype`` (one of list_datalinks()) from now on; the filter
        is compiled again for it."""
        self._live()
        if linktype not in self.list_datalinks():
            names = ", ".join(map(_pcap.datalink_name, self.list_datalinks()))
            raise PcapError(f"{self._rxq.device.name}: link type {linktype} "
                            f"({_pcap.datalink_name(linktype)}) is not one it hands out: "
                            f"{names}")
        if linktype != self.datalink():
            self._rxq.device.set_linktype(linktype)
            if self._filter is not None:
                self.setfilter(self._filter.expression)

    def snapshot(self):
        """The snap length (pcap_snapshot): at most this many bytes of each packet are kept."""
        return self._snaplen

    def _iface(self):
        """The Linux interface behind this handle's device, or None (82599 ports, the model)."""
        self._live()
        return getattr(self._rxq.device, "iface", None)

    def getnet(self):
        """The IPv4 network of the device's interface as a dotted quad; 0.0.0.0 if it has
        none (as pcapy, when pcap_lookupnet fails), and always on 82599 ports."""
        return self._net()[0]

    def getmask(self):
        """The IPv4 netmask of the device's interface; 0.0.0.0 when it has none."""
        return self._net()[1]

    def _net(self):
        iface = self._iface()
        got = _ipv4(iface) if iface else None
        if got is None:
            return "0.0.0.0", "0.0.0.0"
        addr, mask = (struct.unpack("!I", socket.inet_aton(x))[0] for x in got)
        return socket.inet_ntoa(struct.pack("!I", addr & mask)), got[1]

    def sendpacket(self, data):
        """Send one frame (bytes-like, Ethernet header first, no FCS) out of the device:
        through transmit queue 0 on an 82599 (copied into its transmit pool), or through an
        AF_PACKET socket bound to the interface."""
        self._live()
        if self._tx is None:
            self._tx = self.engine.tx_queue(self._rxq.device.name, 0)
        self._tx.send(bytes(data))

    def setdirection(self, direction):
        """Which packets to capture: PCAP_D_INOUT (default), PCAP_D_IN (received only) or,
        on AF_PACKET, PCAP_D_OUT (sent only: the packet type the kernel recorded with each
        packet is PACKET_OUTGOING). The 82599 and the model capture received frames only:
        IN and INOUT mean the same there, and OUT is refused."""
        self._live()
        if direction not in (PCAP_D_INOUT, PCAP_D_IN, PCAP_D_OUT):
            raise PcapError(f"setdirection({direction!r}): PCAP_D_INOUT (0), PCAP_D_IN (1) or "
                            f"PCAP_D_OUT (2)")
        if self._iface() is None:
            if direction == PCAP_D_OUT:
                raise PcapError(f"setdirection(PCAP_D_OUT): {self._rxq.device.name} only "
                                f"receives (an 82599's receive queues see no frame it sends); "
                                f"PCAP_D_OUT needs an AF_PACKET interface")
            return
        # the kernel skips what was sent, or stops skipping; what was received is skipped here
        self._sockopt(_PACKET_IGNORE_OUTGOING, 1 if direction == PCAP_D_IN else 0)
        self._direction = direction
        if self._chunk is not None:
            self._mask = self._compute_mask(self._chunk)

    def set_fanout(self, group_id, fanout_type=PACKET_FANOUT_HASH):
        """Join PACKET_FANOUT group ``group_id`` (pcapy-ng's Linux extra): the kernel spreads
        the interface's packets over every handle in the group. AF_PACKET devices only; one
        engine with several queues does the same (``Engine(..., queues=N, fanout=...)``)."""
        if self._iface() is None:
            raise PcapError(f"set_fanout: {self._rxq.device.name} is not a Linux "
                            f"interface; a packet fanout group needs AF_PACKET")
        self._sockopt(_PACKET_FANOUT, (group_id & 0xFFFF) | (fanout_type << 16))

    def _sockopt(self, option, value):
        """setsockopt(SOL_PACKET, option, value) on this handle's AF_PACKET socket."""
        with socket.socket(fileno=os.dup(self._rxq.fd)) as sock:
            try:
                sock.setsockopt(_SOL_PACKET, option, value)
            except OSError as e:
                raise PcapError(f"{self._rxq.device.name}: setsockopt: {e.strerror}") from None

    def fileno(self):
        """Readable while captured chunks wait for this handle (for select/poll/epoll)."""
        self._live()
        return self.engine.fileno(self.queue)

    getfd = fileno

    def breakloop(self):
        self._brk.requested = True

    # ------------------------------------------------------------------ reading
    def _next_chunk(self, wait):
        self._live()
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
        mask = None if self._filter is None else _engine.filter_chunk(self._filter, chunk)
        if self._direction == PCAP_D_OUT:
            out = (chunk.packet_info == _PACKET_OUTGOING).view(np.uint8)
            mask = out if mask is None else mask & out
        return mask

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

    def next_chunk(self, timeout=None):
        """The chunk-level read, filtered: (chunk, mask) for the next captured chunk, where
        mask is the filter's uint8 verdict per packet (None without a filter), or None after
        ``timeout`` seconds (0: do not wait). release() the chunk; counts in recv."""
        c = self.engine.next_chunk(self.queue, timeout)
        if c is None:
            return None
        self.recv += len(c)
        return c, self._compute_mask(c)

    def chunks(self, timeout=None):
        """The chunk-level API: captured chunks with numpy views; release() each one."""
        return self.engine.chunks(self.queue, timeout)

    # ------------------------------------------------------------------ files and stats
    def dump_open(self, path, nanosecond=False):
        """A dumper: dump(header, data) appends to a pcap file (µs, or ns timestamps)."""
        return Dumper(path, nanosecond=nanosecond, snaplen=self._snaplen,
                      linktype=self.datalink())

    def stats(self):
        """(recv, drop, ifdrop): packets seen, dropped for lack of buffers (the NIC counted
        them on this queue), dropped by the interface (missed, packet buffer full). Our own
        counters are attributes."""
        self._live()
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
        if self._owns and self.engine is not None:
            self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class OfflineHandle:
    """A pcap or pcapng file read like a live handle (what open_offline() returns): libpcap
    reads the records as they are asked for; setfilter() compiles for the file's link type,
    loop()/dispatch()/next()/iteration hand out its packets with their own timestamps; the
    callback's data are bytes."""

    def __init__(self, path):
        try:
            self._file = _pcap.Savefile(path)
        except FileNotFoundError:
            raise PcapError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise PcapError(f"{path}: is a directory, not a pcap file") from None
        except PermissionError:
            raise PcapError(f"{path}: permission denied") from None
        self.path = path
        self._linktype = self._file.linktype
        self._filter, self._closed = None, False
        self._brk = False
        self.delivered = 0              # packets handed to the application

    @property
    def recv(self):
        """Records read from the file so far (before the filter)."""
        return self._file.seen

    def setfilter(self, expression):
        if isinstance(expression, BPFProgram):
            expression = expression._filter.expression
        self._filter = Filter(expression, linktype=self._linktype) if expression else None

    def datalink(self):
        return self._linktype

    def getnet(self):
        return "0.0.0.0"

    getmask = getnet

    def setnonblock(self, nonblock):
        """Reading a file never waits: accepted and without effect, as in libpcap."""

    def getnonblock(self):
        return False

    def breakloop(self):
        self._brk = True

    def _run(self, cnt, callback):
        if self._closed:
            raise PcapError(f"{self.path}: the handle is closed")
        self._brk = False
        n = 0
        while (cnt <= 0 or n < cnt) and not self._brk:
            got = self._file.next(self._filter)
            if got is None:
                break
            ts, data, wire_len = got
            callback(_pcap.make_header(ts, len(data), wire_len), data)
            n += 1
        self.delivered += n
        return n

    def loop(self, cnt, callback):
        """Call ``callback(header, data)`` for ``cnt`` packets (<= 0: to the end of the file)."""
        return self._run(cnt, callback)

    dispatch = loop

    def next(self):
        """(Header, bytes) of the next packet that passes the filter, (None, b'') at the end."""
        got = []
        self._run(1, lambda h, d: got.append((h, d)))
        return got[0] if got else (None, b"")

    def __iter__(self):
        while (got := self.next())[0] is not None:
            yield got

    def stats(self):
        """(recv, drop, ifdrop): records read so far; a file drops nothing."""
        return PcapStats(self.recv, 0, 0, delivered=self.delivered)

    def dump_open(self, path, nanosecond=False):
        return Dumper(path, nanosecond=nanosecond, linktype=self._linktype)

    def snapshot(self):
        """The file's snapshot length."""
        return self._file.snaplen

    def close(self):
        self._closed = True
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class pcap:    # noqa: N801 -- pypcap's name: `import pcap; pcap.pcap(name)`
    """pypcap's shape: ``pcap(name)`` opens a device (lookupdev() when None) or, when ``name``
    is a file, reads it; loop/dispatch call ``callback(timestamp, data, *args)`` with the
    timestamp as float seconds, and iteration yields (timestamp, data)."""

    def __init__(self, name=None, snaplen=65535, promisc=True, timeout_ms=0, immediate=False,
                 **engine_options):
        self.name = lookupdev() if name is None else name
        self.snaplen, self.dloff, self.filter = snaplen, 14, ""
        if os.path.isfile(self.name):
            self._h = open_offline(self.name)
        else:
            self._h = create(self.name, **engine_options)
            self._h.set_snaplen(snaplen)
            self._h.set_promisc(promisc)
            self._h.set_timeout(timeout_ms)
            self._h.set_immediate_mode(immediate)
            self._h.activate()
        self.dloff = _LINK_HEADER.get(self._h.datalink(), 14)

    def setfilter(self, value, optimize=1):
        self._h.setfilter(value)
        self.filter = value

    def loop(self, cnt, callback, *args):
        return self._h.loop(cnt, lambda h, d: callback(h.ts, d, *args))

    def dispatch(self, cnt, callback, *args):
        return self._h.dispatch(cnt, lambda h, d: callback(h.ts, d, *args))

    def __iter__(self):
        for h, data in self._h:
            yield h.ts, data

    def __next__(self):
        h, data = self._h.next()
        if h is None:
            raise StopIteration
        return h.ts, data

    def setnonblock(self, nonblock=True):
        self._h.setnonblock(nonblock)

    def getnonblock(self):
        return self._h.getnonblock()

    def setdirection(self, direction):
        self._h.setdirection(direction)

    def sendpacket(self, data):
        self._h.sendpacket(data)
        return len(data)

    def stats(self):
        return self._h.stats()

    def datalink(self):
        return self._h.datalink()

    def fileno(self):
        return self._h.fileno()

    @property
    def fd(self):
        return self.fileno()

    def close(self):
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Dumper(PcapWriter):
    """pcapy's dumper: dump(header, data) appends one packet."""

    def dump(self, header, data):
        self.write(header.ts_ns, data, header.len)
