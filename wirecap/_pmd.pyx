"""The poll-mode driver for the Intel 82599: WireCAP's capture and recycle, in Cython.

A receive ring of N descriptors is cut into N/M descriptor segments; each segment always has a
chunk of M packet buffers attached, taken from the queue's pool of R chunks. When the NIC has
filled a segment, ``capture`` detaches its chunk (handed to the application by reference, zero
copy), attaches a free chunk, re-arms the M descriptors and moves RDT once. ``recycle`` takes a
chunk back after checking its handle. Transmit queues send packets straight from captured
chunks; a chunk returns to the pool only when the application and the NIC are both done.

Register writes follow the datasheet (section numbers in the comments). The driver talks to
the device through ``Regs`` only and cannot tell silicon from the model; wirecap.devices picks
the register implementation and hands it over with the DMA domain.
"""
import time

import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

cimport wirecap.ixgbe as r
from wirecap import ixgbe
from wirecap._dma cimport Domain, Region
from wirecap._regs cimport Regs
from wirecap._ring cimport (RxRing, Chunk, Delivery, ChunkState, CH_FREE, CH_ARMED,
                            CH_CAPTURED)
from wirecap.includes.atomics cimport ld32, add32
from wirecap.includes.clocks cimport mono_ns, wall_ns
from wirecap.includes.packet cimport packet_index
from wirecap.errors import WirecapError

cnp.import_array()

# the 40-byte key of the datasheet's RSS examples (also Microsoft's verification key)
DATASHEET_RSS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da3"
                                  "8030f20c6a42b73bbeac01fa")


# ----------------------------------------------------------------------------- device
cdef class Nic:
    """One 82599 port, initialized per datasheet 4.6.3, driven through ``regs``.

    Open one with ``wirecap.devices.open_device("sim:0")`` (the model) or
    ``open_device("pci:0000:03:00.0")`` (an 82599 bound to vfio-pci). Ports given the same
    ``domain`` can send each other's captured buffers (zero copy).
    """
    # what wirecap.devices and the engine may pass (the Device protocol)
    open_options = ("domain", "promiscuous", "rss_key", "link_timeout")
    rx_options = ("ndesc", "segment", "chunks", "bufsize", "flush_us")
    default_chunks = 100        # R for the engine when none is given, as in the paper's runs
    kind = "82599"

    def __init__(self, str name, Regs regs not None, Domain domain not None, port=None,
                 bint promiscuous=True, rss_key=DATASHEET_RSS_KEY, double link_timeout=5.0):
        if len(rss_key) != r.RSS_KEY_BYTES:
            regs.release()
            raise WirecapError(f"RSS key of {len(rss_key)} bytes: the 82599 takes exactly 40")
        self.name, self.regs, self.domain, self.port = name, regs, domain, port
        self._totals = {}
        self._queues = []
        regs.device = self
        try:
            self._init(promiscuous, rss_key)
            self._check()
        except BaseException:
            self.close()
            raise

    def _check(self):
        fault = self.regs.fault()
        if fault is not None:
            raise WirecapError(f"{self.name}: {fault}")

    def _open(self):
        if self._closed:
            raise WirecapError(f"{self.name} is closed: open the device again")

    cdef uint32_t r32(self, uint32_t off):
        return self.regs.read32(off)

    cdef void w32(self, uint32_t off, uint32_t val):
        self.regs.write32(off, val)

    def _wait(self, uint32_t off, uint32_t mask, uint32_t want, what, double timeout):
        end = time.monotonic() + timeout
        while self.r32(off) & mask != want:
            if time.monotonic() > end:
                raise WirecapError(f"{self.name}: {what} not reached after {timeout:g} s "
                                   f"(register {off:#x} = {self.r32(off):#x}); the device may "
                                   f"be wedged: rebind it (`wirecap unbind`, `wirecap bind`)")
            time.sleep(0.0005)

    def _init(self, bint promiscuous, rss_key):
        # 4.6.3.1 mask all interrupts: wirecap polls
        self.w32(r.EIMC, r.EIMS_ALL)
        # 4.6.3.2 global reset, then interrupts off again; wait for the NVM and DMA init
        self.w32(r.CTRL, self.r32(r.CTRL) | r.CTRL_RST_MASK)
        self._wait(r.CTRL, r.CTRL_RST_MASK, 0, "reset completion (CTRL.RST clear)", 1.0)
        time.sleep(0.01)                # the datasheet asks for 10 ms before further access
        self.w32(r.EIMC, r.EIMS_ALL)
        self._wait(r.EEC, r.EEC_ARD, r.EEC_ARD, "EEPROM auto-read (EEC.ARD)", 1.0)
        self._wait(r.RDRXCTL, r.RDRXCTL_DMAIDONE, r.RDRXCTL_DMAIDONE,
                   "DMA init (RDRXCTL.DMAIDONE)", 1.0)
        # 4.6.4 link: 10 Gb/s serial, restart auto-negotiation (link comes up in start())
        self.w32(r.AUTOC, (self.r32(r.AUTOC) & ~<uint32_t>r.AUTOC_LMS_MASK) |
                 r.AUTOC_LMS_10G_SERIAL | r.AUTOC_AN_RESTART)
        # 4.6.5 statistics: clear on read
        self.counters(reset=True)
        # 4.6.7 receive: off while configuring; one packet buffer; strip CRC; filters; RSS
        self.w32(r.RXCTRL, self.r32(r.RXCTRL) & ~<uint32_t>r.RXCTRL_RXEN)
        self.w32(ixgbe.RXPBSIZE(0), 512 << r.RXPBSIZE_SHIFT)
        for i in range(1, 8):
            self.w32(ixgbe.RXPBSIZE(i), 0)
        self.w32(r.HLREG0, self.r32(r.HLREG0) | r.HLREG0_RXCRCSTRP)
        self.w32(r.RDRXCTL, self.r32(r.RDRXCTL) | r.RDRXCTL_CRCSTRIP)
        self.promiscuous = promiscuous
        for i in range(10):
            self.w32(ixgbe.RSSRK(i), int.from_bytes(rss_key[4 * i:4 * i + 4], "little"))
        for i in range(32):             # queue i counts in QPRC(i) and friends
            self.w32(ixgbe.RQSMR(i), sum((4 * i + k) % 16 << (8 * k) for k in range(4)))
            self.w32(ixgbe.TQSM(i), sum((4 * i + k) % 16 << (8 * k) for k in range(4)))
        # 4.6.8 transmit: CRC and padding by the NIC; DCB arbiter off while configuring
        self.w32(r.HLREG0, self.r32(r.HLREG0) | r.HLREG0_TXCRCEN | r.HLREG0_TXPADEN)
        self.w32(r.RTTDCS, self.r32(r.RTTDCS) | r.RTTDCS_ARBDIS)
        self.w32(ixgbe.TXPBSIZE(0), 160 << 10)
        self.w32(r.DTXMXSZRQ, 0xFFF)
        self.w32(r.MTQC, 0)
        self.w32(r.RTTDCS, self.r32(r.RTTDCS) & ~<uint32_t>r.RTTDCS_ARBDIS)
        self.w32(r.DMATXCTL, self.r32(r.DMATXCTL) | r.DMATXCTL_TE)

    # ------------------------------------------------------------------ configuration
    @property
    def mac(self):
        lo, hi = self.r32(ixgbe.RAL(0)), self.r32(ixgbe.RAH(0)) & 0xFFFF
        return ":".join(f"{b:02x}" for b in (lo | hi << 32).to_bytes(6, "little"))

    @property
    def promiscuous(self):
        return self.r32(r.FCTRL) & r.FCTRL_UPE != 0

    @promiscuous.setter
    def promiscuous(self, bint on):
        cdef uint32_t f = self.r32(r.FCTRL) | r.FCTRL_BAM
        f = (f | r.FCTRL_UPE | r.FCTRL_MPE) if on else (f & ~<uint32_t>(r.FCTRL_UPE | r.FCTRL_MPE))
        self.w32(r.FCTRL, f)

    def set_rss(self, int queues):
        """Spread flows over receive queues 0..queues-1 (RETA round robin); 1 turns RSS off."""
        if not 1 <= queues <= r.NUM_RSS_QUEUES:
            raise WirecapError(f"RSS over {queues} queues: the 82599 spreads over 1 to 16")
        for i in range(32):
            self.w32(ixgbe.RETA(i), sum(((4 * i + k) % queues) << (8 * k) for k in range(4)))
        self.w32(r.MRQC, 0 if queues == 1 else
                 r.MRQC_RSSEN | r.MRQC_RSS_FIELD_IPV4 | r.MRQC_RSS_FIELD_IPV4_TCP |
                 r.MRQC_RSS_FIELD_IPV4_UDP | r.MRQC_RSS_FIELD_IPV6 |
                 r.MRQC_RSS_FIELD_IPV6_TCP | r.MRQC_RSS_FIELD_IPV6_UDP)

    def rx_queue(self, int index=0, **geometry):
        """Set up receive queue ``index`` (see RxQueue for the geometry)."""
        self._open()
        q = RxQueue(self, index, **geometry)
        self._queues.append(q)
        return q

    def tx_queue(self, int index=0, **kw):
        """Set up transmit queue ``index`` (see TxQueue)."""
        self._open()
        if any(isinstance(q, TxQueue) and (<TxQueue>q).index == index for q in self._queues):
            raise WirecapError(f"{self.name} transmit queue {index} is already set up: use "
                               f"that one")
        q = TxQueue(self, index, **kw)
        self._queues.append(q)
        return q

    def set_filter(self, expression, queue=None, snaplen=None):
        """The 82599 has no packet filter to run BPF: False, the caller filters in software."""
        return False

    def start(self, double link_timeout=5.0):
        """Enable the receive path (4.6.7: after the queues) and wait for the link."""
        self._open()
        self.w32(r.RXCTRL, self.r32(r.RXCTRL) | r.RXCTRL_RXEN)
        self._wait(r.LINKS, r.LINKS_UP, r.LINKS_UP, "link up (LINKS.UP)", link_timeout)
        self._check()

    def stop(self):
        """Disable the receive path: the NIC stops taking frames (counted as missed)."""
        if not self._closed:
            self.w32(r.RXCTRL, self.r32(r.RXCTRL) & ~<uint32_t>r.RXCTRL_RXEN)

    def counters(self, bint reset=False):
        """Hardware counters accumulated into 64-bit totals (the registers clear on read, so
        call this often enough that none wraps: at line rate a 32-bit packet counter lasts
        4.8 minutes)."""
        cdef uint32_t lo
        regs = [(name, off) for name, off in ixgbe.Statistics.__members__.items()
                if not name.endswith(("CL", "CH", "RL", "RH"))]
        regs += [(f"MPC{i}", ixgbe.MPC(i)) for i in range(8)]
        regs += [(f"RNBC{i}", ixgbe.RNBC(i)) for i in range(8)]
        for i in range(16):
            regs += [(f"QPRC{i}", ixgbe.QPRC(i)), (f"QPRDC{i}", ixgbe.QPRDC(i)),
                     (f"QPTC{i}", ixgbe.QPTC(i))]
        pairs = [("GORC", r.GORCL, r.GORCH), ("GOTC", r.GOTCL, r.GOTCH), ("TOR", r.TORL, r.TORH)]
        pairs += [(f"QBRC{i}", ixgbe.QBRC_L(i), ixgbe.QBRC_H(i)) for i in range(16)]
        pairs += [(f"QBTC{i}", ixgbe.QBTC_L(i), ixgbe.QBTC_H(i)) for i in range(16)]
        now = {name: self.r32(off) for name, off in regs}
        for name, lo_off, hi_off in pairs:
            lo = self.r32(lo_off)                   # low first: it latches the high half
            now[name] = lo | (<uint64_t>self.r32(hi_off) << 32)
        if reset:
            self._totals = {}
        else:
            for name, v in now.items():
                self._totals[name] = self._totals.get(name, 0) + v
        return dict(self._totals)

    def queue_counters(self, int q, dict totals=None):
        """The NIC's per-queue receive counters (QPRC, QPRDC) from ``totals`` (default: a
        fresh counters() reading), under the names every device uses."""
        totals = self.counters() if totals is None else totals
        return {"nic_delivered": totals.get(f"QPRC{q % 16}", 0),
                "nic_dropped": totals.get(f"QPRDC{q % 16}", 0)}

    @property
    def closed(self):
        return self._closed

    def close(self):
        if self._closed:
            return
        for q in self._queues:
            q.close()
        self._queues = []
        self._closed = True
        self.regs.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<Nic {self.name} {self.mac}>"


def _HUGE_RING(ndesc):
    # a ring smaller than a hugepage would waste the rest of its 2 MiB page
    return ndesc * r.DESC_SIZE >= 2 << 20


def _geometry_error(msg):
    return WirecapError(f"receive queue geometry: {msg}")


# ----------------------------------------------------------------------------- receive
# Buffers B bytes apart would all fall in the same few cache sets (B is a multiple of
# 1 KiB), so that every frame's write would miss: one more cache line between them spreads a
# pool over every set, as DPDK's 2,304-byte mbufs do.
BUFFER_PAD = 64


def pool_bytes(chunks, segment, bufsize):
    """The DMA memory a receive pool of ``chunks`` chunks of ``segment`` buffers takes."""
    return chunks * segment * (bufsize + BUFFER_PAD)

cdef class RxQueue(RxRing):
    """A receive queue with WireCAP's descriptor segments and ring buffer pool.

    ndesc    N, descriptors in the ring (power of two, 64..8192)
    segment  M, descriptors per segment = packet buffers per chunk (divides N, at most 4096)
    chunks   R, chunks in the pool (at least N/M + 1: one per segment and a spare); the queue
             absorbs bursts of R*M packets
    bufsize  B, bytes per packet buffer (2048..16384, multiple of 1024); larger frames are
             dropped by the MAC (ROC) so that every frame fits one buffer
    flush_us a segment partly filled for this long is delivered anyway (None: never)
    """

    def __init__(self, Nic nic, int index, uint32_t ndesc=1024, uint32_t segment=256,
                 chunks=None, uint32_t bufsize=2048, flush_us=1000):
        cdef uint32_t R = (ndesc // segment + 1) if chunks is None else chunks
        if not 0 <= index < r.NUM_RX_QUEUES:
            raise _geometry_error(f"queue {index}: the 82599 has receive queues 0 to 127")
        if any((<RxQueue>q).index == index for q in nic._queues if isinstance(q, RxQueue)):
            raise WirecapError(f"{nic.name} receive queue {index} is already set up")
        if ndesc < 64 or ndesc > 8192 or ndesc & (ndesc - 1):
            raise _geometry_error(f"N={ndesc} descriptors: N must be a power of two from "
                                  f"64 to 8192")
        if segment < 8 or segment > 4096 or ndesc % segment:
            raise _geometry_error(f"M={segment}: the segment size must divide N={ndesc} and "
                                  f"lie in 8..4096 (e.g. {min(ndesc, 256)})")
        if R < ndesc // segment + 1 or R > (1 << 20):
            raise _geometry_error(f"R={R} chunks: need N/M + 1 = {ndesc // segment + 1} to "
                                  f"{1 << 20} (a chunk per segment and at least one spare)")
        if bufsize % 1024 or not 2048 <= bufsize <= 16384:
            raise _geometry_error(f"B={bufsize} bytes: buffers are 2048..16384 bytes in steps "
                                  f"of 1024 (the SRRCTL granularity)")
        if flush_us is not None and flush_us < 0:
            raise _geometry_error(f"flush_us={flush_us}: give a non-negative timeout or None")
        self.nic, self.device, self.index, self.regs = nic, nic, index, nic.regs
        self.ndesc, self.bufsize = ndesc, bufsize
        self.stride = bufsize + BUFFER_PAD
        self.max_deliveries = <uint64_t>R * segment     # at most one per packet buffer
        self.nseg = ndesc // segment
        self.flush_ns = -1 if flush_us is None else <int64_t>(flush_us * 1000)
        self.rdt_off = ixgbe.RDT(index)
        # memory: the ring and the pool are DMA memory; metadata is ordinary memory
        self.ring_mem = nic.domain.alloc(ndesc * r.DESC_SIZE, _HUGE_RING(ndesc))
        self.pool_mem = nic.domain.alloc(<size_t>R * segment * self.stride)
        self.ring, self.pool = self.ring_mem.addr, self.pool_mem.addr
        self.pool_iova = self.pool_mem.iova
        self.pool_array = self.pool_mem.array[:<size_t>R * segment * self.stride]
        self._columns(R, segment, <uint64_t>segment * self.stride,
                      np.tile(np.arange(segment, dtype=np.uint32) * self.stride, R))
        own = dict(tx_refs=np.zeros(R, np.uint32), waiting=np.zeros(R, np.uint32),
                   seg_chunk=np.full(self.nseg, -1, np.int32))
        self._own = own
        self.tx_refs = <uint32_t*>cnp.PyArray_DATA(own["tx_refs"])
        self.waiting = <uint32_t*>cnp.PyArray_DATA(own["waiting"])
        self.seg_chunk = <int32_t*>cnp.PyArray_DATA(own["seg_chunk"])
        self._setup(nic)

    def _setup(self, Nic nic):
        cdef uint32_t s, i = self.index
        # frames must fit one buffer: the MAC drops longer ones (ROC) instead of spanning
        if self.bufsize >= 3072:
            nic.w32(r.MAXFRS, min(self.bufsize, 9018) << r.MAXFRS_MFS_SHIFT)
            nic.w32(r.HLREG0, nic.r32(r.HLREG0) | r.HLREG0_JUMBOEN)
        # 4.6.7.1 queue setup: ring, buffers, DROP_EN (a starved queue drops alone)
        nic.w32(ixgbe.RDBAL(i), self.ring_mem.iova & 0xFFFFFFFF)
        nic.w32(ixgbe.RDBAH(i), self.ring_mem.iova >> 32)
        nic.w32(ixgbe.RDLEN(i), self.ndesc * r.DESC_SIZE)
        nic.w32(ixgbe.SRRCTL(i), (self.bufsize >> r.SRRCTL_BSIZEPKT_SHIFT) |
                r.SRRCTL_DESCTYPE_ADV_ONEBUF | r.SRRCTL_DROP_EN)
        nic.w32(ixgbe.RDH(i), 0)
        nic.w32(ixgbe.RDT(i), 0)
        nic.w32(ixgbe.RXDCTL(i), nic.r32(ixgbe.RXDCTL(i)) | r.RXDCTL_ENABLE)
        nic._wait(ixgbe.RXDCTL(i), r.RXDCTL_ENABLE, r.RXDCTL_ENABLE,
                  f"receive queue {i} enable (RXDCTL.ENABLE)", 1.0)
        # then hand the NIC every segment, each with a chunk; RDT once
        self.arm_seg, self.unarmed = 0, self.nseg
        with nogil:
            self._arm_pending()
        self.cur_seg = self.seg_done = 0
        nic._check()

    # ------------------------------------------------------------------ the fast path
    cdef void _attach(self, uint32_t seg, uint32_t c) noexcept nogil:
        cdef uint32_t i, base = seg * self.segment
        cdef uint64_t addr = self.pool_iova + <uint64_t>c * self.segment * self.stride
        cdef uint64_t* d
        self.ch[c].state = CH_ARMED
        self.ch[c].seg = seg
        self.ch[c].gen += 1
        self.seg_chunk[seg] = c
        for i in range(self.segment):       # 7.1.6.1 read format: buffer address, no header
            d = <uint64_t*>(self.ring + (base + i) * r.DESC_SIZE)
            d[0] = addr + <uint64_t>i * self.stride
            d[1] = 0                        # clears DD of the previous write-back
        self.narmed += 1

    cdef void _arm_pending(self) noexcept nogil:
        """Attach free chunks to unarmed segments, in ring order; move RDT once."""
        cdef uint32_t moved = 0
        cdef bint any_armed = False
        while self.unarmed and self.nfree:
            self._attach(self.arm_seg, self.pop_free())
            # RDT = last descriptor of the newest armed segment: the NIC owns everything
            # before it, so a segment is full exactly when its last descriptor is done
            moved = self.arm_seg * self.segment + self.segment - 1
            self.arm_seg = self.arm_seg + 1 if self.arm_seg + 1 < self.nseg else 0
            self.unarmed -= 1
            any_armed = True
        if any_armed:
            self.regs.write32(self.rdt_off, moved)

    cdef uint32_t _harvest(self, uint32_t c, uint32_t first, uint32_t upto) noexcept nogil:
        """Copy the write-back fields of descriptors [first, upto) of the current segment
        into the chunk's metadata (one buffer per frame: captured = wire length)."""
        cdef uint32_t i, n, base = self.cur_seg * self.segment
        cdef size_t k
        cdef uint8_t* d
        cdef uint64_t nbytes = 0
        cdef int64_t ts = wall_ns()
        for i in range(first, upto):
            d = self.ring + (base + i) * r.DESC_SIZE
            k = packet_index(c, self.segment, i, 0)
            n = (<uint16_t*>d)[6]
            self.info[k] = (<uint32_t*>d)[0]
            self.rss[k] = (<uint32_t*>d)[1]
            self.status[k] = (<uint32_t*>d)[2]
            self.caplen[k] = n
            self.wire_len[k] = n
            self.ts[k] = ts
            nbytes += n
        self.bytes += nbytes
        return upto - first

    cdef int capture(self, Delivery* out, int64_t now) noexcept nogil:
        """One capture step: 1 with ``out`` filled if a full segment (or, after the flush
        timeout, the completed part of one) was taken, else 0."""
        cdef uint32_t seg = self.cur_seg, base = seg * self.segment, k, c
        cdef int32_t cc
        if self.ring == NULL:               # closed
            return 0
        self.regs.sync(now)
        cc = self.seg_chunk[seg]
        if self.nwaiting:
            self._check_waiting()
        if cc < 0:                          # pool was empty: the segment waits unarmed
            return 0
        c = <uint32_t>cc
        if ld32(self.ring + (base + self.segment - 1) * r.DESC_SIZE + 8) & r.RXDADV_STAT_DD:
            k = self.seg_done
            self._harvest(c, k, self.segment)
            self.deliver(out, c, k, self.segment - k)
            # detach the filled chunk; attach a free one (or leave the segment unarmed: the
            # NIC stops at it and drops, counted in QPRDC, until chunks come back)
            self.ch[c].state = CH_CAPTURED
            self.narmed -= 1
            self.ncaptured += 1
            self.seg_chunk[seg] = -1
            if self.unarmed == 0:
                self.arm_seg = seg
            self.unarmed += 1
            if self.nfree == 0:
                self.pool_empty_events += 1
            self._arm_pending()
            self.cur_seg = seg + 1 if seg + 1 < self.nseg else 0
            self.seg_done = 0
            self.pending_since = 0
            return 1
        # the last descriptor is delivered by the branch above only: the NIC may complete it
        # between the two loads, and a flush from it would be empty and share its first
        # packet (hence its token) with the full-segment delivery that follows
        if self.flush_ns >= 0 and self.seg_done < self.segment - 1 and \
                ld32(self.ring + (base + self.seg_done) * r.DESC_SIZE + 8) & r.RXDADV_STAT_DD:
            if self.pending_since == 0:
                self.pending_since = now
                if self.flush_ns > 0:
                    return 0
            if now - self.pending_since < self.flush_ns:
                return 0
            # deliver the completed descriptors only: the rest of the chunk stays with the NIC
            k = self.seg_done
            while k < self.segment - 1 and \
                    ld32(self.ring + (base + k) * r.DESC_SIZE + 8) & r.RXDADV_STAT_DD:
                k += 1
            self._harvest(c, self.seg_done, k)
            self.deliver(out, c, self.seg_done, k - self.seg_done)
            self.seg_done = k
            self.pending_since = 0
            self.flushes += 1
            return 1
        return 0

    cdef bint receiving(self) noexcept nogil:
        # the NIC has written the next descriptor of the current segment
        if self.ring == NULL or self.seg_chunk[self.cur_seg] < 0:
            return 0
        return (ld32(self.ring + (self.cur_seg * self.segment + self.seg_done) * r.DESC_SIZE
                     + 8) & r.RXDADV_STAT_DD) != 0

    cdef int capture_all(self, Delivery* out, int64_t now) noexcept nogil:
        cdef int64_t flush_ns = self.flush_ns
        cdef int got
        self.flush_ns = 0
        got = self.capture(out, now)
        self.flush_ns = flush_ns
        return got

    cdef void retire(self, uint32_t c) noexcept nogil:
        # the application is done; the NIC may still be sending from it
        if ld32(&self.tx_refs[c]):
            self.waiting[self.nwaiting] = c
            self.nwaiting += 1
        else:
            self._free_chunk(c)

    cdef void _check_waiting(self) noexcept nogil:
        cdef uint32_t i = 0, c
        while i < self.nwaiting:
            c = self.waiting[i]
            if ld32(&self.tx_refs[c]) == 0:
                self.nwaiting -= 1
                self.waiting[i] = self.waiting[self.nwaiting]
                self._free_chunk(c)
            else:
                i += 1

    cdef void _free_chunk(self, uint32_t c) noexcept nogil:
        self.push_free(c)
        self.ncaptured -= 1
        if self.unarmed and self.ring != NULL:      # a closed ring is never re-armed
            self._arm_pending()

    # ------------------------------------------------------------------ Python API
    def forward_all(self, TxQueue tx, uint64_t max_deliveries=1 << 62):
        """Capture, send every packet out of ``tx`` zero copy, push once per chunk, recycle;
        without the GIL. Returns the packets forwarded (stops early if ``tx`` is full)."""
        cdef Delivery d
        cdef uint64_t n = 0, k = 0
        cdef uint32_t i
        tx._open()
        if tx.nic.domain is not self.nic.domain:
            raise WirecapError("forward_all: the queues are not in one DMA domain")
        if self not in tx._sources:
            tx._sources.append(self)
        with nogil:
            while k < max_deliveries and self.capture(&d, mono_ns()):
                for i in range(d.count):
                    if tx.send_zero_copy(self, d.chunk, d.first + i,
                                         self.caplen[packet_index(d.chunk, self.segment,
                                                                  d.first, i)]):
                        break
                    n += 1
                tx.push()
                self.recycle_delivery(&d)
                k += 1
        return n

    def ring_state(self):
        """Where capture stands: the segment it waits on, how much of it was flushed, which
        segments hold which chunk (-1: unarmed), the NIC's head and tail, and per chunk its
        state, generation and the first packets of its outstanding deliveries."""
        cdef uint32_t c
        names = {CH_FREE: "free", CH_ARMED: "armed", CH_CAPTURED: "captured"}
        chunks = [(names[self.ch[c].state], self.ch[c].gen,
                   [i for i in range(self.segment)
                    if self.open_bits[packet_index(c, self.segment, i, 0)]])
                  for c in range(self.chunks)]
        return {"cur_seg": self.cur_seg, "seg_done": self.seg_done, "arm_seg": self.arm_seg,
                "unarmed": self.unarmed, "seg_chunk": list(self._own["seg_chunk"]),
                "rdh": self.nic.r32(ixgbe.RDH(self.index)),
                "rdt": self.nic.r32(ixgbe.RDT(self.index)), "chunks": chunks}

    def accounting(self):
        """(free, armed, captured) chunks; they always add up to R. Chunks whose last
        zero-copy send has completed since the last poll are returned to the pool first."""
        with nogil:
            self._check_waiting()
        return self.nfree, self.narmed, self.ncaptured

    @property
    def memory(self):
        """Bytes of DMA memory (ring + pool) and of per-buffer metadata."""
        meta, per_buffer = self.metadata_bytes
        return {"ring": self.ndesc * r.DESC_SIZE, "pool": self.chunks * self.chunk_bytes,
                "metadata": meta, "metadata_per_buffer": per_buffer,
                "pool_backing": self.pool_mem.backing}

    def close(self):
        if self.ring_mem is not None:
            self.nic.w32(ixgbe.RXDCTL(self.index),
                         self.nic.r32(ixgbe.RXDCTL(self.index)) & ~<uint32_t>r.RXDCTL_ENABLE)
            self.ring = self.pool = NULL
            self.nic.domain.free(self.ring_mem)
            self.nic.domain.free(self.pool_mem)
            self.ring_mem = self.pool_mem = None
            self.pool_array = None          # our view would keep the pages until a GC pass


# ----------------------------------------------------------------------------- transmit
cdef class TxQueue:
    """A transmit queue: zero-copy sends of captured packets, or copies of user bytes."""

    def __init__(self, Nic nic, int index, uint32_t ndesc=1024, uint32_t bufsize=2048):
        if not 0 <= index < r.NUM_TX_QUEUES:
            raise WirecapError(f"transmit queue {index}: the 82599 has queues 0 to 127")
        if ndesc < 64 or ndesc > 8192 or ndesc & (ndesc - 1):
            raise WirecapError(f"transmit ring of {ndesc}: a power of two from 64 to 8192")
        if bufsize % 1024 or not 2048 <= bufsize <= 16384:
            raise WirecapError(f"transmit buffers of {bufsize} bytes: 2048..16384 in steps of "
                               f"1024")
        self.nic, self.index, self.regs = nic, index, nic.regs
        self.ndesc, self.bufsize = ndesc, bufsize
        self.tdt_off = ixgbe.TDT(index)
        self.ring_mem = nic.domain.alloc(ndesc * r.DESC_SIZE, _HUGE_RING(ndesc))
        self.copy_mem = nic.domain.alloc(ndesc * bufsize)
        self.ring, self.copy, self.copy_iova = self.ring_mem.addr, self.copy_mem.addr, \
            self.copy_mem.iova
        self.src_refs = <uint32_t**>calloc(ndesc, sizeof(uint32_t*))
        self.src_chunk = <uint32_t*>calloc(ndesc, sizeof(uint32_t))
        if self.src_refs == NULL or self.src_chunk == NULL:
            raise MemoryError("transmit ring bookkeeping")
        self._sources = []
        # 4.6.8 queue setup; TXDCTL.ENABLE reads back once DMATXCTL.TE is on (done in init)
        nic.w32(ixgbe.TDBAL(index), self.ring_mem.iova & 0xFFFFFFFF)
        nic.w32(ixgbe.TDBAH(index), self.ring_mem.iova >> 32)
        nic.w32(ixgbe.TDLEN(index), ndesc * r.DESC_SIZE)
        nic.w32(ixgbe.TDH(index), 0)
        nic.w32(ixgbe.TDT(index), 0)
        nic.w32(ixgbe.TXDCTL(index), (36 << r.TXDCTL_PTHRESH_SHIFT) |
                (8 << r.TXDCTL_HTHRESH_SHIFT) | r.TXDCTL_ENABLE)
        nic._wait(ixgbe.TXDCTL(index), r.TXDCTL_ENABLE, r.TXDCTL_ENABLE,
                  f"transmit queue {index} enable (TXDCTL.ENABLE)", 1.0)
        nic._check()

    def __dealloc__(self):
        free(self.src_refs)
        free(self.src_chunk)

    cdef void _put(self, uint64_t addr, uint32_t length) noexcept nogil:
        # 7.2.3.2.4 advanced data descriptor, one buffer per frame; RS for per-frame completion
        cdef uint8_t* d = self.ring + self.tail * r.DESC_SIZE
        (<uint64_t*>d)[0] = addr
        (<uint32_t*>d)[2] = length | r.TXD_DTYP_DATA | r.TXD_CMD_DEXT | r.TXD_CMD_EOP | \
            r.TXD_CMD_IFCS | r.TXD_CMD_RS
        (<uint32_t*>d)[3] = length << r.TXD_PAYLEN_SHIFT
        self.tail = self.tail + 1 if self.tail + 1 < self.ndesc else 0
        self.sent += 1
        self.sent_bytes += length

    cdef bint _full(self) noexcept nogil:
        return (self.tail + 1) % self.ndesc == self.clean

    cdef int send_zero_copy(self, RxQueue src, uint32_t chunk, uint32_t pkt,
                            uint32_t length) noexcept nogil:
        """Queue packet ``pkt`` of ``src``'s chunk for sending from where it lies. -1: full
        (or closed)."""
        if self.ring == NULL:
            return -1
        if self._full() and (self.reap() == 0 or self._full()):
            return -1
        self.src_refs[self.tail] = src.tx_refs
        self.src_chunk[self.tail] = chunk
        add32(&src.tx_refs[chunk], 1)
        self._put(src.pool_iova + (<uint64_t>chunk * src.segment + pkt) * src.stride, length)
        self.zero_copy += 1
        return 0

    cdef uint32_t reap(self) noexcept nogil:
        """Retire sent descriptors (DD written back); release their chunks' references."""
        cdef uint32_t n = 0
        cdef uint8_t* d
        if self.ring == NULL:
            return 0
        self.regs.sync(mono_ns())
        while self.clean != self.pushed:
            d = self.ring + self.clean * r.DESC_SIZE
            if not ld32(d + 12) & r.TXD_STAT_DD:
                break
            if self.src_refs[self.clean] != NULL:
                add32(&self.src_refs[self.clean][self.src_chunk[self.clean]], -1)
                self.src_refs[self.clean] = NULL
            self.clean = self.clean + 1 if self.clean + 1 < self.ndesc else 0
            n += 1
        self.completed += n
        return n

    cdef void push(self) noexcept nogil:
        """Hand the queued descriptors to the NIC: one TDT write per batch."""
        if self.pushed != self.tail and self.ring != NULL:
            self.pushed = self.tail
            self.regs.write32(self.tdt_off, self.tail)

    # ------------------------------------------------------------------ Python API
    def forward(self, Chunk chunk, uint32_t i, length=None, bint push=True):
        """Send packet i of a captured chunk (modified in place or not), zero copy. The chunk
        returns to its pool only after both release() and the NIC's completion."""
        self._open()
        chunk._live()
        src = chunk.queue
        if not isinstance(src, RxQueue) or (<RxQueue>src).nic.domain is not self.nic.domain:
            raise WirecapError(f"forward: {(<RxQueue>src).nic.name} and {self.nic.name} are "
                               f"not in one DMA domain; open both with the same Domain")
        if i >= chunk.count:
            raise IndexError(f"packet {i} of a chunk with {chunk.count}")
        n = chunk.lengths[i] if length is None else length
        if not 0 < n <= (<RxQueue>src).bufsize:
            raise WirecapError(f"forward: length {n} must be 1..{(<RxQueue>src).bufsize}")
        if self.send_zero_copy(src, chunk.index, chunk.first + i, n):
            raise WirecapError(f"{self.nic.name} transmit queue {self.index} is full: "
                               f"call reap() or wait for completions")
        if src not in self._sources:
            self._sources.append(src)
        if push:
            self.push()

    def send(self, frame, bint push=True):
        """Send a copy of ``frame`` (bytes-like, without FCS: the NIC appends it)."""
        cdef const uint8_t[::1] v = memoryview(frame).cast("B")
        self._open()
        if not 0 < v.shape[0] <= self.bufsize:
            raise WirecapError(f"send: a frame of {v.shape[0]} bytes; 1..{self.bufsize} fit")
        if self._full() and (self.reap() == 0 or self._full()):
            raise WirecapError(f"{self.nic.name} transmit queue {self.index} is full")
        memcpy(self.copy + self.tail * self.bufsize, &v[0], v.shape[0])
        self._put(self.copy_iova + <uint64_t>self.tail * self.bufsize, v.shape[0])
        if push:
            self.push()

    def _open(self):
        if self.ring == NULL:
            raise WirecapError(f"{self.nic.name} transmit queue {self.index} is closed: set "
                               f"up a new one with tx_queue()")

    def flush(self):
        self.push()

    def collect(self):
        """Retire completed sends; returns how many."""
        return self.reap()

    @property
    def in_flight(self):
        return (self.tail - self.clean) % self.ndesc

    def stats(self):
        return {"sent": self.sent, "bytes": self.sent_bytes, "completed": self.completed,
                "zero_copy": self.zero_copy, "in_flight": self.in_flight}

    def close(self):
        """Disable the queue and free its memory. Sends not completed by then never will be:
        their chunks' references are dropped, so those chunks can return to their pools."""
        cdef uint32_t i
        if self.ring_mem is None:
            return
        self.reap()
        self.nic.w32(ixgbe.TXDCTL(self.index),
                     self.nic.r32(ixgbe.TXDCTL(self.index)) & ~<uint32_t>r.TXDCTL_ENABLE)
        i = self.clean
        while i != self.tail:
            if self.src_refs[i] != NULL:
                add32(&self.src_refs[i][self.src_chunk[i]], -1)
                self.src_refs[i] = NULL
            i = i + 1 if i + 1 < self.ndesc else 0
        self.clean = self.pushed = self.tail
        self.ring = self.copy = NULL
        self.nic.domain.free(self.ring_mem)
        self.nic.domain.free(self.copy_mem)
        self.ring_mem = self.copy_mem = None
