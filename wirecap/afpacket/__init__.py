"""``afpacket:IFACE``: WireCAP's engine on any Linux interface, through TPACKET_V3 rings.

Each receive queue is an AF_PACKET socket with its own TPACKET_V3 ring, used as the queue's
ring buffer pool: one ring block is one chunk, R blocks, the block retire timeout is the flush
timeout and giving a block back to the kernel is recycle. Several queues share the
interface's traffic through a fanout group (hash by default). ``AfPacket`` follows the
``wirecap.devices.Device`` protocol; the queues derive from the shared ring (wirecap._ring).

    with Engine("afpacket:eth0", queues=4, mode="advanced") as eng: ...
    p = wirecap.pcap.open_live("afpacket:eth0"); p.setfilter("udp")   # also in the kernel

``afpacket:any`` captures every interface of the network namespace, as tcpdump's ``-i any``:
one socket bound to interface 0, packets without their link header and behind a cooked
header (LINUX_SLL2 by default, or LINUX_SLL) that says which interface, which direction and
from which link address; the filter then runs in user space on the cooked packets.
"""
from __future__ import annotations

import errno
import os
import socket
import threading

from .._bpf import MAX_SNAPLEN, kernel_program
from ..errors import WirecapError
from . import _ring
from ._ring import AfRxQueue, AfTxQueue

BLOCK_SIZE = 1 << 20            # 1 MiB blocks ...
BLOCKS = 32                     # ... 32 of them: a 32 MiB ring per queue (libpcap's: 2 MiB)
FANOUT_MODES = tuple(_ring.FANOUT)
MAX_QUEUES = 256                # PACKET_FANOUT_MAX: members of one fanout group
IFF_UP, IFF_LOOPBACK = 0x1, 0x8     # <linux/if.h>
ANY = "any"                     # every interface (ifindex 0), cooked as libpcap cooks it


def _permission_error(name):
    # CAP_NET_RAW is all a capture needs (not CAP_NET_ADMIN), and only for this one run: a
    # capability on the interpreter file would give it to every program it runs, for everyone
    return WirecapError(f"{name}: opening an AF_PACKET socket needs CAP_NET_RAW: run the capture "
                        f"as root and let it drop to your user once the sockets are open "
                        f"(`sudo wirecap capture -Z $USER ...`), or give only this run the "
                        f"capability (`sudo setpriv --reuid=$(id -u) --regid=$(id -g) "
                        f"--init-groups --inh-caps=+net_raw --ambient-caps=+net_raw "
                        f"wirecap capture ...`; docs/afpacket.md)")


class AfPacket:
    """An interface captured through AF_PACKET (TPACKET_V3).

    promiscuous  receive frames for other MACs too (PACKET_ADD_MEMBERSHIP, undone on close);
                 not on ``any``, which names no one interface (libpcap only warns there)
    fanout       how the kernel spreads packets over the queues: "hash" (flows stay on one
                 queue; fragments reassembled first), "lb" (round robin), "cpu" (the CPU that
                 received it), "rollover" (fill one queue, then the next), "rnd", "qm" (the
                 NIC's receive queue)
    outgoing     capture the interface's outgoing frames too, as tcpdump does; the default
                 (None) does so except on loopback, where every frame would show up twice
                 (once sent, once received), as libpcap skips them there
    """

    open_options = ("promiscuous", "fanout", "outgoing")
    rx_options = ("chunks", "block_size", "flush_us")
    default_chunks = BLOCKS
    kind = "afpacket"

    def __init__(self, iface, promiscuous=True, fanout="hash", outgoing=None):
        if fanout not in _ring.FANOUT:
            raise WirecapError(f"fanout {fanout!r}: choose one of {', '.join(FANOUT_MODES)}")
        self.name, self.iface = f"afpacket:{iface}", iface
        self.closed = False
        self.domain = None              # no DMA domain: the kernel owns the rings
        self.promiscuous, self.fanout, self.outgoing = promiscuous, fanout, outgoing
        self._nqueues = 1
        self._queues, self._tx = [], []
        self._group = -1
        self._totals = {}
        self._lock = threading.Lock()   # the counter thread and stats() both read counters
        self.linktype = self.default_link_type(iface)
        self.failure = None             # why capture ended on its own (interface gone), or None
        try:
            self.ifindex = 0 if iface == ANY else socket.if_nametoindex(self.iface)
        except OSError:
            raise WirecapError(f"{self.name}: no interface {self.iface!r} in this network "
                               f"namespace (`ip link` lists them)") from None
        self._check_up()
        if outgoing is None:
            self.outgoing = not (self._flags() or 0) & IFF_LOOPBACK
        os.close(self._socket())        # fails early and clearly without CAP_NET_RAW

    @staticmethod
    def link_types(iface):
        """The link types (DLT_*) a capture on ``iface`` can hand out, as tcpdump -L lists
        them: cooked ones on ``any``, Ethernet elsewhere."""
        return (_ring.DLT_LINUX_SLL, _ring.DLT_LINUX_SLL2) if iface == ANY else \
            (_ring.DLT_EN10MB,)

    @staticmethod
    def default_link_type(iface):
        """What a capture on ``iface`` hands out unless told: LINUX_SLL2 on ``any`` (as
        libpcap 1.10 picks), Ethernet elsewhere."""
        return _ring.DLT_LINUX_SLL2 if iface == ANY else _ring.DLT_EN10MB

    def set_linktype(self, linktype):
        """Hand out packets of ``linktype`` (one of link_types()) on every queue."""
        if linktype not in self.link_types(self.iface):
            raise WirecapError(f"{self.name}: link type {linktype} is not one this device "
                               f"hands out ({', '.join(map(str, self.link_types(self.iface)))})")
        for q in self._queues:
            q.set_linktype(linktype)
        self.linktype = linktype

    def _socket(self):
        try:
            return _ring.open_socket(self.ifindex == 0)
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EACCES):
                raise _permission_error(self.name) from None
            raise WirecapError(f"{self.name}: {e.strerror}") from None

    def _mtu(self):
        try:
            with open(f"/sys/class/net/{self.iface}/mtu") as f:
                return int(f.read())
        except OSError:
            return 0                    # sysfs of another namespace: not checked

    def _flags(self):
        """The interface's IFF_* flags, or None when sysfs shows another namespace."""
        try:
            with open(f"/sys/class/net/{self.iface}/flags") as f:
                return int(f.read(), 16)
        except OSError:
            return None

    def _check_up(self):
        flags = self._flags()
        if flags is not None and not flags & IFF_UP:    # None: the kernel will tell
            raise WirecapError(f"{self.name}: interface {self.iface} is down; bring it up "
                               f"(`ip link set {self.iface} up`)")

    # ------------------------------------------------------------------ configuration
    def set_rss(self, queues):
        """Spread packets over ``queues`` receive queues (a fanout group when more than 1)."""
        if not 1 <= queues <= MAX_QUEUES:
            raise WirecapError(f"{queues} queues: a fanout group takes 1 to {MAX_QUEUES}")
        if self._queues:
            raise WirecapError("set_rss() before the first rx_queue()")
        self._nqueues = queues

    def _open(self):
        if self.closed:
            raise WirecapError(f"{self.name} is closed: open the device again")

    def rx_queue(self, index=0, chunks=None, block_size=None, flush_us=1000):
        """Receive queue ``index``: a ring of ``chunks`` blocks (default 32) of ``block_size``
        bytes (default 1 MiB, a multiple of the page size); a block that has packets is
        handed over after ``flush_us`` (rounded up to ms; None: the kernel's default).
        Queues beyond set_rss()'s count stay out of the fanout group: each sees every packet."""
        self._open()
        R = BLOCKS if chunks is None else chunks
        B = BLOCK_SIZE if block_size is None else block_size
        self._check_geometry(R, B, flush_us)
        if any(q.index == index for q in self._queues):
            raise WirecapError(f"{self.name} receive queue {index} is already set up")
        tov = 0 if flush_us is None else max(1, -(-int(flush_us) // 1000))
        fd = self._socket()
        try:
            q = AfRxQueue(self, index, fd, B, R, tov, self.linktype)
        except OSError as e:
            os.close(fd)
            raise self._ring_error(e, R, B) from None
        if self.ifindex == 0:
            q.set_filter(self._cooked_program(MAX_SNAPLEN))
        try:
            _ring.bind_socket(q.fd, self.ifindex, True)
            if not self.outgoing:
                _ring.ignore_outgoing(q.fd)
            if self._nqueues > 1:
                self._group = _ring.join_fanout(q.fd, self._group, _ring.FANOUT[self.fanout])
            if self.promiscuous and not self._queues and self.ifindex:
                _ring.set_promiscuous(q.fd, self.ifindex)
        except OSError as e:
            q.close()
            if e.errno == errno.ENETDOWN:
                self._check_up()
            raise WirecapError(f"{self.name}: {e.strerror}") from None
        self._queues.append(q)
        return q

    def _check_geometry(self, R, B, flush_us):
        page = _ring.PAGE_SIZE
        if not isinstance(B, int) or B <= 0 or B % page:
            raise WirecapError(f"{self.name}: block_size={B}: the kernel takes ring blocks of a "
                               f"whole number of pages ({page} bytes), e.g. {1 << 20}")
        if B > _ring.MAX_BLOCK:
            raise WirecapError(f"{self.name}: block_size={B}: the kernel takes blocks below "
                               f"2 GiB (tp_block_size is checked as a signed int)")
        mtu = self._mtu()
        if mtu and B - _ring.BLOCK_HEADER < _ring.slot(mtu + 14):
            raise WirecapError(f"{self.name}: block_size={B}: a block must hold a whole frame of "
                               f"the interface's MTU ({mtu} + 14 bytes take "
                               f"{_ring.slot(mtu + 14) + _ring.BLOCK_HEADER} with headers); "
                               f"the kernel would cut longer frames short")
        if not isinstance(R, int) or R < 1 or R * B >= 1 << 40:
            raise WirecapError(f"{self.name}: chunks={R}: give at least one block, and a ring "
                               f"(chunks x block_size) the machine's memory holds")
        if flush_us is not None and not 0 <= flush_us < (1 << 32) * 1000:
            raise WirecapError(f"{self.name}: flush_us={flush_us}: the retire timeout is a "
                               f"non-negative number of ms below 2^32 (or None)")

    def _ring_error(self, e, R, B):
        if e.errno == errno.ENOMEM:
            return WirecapError(f"{self.name}: the kernel could not allocate a ring of {R} blocks "
                                f"of {B} bytes ({R * B >> 20} MiB): give fewer or smaller blocks")
        if e.errno == errno.EINVAL:
            return WirecapError(f"{self.name}: the kernel refused a TPACKET_V3 ring of {R} blocks "
                                f"of {B} bytes ({e.strerror}): blocks must be a multiple of the "
                                f"page size ({_ring.PAGE_SIZE}) and below 2 GiB, and hold the "
                                f"block header")
        if e.errno in (errno.EPERM, errno.EACCES):
            return _permission_error(self.name)
        return WirecapError(f"{self.name}: {e.strerror}")

    def tx_queue(self, index=0, ndesc=None):
        """A transmit queue: send() and forward() through a socket bound to the interface.
        ``ndesc`` is accepted as Nic.tx_queue takes it; the socket has no ring to size."""
        self._open()
        if any(q.index == index for q in self._tx):
            raise WirecapError(f"{self.name} transmit queue {index} is already set up: use "
                               f"that one")
        fd = self._socket()
        try:
            _ring.bind_socket(fd, self.ifindex, False)
        except OSError as e:
            os.close(fd)
            raise WirecapError(f"{self.name}: {e.strerror}") from None
        q = AfTxQueue(self, index, fd)
        self._tx.append(q)
        return q

    def set_filter(self, expression, queue=None, snaplen=MAX_SNAPLEN):
        """Compile ``expression`` with libpcap and let the kernel run it on every queue (or on
        ``queue``) before packets enter the rings, keeping ``snaplen`` bytes of each (the
        wire length stays in the metadata); None or "" accepts everything. True: the kernel
        filters (the Device protocol); False on ``any``, where only ``snaplen`` applies."""
        if self.ifindex == 0:
            # a filter compiled for cooked headers would need rewriting to run on what the
            # kernel sees (the network header), as libpcap does: here it runs in user space
            program = self._cooked_program(snaplen)
        else:
            program = kernel_program(expression or "", snaplen=snaplen) \
                if expression or snaplen < MAX_SNAPLEN else None
        for q in self._queues:
            if queue is None or q.index == queue:
                q.set_filter(program)
        return self.ifindex != 0

    @staticmethod
    def _cooked_program(snaplen):
        try:
            loopback = socket.if_nametoindex("lo")
        except OSError:
            loopback = 0                # no loopback here: nothing to skip
        return _ring.cooked_program(loopback, snaplen)

    def start(self, link_timeout=None):
        """Let packets in (every queue has joined the fanout group by now)."""
        self._open()
        self._check_up()
        for q in self._queues:
            q.start()

    def stop(self):
        """Accept nothing more (a drop-all filter); what the rings hold stays."""
        for q in self._queues:
            q.stop()

    # ------------------------------------------------------------------ counters
    def counters(self, reset=False):
        """The kernel's per-socket statistics (PACKET_STATISTICS, clear on read) accumulated
        into totals: packets{q} (accepted by the filter, dropped ones included), drops{q}
        (ring full), freezes{q} (times the ring filled up), and their sums. Also notices an
        interface that went down or was deleted (``failure``): the engine reads counters
        every second and its readers then raise."""
        with self._lock:
            if reset:
                self._totals = {}
            for q in self._queues:
                if q.fd < 0:
                    continue
                err = _ring.socket_error(q.fd)
                if err and self.failure is None:
                    self.failure = self._failure(err)
                got = _ring.read_stats(q.fd)
                if reset:
                    continue
                for key, v in zip(("packets", "drops", "freezes"), got):
                    self._totals[f"{key}{q.index}"] = self._totals.get(f"{key}{q.index}", 0) + v
                    self._totals[key] = self._totals.get(key, 0) + v
            return dict(self._totals)

    def _failure(self, err):
        try:
            gone = socket.if_nametoindex(self.iface) != self.ifindex
        except OSError:
            gone = True
        if gone:
            return (f"{self.name}: interface {self.iface} was deleted during the capture: "
                    f"nothing more can arrive, the capture ended")
        if err == errno.ENETDOWN:
            return (f"{self.name}: interface {self.iface} went down during the capture, "
                    f"which ended it; bring it up (`ip link set {self.iface} up`) and capture "
                    f"again")
        return f"{self.name}: the capture socket failed: {os.strerror(err)}"

    def queue_counters(self, q, totals=None):
        totals = self.counters() if totals is None else totals
        drops = totals.get(f"drops{q}", 0)
        return {"nic_delivered": totals.get(f"packets{q}", 0) - drops, "nic_dropped": drops}

    def close(self):
        for q in self._queues:
            q.close()
        for q in self._tx:
            q.close()
        self._queues, self._tx = [], []
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<AfPacket {self.name} queues={len(self._queues)} fanout={self.fanout}>"
